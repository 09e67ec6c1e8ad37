"""``--diff`` on real lab hosts: ``plan --diff`` (read-only, JSON and plain text),
``check --diff`` on a drifted host, ``apply --diff`` (the planned view first, then the apply)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetbr.history.sqlite import SqliteStore
from fleetbr.lab import Lab, host_state
from tests.integration.helpers import bridged_host, fleetbr, sh, task_file


def plain_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI without --json, stdout a pipe (no terminal: no colour)."""
    return subprocess.run(
        [sys.executable, "-m", "fleetbr", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_plan_diff_shows_the_change_and_changes_nothing(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    host = fresh_host("hv03")
    nic = host.nic
    task = task_file(tmp_path)
    before = host_state(lab, "hv03")
    db = tmp_path / "history.sqlite3"
    inventory = ("-i", str(lab.inventory_dir), "-l", "hv03", "--history", str(db))
    code, doc, err = fleetbr(*inventory, "plan", "--diff", str(task))
    assert code == 0, err
    diff = doc["hv03"]["diff"]
    [run] = SqliteStore(db).runs()
    [row] = SqliteStore(db).hosts_of(run.id)
    assert row.diff == diff and "diff" not in row.data  # the history keeps the view once
    assert row.data["steps"] == doc["hv03"]["steps"]
    assert diff["mode"] == "plan" and diff["changed"] and diff["host"] == "hv03"
    ports = diff["runtime"]["ports"]
    assert f"br0 port {nic}" in ports["after"] and f"+br0 port {nic}\n" in ports["diff"]
    addresses = diff["runtime"]["addresses"]
    moved = [line.split()[1] for line in addresses["before"] if line.startswith(f"{nic} ")]
    assert moved and all(f"br0 {cidr}" in addresses["after"] for cidr in moved)
    conf = next(f for f in diff["files"] if f["path"] == "/etc/sysctl.d/bridge.conf")
    assert conf["status"] == "created" and conf["diff"].startswith("--- /dev/null\n")
    done = plain_cli(*inventory, "plan", "--diff", str(task))
    assert done.returncode == 0, done.stderr
    assert "--- hv03: plan, changes\n" in done.stdout
    assert f"\n+br0 port {nic}\n" in done.stdout and "\x1b" not in done.stdout
    assert done.stdout.index("--- hv03: plan") < done.stdout.index("host  status")
    assert host_state(lab, "hv03") == before


def test_check_diff_shows_drift_as_current_against_desired(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    task = task_file(tmp_path)
    bridged_host(lab, fresh_host, "hv02", task)
    db = tmp_path / "history.sqlite3"
    inventory = ("-i", str(lab.inventory_dir), "-l", "hv02", "--history", str(db))
    code, doc, err = fleetbr(*inventory, "check", "--diff", str(task))
    assert code == 0, err
    assert doc["hv02"]["diff"]["mode"] == "check" and not doc["hv02"]["diff"]["changed"]
    sh(lab, "hv02", "sysctl -qw net.bridge.bridge-nf-call-iptables=1")
    sh(lab, "hv02", "echo '# edited by hand' >> /etc/sysctl.d/bridge.conf")
    code, doc, err = fleetbr(*inventory, "check", "--diff", str(task))
    assert code == 3, err
    sysctls = doc["hv02"]["diff"]["runtime"]["sysctls"]
    assert "-net.bridge.bridge-nf-call-iptables = 1\n" in sysctls["diff"]
    assert "+net.bridge.bridge-nf-call-iptables = 0\n" in sysctls["diff"]
    others = {k for k, v in doc["hv02"]["diff"]["runtime"].items() if v["changed"]}
    assert others == {"sysctls"}
    (conf,) = doc["hv02"]["diff"]["files"]
    assert conf["path"] == "/etc/sysctl.d/bridge.conf" and conf["status"] == "changed"
    assert conf["known"] and conf["before"].endswith("# edited by hand\n")
    assert conf["diff"].startswith("--- a/etc/sysctl.d/bridge.conf\n+++ b/etc/sysctl.d/")
    assert "\n-# edited by hand\n" in conf["diff"]
    # the history's diff of a check stays its drift (field, want, have), --diff or not
    run = SqliteStore(db).runs()[0]
    assert SqliteStore(db).hosts_of(run.id)[0].diff == doc["hv02"]["differences"]


def test_apply_diff_shows_the_planned_view_then_applies(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    host = fresh_host("hv04")
    task = task_file(tmp_path)
    done = plain_cli("-i", str(lab.inventory_dir), "-l", "hv04", "--no-history", "apply",
                     "--diff", str(task))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"+br0 port {host.nic}\n" in out
    assert out.index("--- hv04: apply, changes") < out.index("confirmed")
    assert sh(lab, "hv04", f"cat /sys/class/net/{host.nic}/master/uevent").count("br0") == 1
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv04", "--no-history",
                             "apply", "--diff", str(task))  # fmt: skip
    assert code == 0, err
    assert doc["hv04"]["status"] == "unchanged"
    assert doc["hv04"]["diff"]["mode"] == "apply" and not doc["hv04"]["diff"]["changed"]
