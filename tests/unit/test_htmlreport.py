"""The HTML report rendered from a synthetic history (fleetbr.htmlreport): escaping, no external
URL, the order of the hosts, the timeline, the diff slot, size for 1000 hosts."""

from __future__ import annotations

import html
import itertools
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from fleetbr.cli import main
from fleetbr.diffview.model import HostDiff, Section
from fleetbr.history.sqlite import SqliteStore
from fleetbr.history.store import HostRow
from fleetbr.htmlreport.model import build
from fleetbr.htmlreport.render import render_html, run_report, write_report
from fleetbr.report import Status
from tests import chromium as browser
from tests.isolation import EXPECT_ENV
from tests.reportsample import host_row, run_record, synthetic

HOSTILE = '<script>alert("x")</script>&"\'<img src=x onerror=alert(1)>'


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def _hosts_in_order(page: str) -> list[tuple[str, str]]:
    found = re.findall(r'<tbody class="host" data-host="([^"]*)" data-status="([^"]*)"', page)
    return [(html.unescape(name), status) for name, status in found]


def test_hostile_host_names_messages_and_events_are_text_never_markup() -> None:
    run = run_record([HOSTILE, "hv1"])
    row = host_row(HOSTILE, 3, Status.ROLLED_BACK)
    row.message = HOSTILE
    row.data["reason"] = HOSTILE
    row.data["events"] = [HOSTILE]
    row.data["steps"] = [HOSTILE, "b"]
    run.options["selection"] = HOSTILE
    row.diff = view(HOSTILE, before=[HOSTILE], after=[])
    page = render_html(build(run, [row, host_row("hv1", 1, Status.CONFIRMED)]))
    parsed = _parse(page)
    assert [tag for tag, _ in parsed.tags].count("script") == 1  # only the page's own
    assert not any(tag == "img" for tag, _ in parsed.tags)
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)
    assert "alert" not in "".join(parsed.scripts)
    assert HOSTILE not in page
    escaped = str(escape(HOSTILE))
    assert page.count(escaped) >= 6  # name, message, reason, event, step, diff (at least)
    assert _hosts_in_order(page)[0] == (HOSTILE, "rolled_back")


def test_no_external_url_anywhere_in_the_page() -> None:
    run, rows = synthetic(16)
    rows[0].message = "see https://example.invalid/x"  # a value may name one: shown as text
    page = render_html(build(run, rows))
    for tag, attrs in _parse(page).tags:
        for name in ("src", "href", "action", "xlink:href", "data"):
            assert not (attrs.get(name) or "").startswith(("http:", "https:", "//")), (tag, name)
    assert "@import" not in page and "url(" not in page
    outside = page.replace(str(escape(rows[0].message)), "")
    assert "http://" not in outside and "https://" not in outside


def test_failed_and_rolled_back_hosts_come_first_then_inventory_order() -> None:
    run, rows = synthetic(16)
    statuses = [status for _, status in _hosts_in_order(render_html(build(run, rows)))]
    assert statuses == (["failed"] * 2 + ["rolled_back"] * 2 + ["refused"] * 2
                        + ["skipped"] * 2 + ["confirmed"] * 8)  # fmt: skip
    names = [name for name, status in _hosts_in_order(render_html(build(run, rows)))
             if status == "confirmed"]  # fmt: skip
    assert names == sorted(names)


def test_the_timeline_has_each_recorded_phase_on_the_shared_axis() -> None:
    run, rows = synthetic(8)
    report = build(run, rows)
    rolled = next(host for host in report.hosts if host.status == "rolled_back")
    assert [bar.phase for bar in rolled.bars] == ["prepare", "arm", "apply", "confirm",
                                                   "rollback", "verify"]  # fmt: skip
    # hv0003 starts 3 s into a 60 s run, prepares for 1 s; the run's axis is 1000 wide
    assert (rolled.bars[0].x, rolled.bars[0].width) == (50.0, 16.7)
    assert rolled.bars[-1].start + rolled.bars[-1].seconds == 11.0  # until the host's end
    refused = next(host for host in report.hosts if host.status == "refused")
    assert [bar.phase for bar in refused.bars] == ["prepare"]
    page = render_html(report)
    assert page.count('class="st-rolled_back ph-verify"') == 1
    # batch 2 starts 1 s after the canary in a 60 s run: its line, but no room for its label
    assert [(mark.x, mark.label) for mark in report.batch_marks] == [(0.0, "canary"),
                                                                     (16.7, "")]  # fmt: skip
    many = build(*synthetic(1000))  # 101 batches: a line each, labels only where they fit
    assert len(many.batch_marks) == 101
    labelled = [mark.x for mark in many.batch_marks if mark.label]
    assert labelled[0] == 0.0 and len(labelled) < 1000 / 60
    assert all(b - a >= 60 for a, b in itertools.pairwise(labelled))


def test_without_a_timeline_the_rollout_phases_or_the_total_are_drawn() -> None:
    run, rows = synthetic(2)
    for row in rows:
        row.data.pop("timeline", None)
    rows[1].phases = {"total": 8.0}
    report = build(run, rows)
    by_name = {host.name: host for host in report.hosts}
    assert [bar.phase for bar in by_name["hv0000"].bars] == ["prepare", "window"]
    assert [bar.phase for bar in by_name["hv0001"].bars] == ["total"]


