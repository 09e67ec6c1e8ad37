"""The HTML report in a real browser (docs/report.md): a lab apply with a confirmed, a
rolled-back and a refused host, written by ``apply --report`` and by ``show RUN --html``, opened
by Debian's headless chromium (the DOM after the page's script ran, its filter and search from
the URL, a screenshot kept as an artifact); a 1000-host report within its byte and element
budgets (its render time is measured by bench/report_bench.py)."""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from fleetbr.htmlreport.model import build
from fleetbr.htmlreport.render import render_html, write_report
from fleetbr.lab import Lab
from tests.chromium import chromium, dump_dom, screenshot
from tests.integration.helpers import TIMEOUT, derived_inventory, fleetbr
from tests.reportsample import synthetic

REPO = Path(__file__).resolve().parents[2]
# what the DOM may hold per host (35 now; 50 when the before/after views were elements, then
# 2.7 s under load): the render time grows with it
ELEMENTS_PER_HOST = 40
CONFIRMED, ROLLED_BACK, REFUSED = "hv07", "hv08", "hv09"
SITES = {CONFIRMED: "rack-a", ROLLED_BACK: "rack-b", REFUSED: "rack-b"}
# One task, three outcomes: hv08 gets an address off its subnet (cut off: rolled back), hv09 a
# NIC it does not have (refused).
TASK = f"""\
bridge:
  name: br0
  nic: "{{{{ 'nosuchnic0' if host.name == '{REFUSED}' else host.data.nic }}}}"
  addresses: {{{{ '[203.0.113.9/24]' if host.name == '{ROLLED_BACK}' else 'move' }}}}
deadman:
  timeout: {TIMEOUT}
"""


