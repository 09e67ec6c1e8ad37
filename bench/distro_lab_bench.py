"""Costs of the distro lab tier: boot time, memory and disk per host, reboots, teardown.

Usage (repository root, as root): ``scripts/in-netns .venv/bin/python -m bench.distro_lab_bench
[--hosts N]``. Boots N hosts (backends in turn: ifupdown, networkd, netplan, networkmanager,
none), waits until each runs ``systemctl is-system-running --wait``, then measures per host the
proportional memory (PSS, from /proc/PID/smaps_rollup) of every process in the container, the
machine's MemAvailable drop divided by N (page cache, tmpfs and kernel memory included: noisy
when other work runs), the size of its overlay layer, a soft and a hard ``lab reboot``, and
``lab down``. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from fleetbr.lab import Lab, down, host_exec
from fleetbr.lab.distro import reboot, up
from fleetbr.lab.distro.rootfs import STAMP
from fleetbr.lab.distro.supervisor import init_pid

ORDER = ["ifupdown", "networkd", "netplan", "networkmanager", "none"]


def pss_kib(pids_ns: str) -> int:
    """PSS (KiB) of every process whose pid namespace is ``pids_ns``."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "ns/pid") != pids_ns:
                continue
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def du_kib(path: Path) -> int:
    """Disk use of ``path`` (KiB)."""
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])  # fmt: skip


def per_host(lab: Lab) -> list[dict[str, Any]]:
    """Backend, memory and layer size of every host."""
    rows = []
    for host in lab.hosts:
        pid = init_pid(host)
        assert pid is not None
        rows.append({
            "host": host.name,
            "backend": host.backend,
            "pss_mib": round(pss_kib(os.readlink(f"/proc/{pid}/ns/pid")) / 1024, 1),
            "layer_mib": round(du_kib(host.dir / "upper") / 1024, 1),
        })  # fmt: skip
    return rows


def mem_available_kib() -> int:
    """MemAvailable of this machine (KiB)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def timed(action: Any) -> float:
    started = time.monotonic()
    action()
    return round(time.monotonic() - started, 2)


def main() -> None:
    """Measure and print the results as JSON."""
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--hosts", type=int, default=5)
    hosts = args.parse_args().hosts
    backends = [ORDER[i % len(ORDER)] for i in range(hosts)]
    with tempfile.TemporaryDirectory() as tmp:
        available = mem_available_kib()
        started = time.monotonic()
        lab = up(Path(tmp) / "lab", hosts, backends, prefix="fbrbench")
        result: dict[str, Any] = {"hosts": hosts, "up_s": round(time.monotonic() - started, 2)}
        try:
            for host in lab.hosts:
                host_exec(lab, host, ["systemctl", "is-system-running", "--wait"], check=False)
            result["booted_s"] = round(time.monotonic() - started, 2)
            used = (available - mem_available_kib()) / 1024 / hosts
            result["mem_available_drop_mib_per_host"] = round(used, 1)
            rows = per_host(lab)
            result["per_host"] = rows
            result["pss_mib_median"] = statistics.median(r["pss_mib"] for r in rows)
            result["reboot_soft_s"] = timed(lambda: reboot(lab, lab.hosts[0]))
            result["reboot_hard_s"] = timed(lambda: reboot(lab, lab.hosts[0], hard=True))
            stamp = json.loads((Path(lab.rootfs) / STAMP).read_text())
            result["rootfs"] = {"path": lab.rootfs, "build_s": stamp["seconds"],
                                "mib": round(du_kib(Path(lab.rootfs)) / 1024)}  # fmt: skip
        finally:
            result["down_s"] = timed(lambda: down(lab.dir))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
