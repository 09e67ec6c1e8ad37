"""A confirmed cutover per persistence backend, side by side with the network-namespace tier in
one run: the same task (``tasks/bridge.yaml`` with ``persist: auto``, which resolves to ``none``
on netns hosts, where no daemon manages the NIC, and to the host's daemon on distro hosts),
applied with the real CLI, alternating which tier goes first round by round. Every host is reset
between runs (not timed).

Per tier/backend it prints the median time per host (the ``elapsed`` of fleetbr's own per-host
result: facts, plan, stage, arm, apply, confirm) and its ratio to the netns tier, the median wall
time of each tier's whole ``fleetbr apply``, and what the apply cost the host's traffic: probes
lost by ``ping -i 0.2`` (IPv4 and IPv6) from the lab switch to the host for the whole run, and
carrier changes of the switch-side end of the host's NIC (a bounce of the NIC shows there).

The two labs share an address plan, so the netns lab lives in a network namespace of its own:
this thread enters it (``setns``) to build, reset and time that tier.

Usage (repository root, as root): ``scripts/in-netns .venv/bin/python -m bench.persist_bench
[--per-backend K] [--netns-hosts N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.common import PYTHON, REPO, WARM_IMPORTS, Run, _bytecode, timed
from fleetbr import lab as netns_lab
from fleetbr.lab import Lab, LabHost
from fleetbr.lab import distro as distro_lab

BACKENDS = ["ifupdown", "networkd", "netplan", "networkmanager"]
CLONE_NEWNET = 0x40000000
DEADMAN = 60
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Tier:
    """One lab and what its runs measured."""

    name: str
    lab: Lab
    netns_fd: int
    walls: list[float] = field(default_factory=list)
    elapsed: dict[str, list[float]] = field(default_factory=dict)  # backend -> per-host seconds
    lost: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # (v4, v6) per host
    carrier: dict[str, list[int]] = field(default_factory=dict)
    bridge: dict[str, list[int]] = field(default_factory=dict)  # br0's carrier changes


@contextmanager
def inside(fd: int) -> Iterator[None]:
    """This thread (and the processes it starts) in the network namespace ``fd`` meanwhile."""
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
        yield
    finally:
        _libc.setns(saved, CLONE_NEWNET)
        os.close(saved)


def new_netns() -> int:
    """A fresh network namespace (lo up); returns its fd. This thread stays where it was."""
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    finally:
        _libc.setns(saved, CLONE_NEWNET)
        os.close(saved)


def task_file(directory: Path) -> Path:
    """tasks/bridge.yaml with persist: auto and the bench's dead-man timeout."""
    doc = yaml.safe_load((REPO / "tasks" / "bridge.yaml").read_text(encoding="utf-8"))
    doc["persist"] = "auto"
    doc["deadman"]["timeout"] = DEADMAN
    path = directory / "bridge-persist.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def backend_of(host: LabHost) -> str:
    """The row a host's figures go to."""
    return host.backend or "netns"


def _pingers(lab: Lab) -> list[tuple[LabHost, subprocess.Popen[str], subprocess.Popen[str]]]:
    def ping(address: str) -> subprocess.Popen[str]:
        argv = ["ip", "netns", "exec", lab.switch_netns, "ping", "-n", "-q", "-i", "0.2", address]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    return [(h, ping(h.ip4), ping(h.ip6)) for h in lab.hosts]


