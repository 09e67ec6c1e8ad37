"""Retry what failed on real lab hosts: an apply in which one host is cut off and rolls back,
``apply --list-hosts -l @failed:last`` listing only that host without contacting any, then
``apply -l @failed:RUN`` applying to that host alone."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from fleetbr.history.sqlite import SqliteStore
from fleetbr.lab import Lab
from tests.integration.helpers import REPO, TIMEOUT, enslaved, events, fleetbr, task_file

CUT = "hv15"  # gets an address the controller cannot reach: its own timer rolls it back


def cutting_one(tmp_path: Path) -> Path:
    """tasks/bridge.yaml, except that ``CUT`` gets a wrong address (tasks/cut-off.yaml's fault)."""
    text = (REPO / "tasks/bridge.yaml").read_text()
    wrong = f"{{{{ '[198.51.100.202/30]' if host.name == '{CUT}' else 'move' }}}}"
    text = text.replace("addresses: move", f"addresses: {wrong}")
    text = text.replace("timeout: 60", f"timeout: {TIMEOUT}")
    path = tmp_path / "cut-one.yaml"
    path.write_text(text)
    return path


def test_failed_hosts_of_a_run_are_listed_then_retried_alone(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    names = ["hv14", CUT]
    for name in names:
        fresh_host(name)
    history = tmp_path / "h.sqlite3"
    common = ("--history", str(history), "-i", str(lab.inventory_dir))

    code, doc, err = fleetbr(*common, "-l", ",".join(names), "apply", str(cutting_one(tmp_path)))
    assert code == 1, (err, doc)
    assert {n: doc[n]["status"] for n in names} == {"hv14": "confirmed", CUT: "rolled_back"}
    journals = {name: events(lab, name) for name in names}

    task = task_file(tmp_path)
    code, plan, err = fleetbr(*common, "-l", "@failed:last", "apply", str(task), "--canary", "1",
                              "--list-hosts")  # fmt: skip
    assert code == 0, err
    assert (plan["canary"], plan["batches"]) == ([CUT], []), plan
    assert {name: events(lab, name) for name in names} == journals, "a host was contacted"
    with closing(SqliteStore(history, create=False)) as store:
        [first] = store.runs()  # --list-hosts records nothing

    code, doc, err = fleetbr(*common, "-l", f"@failed:{first.id}", "apply", str(task))
    assert code == 0, (err, doc)
    assert {n: r["status"] for n, r in doc.items()} == {CUT: "confirmed"}
    assert enslaved(lab, CUT)
    assert events(lab, "hv14") == journals["hv14"], "a host that was confirmed was touched again"
    with closing(SqliteStore(history, create=False)) as store:
        retry = store.runs()[0]
    assert (retry.selection, retry.hosts) == (f"@failed:{first.id}", [CUT])

    code, _, err = fleetbr(*common, "-l", "@failed:last", "apply", str(task))
    assert code == 2 and err.endswith(f"every host of run {retry.id} (apply) succeeded; "
                                      "nothing to retry\n"), err  # fmt: skip
