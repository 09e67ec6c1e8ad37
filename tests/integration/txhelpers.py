"""Helpers for transaction fault tests: task files, host inspection without SSH, waiting."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fleetbr.lab import Lab, host_exec
from fleetbr.tasks import BridgeTask, load_task, render_task
from tests.integration.helpers import specs

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 14  # shortest the lab's 3 s connect timeout allows (see protocol.min_timeout)


def task_file(tmp_path: Path, base: str = "bridge.yaml", **changes: Any) -> Path:
    """tasks/<base> with a short dead-man timeout and ``changes`` merged into ``bridge``."""
    doc = yaml.safe_load((REPO / "tasks" / base).read_text())
    doc["deadman"]["timeout"] = changes.pop("timeout", TIMEOUT)
    doc["bridge"].update(changes)
    path = tmp_path / f"{base.removesuffix('.yaml')}-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rendered(lab: Lab, path: Path, host: str) -> BridgeTask:
    """The task at ``path`` rendered for ``host`` of the lab inventory."""
    return render_task(load_task(path), specs(lab.inventory_dir)[host].context())


def sh(lab: Lab, host: str, script: str, check: bool = True) -> str:
    """Run ``script`` inside the host's namespaces (no SSH); its stdout."""
    return host_exec(lab, host, ["sh", "-c", script], check=check).stdout


def journal(lab: Lab, host: str) -> list[list[str]]:
    """The host's fleetbr journal, split into words."""
    text = sh(lab, host, "cat /var/lib/fleetbr/journal 2>/dev/null || :")
    return [line.split() for line in text.splitlines()]


def events(lab: Lab, host: str) -> list[str]:
    """The journal's event names, in order."""
    return [words[2] for words in journal(lab, host)]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.01) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def armed(lab: Lab, host: str) -> bool:
    """A transaction is armed on the host."""
    return sh(lab, host, "[ -f /var/lib/fleetbr/armed ] && echo yes || :").strip() == "yes"


def enslaved(lab: Lab, host: str) -> bool:
    """The host's NIC is a port of br0."""
    nic = lab.host(host).nic
    return "master br0" in sh(lab, host, f"ip -o link show dev {nic}")


def fleetbr_processes(lab: Lab, host: str) -> list[str]:
    """Command lines of every process in the host's netns except the lab's own (holder, sshd):
    a leftover timer, its ``sleep``, an apply or a rollback."""
    member = lab.host(host)
    pids = subprocess.run(["ip", "netns", "pids", member.netns], capture_output=True,
                          text=True, check=False).stdout.split()  # fmt: skip
    found = []
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(pid) == member.holder_pid or args.startswith("sshd"):
            continue
        found.append(f"{pid} {args.strip()}")
    return found