def artifacts_dir() -> Path:
    """Where tests keep files for people to look at: $FLEETBR_TEST_ARTIFACTS, else
    tests/artifacts/ (git ignores it)."""
    found = os.environ.get("FLEETBR_TEST_ARTIFACTS", "").strip()
    path = Path(found) if found else REPO / "tests" / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Hosts(HTMLParser):
    """Each host's tbody in a DOM: its name, status and whether it is hidden."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, tuple[str, bool]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tbody" and found.get("class") == "host":
            self.hosts[found["data-host"] or ""] = (found["data-status"] or "",
                                                    "hidden" in found)  # fmt: skip


def hosts_of(dom: str) -> dict[str, tuple[str, bool]]:
    parser = _Hosts()
    parser.feed(dom)
    return parser.hosts


def visible(dom: str) -> set[str]:
    return {name for name, (_, hidden) in hosts_of(dom).items() if not hidden}


def _inventory(lab: Lab, dest: Path) -> Path:
    def edit(hosts: dict[str, Any], _: dict[str, Any]) -> None:
        for name, site in SITES.items():
            hosts[name].setdefault("data", {})["site"] = site

    return derived_inventory(lab, dest, edit)


def test_a_lab_apply_report_opens_in_chromium_with_every_host_filter_and_screenshot(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    chromium()  # before the rollout: no browser, no test
    for name in SITES:
        fresh_host(name)
    inventory = _inventory(lab, tmp_path / "inv")
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    history, applied, shown = (
        tmp_path / "h.sqlite3",
        tmp_path / "apply.html",
        tmp_path / "show.html",
    )
    base = ("--history", str(history), "-i", str(inventory))
    code, doc, err = fleetbr(*base, "-l", ",".join(SITES), "apply", str(task), "--canary", "1",
                             "--report", str(applied))  # fmt: skip
    statuses = {name: doc[name]["status"] for name in SITES}
    assert statuses == {CONFIRMED: "confirmed", ROLLED_BACK: "rolled_back",
                        REFUSED: "refused"}, (doc, err)  # fmt: skip
    assert code == 1 and "report not written" not in err, err
    code, out, err = fleetbr(*base, "show", "last", "--html", str(shown))
    assert (code, out, err) == (0, None, "")
    page = shown.read_text()
    assert applied.read_text() == page, "apply --report and show --html differ"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)

    dom = dump_dom(shown.as_uri())
    assert hosts_of(dom) == {ROLLED_BACK: ("rolled_back", False), REFUSED: ("refused", False),
                             CONFIRMED: ("confirmed", False)}  # fmt: skip
    rolled = dom.split(f'data-host="{ROLLED_BACK}"', 1)[1].split("</tbody>", 1)[0]
    assert re.search(r'class="reason">[^<]*(no longer answers|bridge br0|deadline|203\.0\.113)',
                     rolled), rolled  # fmt: skip
    assert 'class="st-rolled_back ph-verify"' in rolled and "ph-prepare" in rolled
    confirmed = dom.split(f'data-host="{CONFIRMED}"', 1)[1].split("</tbody>", 1)[0]
    assert '<table class="steps">' in confirmed and "canary" in confirmed
    assert 'class="st-confirmed ph-confirm"' in confirmed
    for name in (CONFIRMED, ROLLED_BACK):  # the before/after view the transaction applied,
        page_open = dump_dom(shown.as_uri() + f"#open={name}")  # styled once the host is open
        details = page_open.split(f'data-host="{name}"', 1)[1].split('data-host="', 1)[0]
        assert re.search(r'<pre class="diff"[^>]*>.*<ins>\+[^<]*br0', details, re.S), details
    refused = dom.split(f'data-host="{REFUSED}"', 1)[1].split("</tbody>", 1)[0]
    assert "nosuchnic0" in refused
    assert "rack-a</td><td>1 confirmed" in dom.replace("\n", "")

    # filter and search from the URL, applied by the page's script in the browser
    assert visible(dump_dom(shown.as_uri() + "#status=rolled_back")) == {ROLLED_BACK}
    assert visible(dump_dom(shown.as_uri() + f"#q={REFUSED}")) == {REFUSED}
    assert visible(dump_dom(shown.as_uri() + "#status=confirmed,refused&q=hv0")) == {
        CONFIRMED, REFUSED}  # fmt: skip

    opened = dump_dom(shown.as_uri() + f"#open={ROLLED_BACK}")
    assert len(re.findall(r"<details open", opened)) == 1
    assert re.search(rf'data-host="{ROLLED_BACK}"[^<]*<tr[^>]*>(?:(?!</tbody>).)*<details open',
                     opened, re.S)  # fmt: skip

    png = screenshot(
        shown.as_uri() + f"#open={ROLLED_BACK}", tmp_path / "report.png", size="1200,1300"
    )
    assert png.stat().st_size > 10_000
    shutil.copy(png, artifacts_dir() / "report.png")


def test_a_1000_host_report_opens_in_chromium_within_its_byte_and_element_budget(
    tmp_path: Path,
) -> None:
    """What the page's render time grows with, counted (not timed: a timed test measures the
    machine's load, CI failed once on 2.22 s where a quiet load takes 0.7 s): the bytes the
    browser parses and the elements its DOM holds once the page's script ran. Within these
    budgets bench/report_bench.py measures the 1000-host page at 0.69-0.85 s (docs/benchmarks.md),
    under the 2 s of issue 19."""
    chromium()
    run, rows = synthetic(1000)
    page = tmp_path / "big.html"
    write_report(page, render_html(build(run, rows)))
    assert page.stat().st_size < 5 * 1024 * 1024
    dom = dump_dom(page.as_uri())
    assert len(hosts_of(dom)) == 1000 and not any(hidden for _, hidden in hosts_of(dom).values())
    assert re.search(r'data-ms="[0-9.]+"', dom), "the page's script did not run to its end"
    elements = len(re.findall(r"<[a-zA-Z]", dom))
    assert elements < ELEMENTS_PER_HOST * 1000, f"{elements} elements in the 1000-host DOM"
