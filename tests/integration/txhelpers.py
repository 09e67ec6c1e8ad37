"""Helpers for transaction fault tests: task files, host inspection without SSH, waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fleetbr.lab import Lab, host_exec
from fleetbr.lab.system import netns_pids
from fleetbr.tasks import BridgeTask, load_task, render_task
from tests.integration.barrier import Gate
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
    marker = "/var/lib/fleetbr/armed"
    return sh(lab, host, f"[ -L {marker} ] || [ -e {marker} ] && echo yes || :").strip() == "yes"


def armed_txid(lab: Lab, host: str) -> str:
    """The transaction id the host's armed marker names."""
    return sh(lab, host, "readlink /var/lib/fleetbr/armed").strip()


def enslaved(lab: Lab, host: str) -> bool:
    """The host's NIC is a port of br0."""
    nic = lab.host(host).nic
    return "master br0" in sh(lab, host, f"ip -o link show dev {nic}")


def host_processes(lab: Lab, host: str) -> dict[int, list[str]]:
    """pid -> argv of every process in the host's network namespace (gone ones skipped)."""
    found = {}
    for pid in netns_pids(lab.host(host).netns):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        found[pid] = raw.decode(errors="replace").split("\0")[:-1]
    return found


def fleetbr_processes(lab: Lab, host: str) -> list[str]:
    """Command lines of every process in the host's netns except the lab's own (holder, sshd):
    a leftover timer, its ``sleep``, an apply or a rollback."""
    holder = lab.host(host).holder_pid
    return [
        f"{pid} {' '.join(argv)}"
        for pid, argv in host_processes(lab, host).items()
        if pid != holder and not (argv and argv[0].startswith("sshd"))
    ]


def stale_bridged_transaction(lab: Lab, host: str, tmp_path: Path) -> str:
    """Apply the bridge task, then SIGKILL the controller and every process fleetbr left on the
    host (the timer too): the host stays bridged under an armed transaction nobody will decide.
    Returns its txid."""
    gate = Gate(tmp_path / f"barrier-stale-{host}")  # never released: no confirm
    controller = subprocess.Popen(
        gate.argv("confirm", "-i", str(lab.inventory_dir), "-l", host, "apply",
                  str(task_file(tmp_path, timeout=120))),
        env=gate.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        gate.reached("confirm", timeout=30)
        wait_for(lambda: enslaved(lab, host) and "applied" in events(lab, host), 30, "apply")
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    for line in fleetbr_processes(lab, host):
        os.kill(int(line.split(" ", 1)[0]), signal.SIGKILL)
    wait_for(lambda: not fleetbr_processes(lab, host), 5, "fleetbr's processes to die")
    return armed_txid(lab, host)