def probes_lost(proc: subprocess.Popen[str]) -> int:
    """Stop a ``ping -q`` and return how many of its probes got no answer."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    for line in out.splitlines():
        if "packets transmitted" in line:
            sent, received = (int(part.split()[0]) for part in line.split(",")[:2])
            return sent - received
    raise RuntimeError(f"ping printed no summary: {out!r}")


def _carrier(lab: Lab) -> dict[str, int]:
    out: dict[str, int] = {}
    for host in lab.hosts:
        path = f"/sys/class/net/{host.switch_port}/carrier_changes"
        done = subprocess.run(["ip", "netns", "exec", lab.switch_netns, "cat", path],
                              capture_output=True, text=True, check=True)  # fmt: skip
        out[host.name] = int(done.stdout)
    return out


def measure(tier: Tier, task: Path) -> None:
    """One timed ``fleetbr apply`` of the tier with probes running; checks every host confirmed."""
    with inside(tier.netns_fd):
        before = _carrier(tier.lab)
        pingers = _pingers(tier.lab)
        try:
            run = timed([PYTHON, "-m", "fleetbr", "-i", str(tier.lab.inventory_dir), "--json",
                         "apply", str(task)])  # fmt: skip
        finally:
            lost = {h.name: (probes_lost(p4), probes_lost(p6)) for h, p4, p6 in pingers}
        after = _carrier(tier.lab)
        bridge = {h.name: _bridge_carrier(h) for h in tier.lab.hosts}
    record(tier, run, lost, {name: after[name] - before[name] for name in before})
    for host in tier.lab.hosts:
        tier.bridge.setdefault(backend_of(host), []).append(bridge[host.name])


def _bridge_carrier(host: LabHost) -> int:
    """Carrier changes of br0 on the host (the bridge was made by this run)."""
    netns = host.container_netns or host.netns
    argv = ["ip", "netns", "exec", netns, "cat", "/sys/class/net/br0/carrier_changes"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return int(done.stdout)


def record(tier: Tier, run: Run, lost: dict[str, tuple[int, int]], carrier: dict[str, int]) -> None:
    """Check the run and keep its figures."""
    doc = json.loads(run.stdout)
    bad = {name: r["status"] for name, r in doc.items() if r["status"] != "confirmed"}
    if bad or len(doc) != len(tier.lab.hosts):
        raise RuntimeError(f"{tier.name}: not confirmed: {bad}")
    tier.walls.append(run.wall)
    for host in tier.lab.hosts:
        key = backend_of(host)
        tier.elapsed.setdefault(key, []).append(float(doc[host.name]["elapsed"]))
        tier.lost.setdefault(key, []).append(lost[host.name])
        tier.carrier.setdefault(key, []).append(carrier[host.name])


def reset(tier: Tier) -> None:
    """Every host of the tier back to its state after ``up`` (untimed)."""
    with inside(tier.netns_fd):
        hosts = tier.lab.hosts
        if tier.lab.distro:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda h: distro_lab.reset_host(tier.lab, h), hosts))
        else:
            for host in hosts:
                netns_lab.reset_host(tier.lab, host)


def report(tiers: list[Tier], rounds: int) -> None:
    """Medians per tier/backend and the ratio to the netns tier."""
    print(f"\npersisted cutover vs netns tier: {rounds} rounds, one run, medians")
    for tier in tiers:
        walls = "  ".join(f"{w:.2f}s" for w in tier.walls)
        print(f"  {tier.name} tier: {len(tier.lab.hosts)} hosts, apply wall per round: {walls} "
              f"(median {statistics.median(tier.walls):.2f}s)")  # fmt: skip
    rows = {k: v for t in tiers for k, v in t.elapsed.items()}
    lost = {k: v for t in tiers for k, v in t.lost.items()}
    carrier = {k: v for t in tiers for k, v in t.carrier.items()}
    bridge = {k: v for t in tiers for k, v in t.bridge.items()}
    base = statistics.median(rows["netns"])
    print(f"  {'tier/backend':16} {'samples':>7} {'s/host':>7} {'ratio':>6} "
          f"{'lost v4 (max)':>14} {'lost v6 (max)':>14} {'carrier':>8} {'br0':>5}")  # fmt: skip
    for key in ["netns", *BACKENDS]:
        if key not in rows:
            continue
        median = statistics.median(rows[key])
        v4 = [a for a, _ in lost[key]]
        v6 = [b for _, b in lost[key]]
        print(f"  {key:16} {len(rows[key]):7d} {median:7.2f} {median / base:6.2f} "
              f"{statistics.median(v4):8.1f} ({max(v4):2d}) {statistics.median(v6):8.1f} "
              f"({max(v6):2d}) {statistics.median(carrier[key]):8.1f} "
              f"{statistics.median(bridge[key]):5.1f}")  # fmt: skip
    print("  (lost: probes of ping -i 0.2 from the switch lost during the whole apply, median "
          "per host, max in brackets; carrier: carrier changes of the switch-side end of the "
          "NIC; br0: carrier changes of br0 on the host since it was made)")  # fmt: skip


def main() -> int:
    """Both labs, the alternated rounds, the report; both labs always taken down."""
    args = argparse.ArgumentParser(description="persisted cutover per backend vs netns tier")
    args.add_argument("--per-backend", type=int, default=2, help="distro hosts per backend (2)")
    args.add_argument("--netns-hosts", type=int, default=0, help="netns hosts (default: as many)")
    args.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    opts = args.parse_args()
    count = opts.per_backend * len(BACKENDS)
    with tempfile.TemporaryDirectory(prefix="fleetbr-pbench-") as tmp, _bytecode(Path(tmp)):
        task = task_file(Path(tmp))
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        other = new_netns()
        tiers: list[Tier] = []
        try:
            with inside(other):
                built = netns_lab.up(Path(tmp) / "netns", opts.netns_hosts or count, prefix="fbrpn")
            tiers.append(Tier("netns", built, other))
            backends = [BACKENDS[i % len(BACKENDS)] for i in range(count)]
            built = distro_lab.up(Path(tmp) / "distro", count, backends, prefix="fbrpd")
            tiers.append(Tier("distro", built, here))
            timed([PYTHON, "-c", WARM_IMPORTS])
            for index in range(opts.rounds):
                for tier in tiers if index % 2 == 0 else list(reversed(tiers)):
                    measure(tier, task)
                    reset(tier)
            report(tiers, opts.rounds)
        finally:
            for tier in tiers:
                with inside(tier.netns_fd):
                    netns_lab.down(tier.lab.dir)
            os.close(other)
            os.close(here)
    return 0


if __name__ == "__main__":
    sys.exit(main())