def test_steps_keep_their_inverses_decision_reason_and_differences() -> None:
    run, rows = synthetic(4)
    host = next(h for h in build(run, rows).hosts if h.status == "rolled_back")
    first = host.steps[0]
    assert (first.text, first.inverse) == ("create bridge br0", "delete bridge br0")
    assert host.decision == "rolled_back"
    assert host.reason == "gateway 198.51.100.1 no longer answers"
    assert host.differences == ["route 203.0.113.0/24 via 198.51.100.1 came back"]
    rows[3].data["inverses"] = ["only one"]  # not one per step: none shown rather than wrong
    host = next(h for h in build(run, rows).hosts if h.status == "rolled_back")
    assert [s.inverse for s in host.steps] == [None, None]


def view(host: str, *, before: list[str], after: list[str]) -> dict[str, Any]:
    """A recorded before/after view of one changed section (fleetbr.diffview JSON)."""
    section = Section("addresses", tuple(before), tuple(after))
    return HostDiff(host, "apply", (section,), ()).to_json()


def test_the_recorded_before_after_view_is_shown_styled_line_by_line() -> None:
    run, rows = synthetic(3)
    rows[0].diff = None  # a row from before views were recorded
    rows[1].diff = view(rows[1].host, before=["eth0 198.51.100.10/24"],
                        after=["br0 198.51.100.10/24"])  # fmt: skip
    rows[2].diff = [{"field": "mtu", "want": "1500", "have": "9000"}]  # a check's drift
    page = render_html(build(run, rows))
    assert page.count('<pre class="diff" ') == 1
    diff = re.search(r'<pre class="diff" data-styles="([^"]*)">([^<]*)</pre>', page)
    assert diff is not None
    lines = diff[2].split("\n")
    assert "-eth0 198.51.100.10/24" in lines and "+br0 198.51.100.10/24" in lines
    styles = dict(zip(lines, diff[1], strict=False))  # one letter per line
    assert styles["-eth0 198.51.100.10/24"] == "-" and styles["+br0 198.51.100.10/24"] == "+"
    assert styles["--- hv0001: apply, changes"] == "h"
    assert [styles[line] for line in lines if line.startswith("@@")] == ["u"]
    assert len(diff[1]) == len(lines) - 1  # the text ends with a newline
    shown = build(run, rows).hosts
    assert sum(1 for host in shown if host.diff_lines) == 1


def test_summary_by_status_batch_and_site() -> None:
    run, rows = synthetic(8)
    report = build(run, rows, sites={f"hv{i:04d}": "rack-a" if i < 4 else "rack-b"
                                     for i in range(8)})  # fmt: skip
    assert dict(report.by_status) == {"confirmed": 4, "failed": 1, "refused": 1,
                                      "rolled_back": 1, "skipped": 1}  # fmt: skip
    assert report.by_batch[0] == ("1 (canary)", [("confirmed", 1)])
    assert dict(report.by_site)["rack-a"] == [("confirmed", 3), ("rolled_back", 1)]


def test_a_1000_host_report_weighs_under_5_mb() -> None:
    run, rows = synthetic(1000)
    page = render_html(build(run, rows))
    assert len(page.encode()) < 5 * 1024 * 1024
    assert len(_hosts_in_order(page)) == 1000


def test_the_report_of_a_stored_run_is_written_whole_and_private(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    run, rows = synthetic(6)
    run_id = store.create_run(run)
    for row in rows:
        store.put_host(run_id, HostRow(**{**row.__dict__, "run_id": run_id}))
    target = tmp_path / "report.html"
    target.write_text("old")
    write_report(target, run_report(store, run_id, sites={"hv0000": "rack-a"}))
    store.close()
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert target.stat().st_mode & 0o777 == 0o600
    order = [name for name, _ in _hosts_in_order(page)]
    assert order == ["hv0005", "hv0003", "hv0004", "hv0000", "hv0001", "hv0002"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _stored(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "h.sqlite3"
    store = SqliteStore(path)
    run, rows = synthetic(count)
    run_id = store.create_run(run)
    for row in rows:
        store.put_host(run_id, HostRow(**{**row.__dict__, "run_id": run_id}))
    store.close()
    return path


def test_show_html_writes_the_report_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _stored(tmp_path, 8)
    target = tmp_path / "r.html"
    assert main(["--history", str(history), "show", "last", "--html", str(target)]) == 0
    assert capsys.readouterr() == ("", "")
    assert len(_hosts_in_order(target.read_text())) == 8


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["show", "1", "--html", "{tmp}"], "show --html {tmp}: is a directory"),
        (["show", "1", "--html", "{tmp}/no/r.html"], "no such directory {tmp}/no"),
        (["show", "9", "--html", "{tmp}/r.html"], "no run 9"),
        (["apply", "t.yaml", "--report", "{tmp}/no/r.html"], "no such directory {tmp}/no"),
        (["--no-history", "apply", "t.yaml", "--report", "{tmp}/r.html"], "drop --no-history"),
    ],
)
def test_a_report_that_cannot_be_written_is_exit_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], words: list[str], message: str
) -> None:
    history = _stored(tmp_path, 2)
    argv = ["--history", str(history), "-i", str(tmp_path / "noinv")]
    argv += [word.replace("{tmp}", str(tmp_path)) for word in words]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.replace("{tmp}", str(tmp_path)) in err, err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("h.sqlite3")) == []


@pytest.mark.parametrize("promised", [True, False])
def test_without_chromium_the_browser_tests_fail_under_in_netns_else_skip(
    monkeypatch: pytest.MonkeyPatch, promised: bool
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)  # tests.chromium looks it up there
    monkeypatch.setenv(EXPECT_ENV, "1" if promised else "0")
    expected = pytest.fail.Exception if promised else pytest.skip.Exception
    with pytest.raises(expected, match="need Debian's chromium: run scripts/setup"):
        browser.chromium()
