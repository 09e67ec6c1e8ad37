"""Uplink topologies (docs/topologies.md) side by side with today's single NIC, in one run, each
on the tier that can express it: the netns tier (runtime: one bridge vs two bridges, one of them
host-only), the distro tier (systemd-networkd in nspawn hosts: one bridge over a NIC with static
addresses vs one keeping the NIC's DHCP leases) and the VM tier (systemd-networkd on Debian's
kernel: one bridge vs a bond of two NICs, a bridge over a VLAN of eth0, a VLAN-aware bridge with
a VLAN interface). The hosts and tasks are ``fleetbr lab up --topology``'s
(fleetbr.lab.topology), applied with the real CLI.

Per topology it prints the median time per host (the ``elapsed`` of fleetbr's own per-host result:
facts, plan, stage, arm, apply, confirm) and its ratio to the single NIC on the same tier, the
probes lost by ``ping -i 0.2`` (IPv4 and IPv6) from the lab switch to the host's lab address
during the whole apply, and the carrier changes the host's kernel counted on its NICs during the
apply (/sys/class/net/NIC/carrier_changes on the host; a virtio NIC counted none even when
enslaved to a new bond: docs/benchmarks.md).

The netns and distro tiers run ``--rounds`` rounds of ``--hosts`` hosts per topology (which goes
first alternating, hosts reset between, not timed); the distro tier's two topologies need two
labs (static addresses, and the switch's DHCP server). The VM tier boots one VM per topology
(TCG: minutes on a loaded machine) and applies each once, one host at a time, single first: a
VM is not reset (a reboot costs minutes), so it has one sample per topology. The labs share an
address plan: each lives in a network namespace of its own (bench.persist_bench.inside).

Usage (repository root, as root): ``scripts/in-netns .venv/bin/python -m bench.topology_bench
[--quick] [--tiers netns,distro,vm] [--hosts N] [--rounds R]``. ``--quick``: 2 hosts per lab, 1
round, and on the VM tier only single and bond (two VMs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.common import PYTHON, REPO, WARM_IMPORTS, _bytecode, timed
from bench.persist_bench import inside, new_netns, probes_lost
from fleetbr.lab import Lab, LabHost, distro, topology, vm
from fleetbr.lab import down as lab_down
from fleetbr.lab import up as netns_up
from fleetbr.lab.state import reset_host

NETNS_TOPOLOGIES = ("single", "multi")
DISTRO_TOPOLOGIES = ("single", "dhcp")
VM_TOPOLOGIES = ("single", "bond", "vlan", "vlan-aware")
QUICK_VM = ("single", "bond")
VM_NICS = ("eth0", "eth1")
# bounds, not expectations: a TCG guest's networkd apply of a bond took minutes on a busy machine
APPLY_WAIT = {"netns": 300.0, "distro": 600.0, "vm": float(topology.TIMEOUTS["vm"] + 300)}
BOOT_SETTLE_WAIT = 600


@dataclass
class Sample:
    """One host's apply of one topology."""

    status: str
    elapsed: float
    lost4: int
    lost6: int
    carrier: int


@dataclass
class Tier:
    """One lab, its topologies and their samples."""

    name: str
    lab: Lab
    netns_fd: int
    topologies: tuple[str, ...]
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    walls: dict[str, list[float]] = field(default_factory=dict)


def carrier_changes(tier: Tier, host: LabHost) -> int:
    """The host kernel's carrier changes, summed over its NICs."""
    if host.vm:
        paths = " ".join(f"/sys/class/net/{nic}/carrier_changes" for nic in VM_NICS)
        out = vm_ssh(tier.lab, host, f"cat {paths}")
    else:
        path = f"/sys/class/net/{host.nic}/carrier_changes"
        argv = ["ip", "netns", "exec", host.container_netns or host.netns, "cat", path]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return sum(int(word) for word in out.split())


def vm_ssh(lab: Lab, host: LabHost, command: str, timeout: float = 120) -> str:
    """``command`` on VM ``host`` over OpenSSH with the lab's key and known_hosts."""
    argv = ["ssh", "-F", "/dev/null", "-i", str(lab.key_path), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=15", f"root@{host.ip4}", command]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True).stdout


def pingers(lab: Lab, hosts: list[LabHost]) -> list[tuple[subprocess.Popen[str], ...]]:
    """``ping -i 0.2`` from the lab switch to each host's IPv4 and IPv6 address."""

    def ping(address: str) -> subprocess.Popen[str]:
        argv = ["ip", "netns", "exec", lab.switch_netns, "ping", "-n", "-q", "-i", "0.2", address]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    return [(ping(h.ip4), ping(h.ip6)) for h in hosts]


def measure(tier: Tier, topology_name: str, hosts: list[LabHost], task: Path) -> None:
    """One timed ``fleetbr apply`` of ``task`` on ``hosts`` with the probes running."""
    with inside(tier.netns_fd):
        before = {h.name: carrier_changes(tier, h) for h in hosts}
        probes = pingers(tier.lab, hosts)
        try:
            started = time.perf_counter()
            done = subprocess.run(
                [PYTHON, "-m", "fleetbr", "-i", str(tier.lab.inventory_dir), "--json",
                 "-l", ",".join(h.name for h in hosts), "apply", str(task)],
                cwd=REPO, capture_output=True, text=True, check=False,
                timeout=APPLY_WAIT[tier.name],
            )  # fmt: skip
            wall = time.perf_counter() - started
        finally:
            lost = [(probes_lost(p4), probes_lost(p6)) for p4, p6 in probes]
        after = {h.name: carrier_changes(tier, h) for h in hosts}
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(f"{tier.name}/{topology_name}: {done.stderr.strip()[-2000:]}") from None
    tier.walls.setdefault(topology_name, []).append(wall)
    for host, (v4, v6) in zip(hosts, lost, strict=True):
        result = doc[host.name]
        sample = Sample(result["status"], float(result["elapsed"]), v4, v6,
                        after[host.name] - before[host.name])  # fmt: skip
        tier.samples.setdefault(topology_name, []).append(sample)
        if sample.status != "confirmed":
            print(f"{tier.name}/{topology_name} {host.name}: {sample.status}: "
                  f"{result['message']}", file=sys.stderr)  # fmt: skip


def run_netns(tier: Tier, tasks: dict[str, Path], rounds: int) -> None:
    """``rounds`` rounds of every topology on every host, alternating which goes first."""
    for index in range(rounds):
        order = tier.topologies if index % 2 == 0 else tuple(reversed(tier.topologies))
        for name in order:
            measure(tier, name, tier.lab.hosts, tasks[name])
            with inside(tier.netns_fd):
                for host in tier.lab.hosts:
                    reset_host(tier.lab, host)


def run_distro(tiers: list[Tier], tasks: dict[str, Path], rounds: int) -> None:
    """``rounds`` rounds of the distro tier's labs (one per topology), alternating which goes
    first; hosts reset between (a fresh layer and a boot: not timed)."""
    for index in range(rounds):
        for tier in tiers if index % 2 == 0 else list(reversed(tiers)):
            (name,) = tier.topologies
            measure(tier, name, tier.lab.hosts, tasks[name])
            with inside(tier.netns_fd), ThreadPoolExecutor(4) as pool:
                list(pool.map(partial(distro.reset_host, tier.lab), tier.lab.hosts))


def run_vm(tier: Tier, task: Path) -> None:
    """Each VM's own topology (the ``mixed`` task), one host at a time."""
    for host, name in zip(tier.lab.hosts, tier.topologies, strict=True):
        measure(tier, name, [host], task)


def report(tiers: list[Tier]) -> None:
    """Medians per tier and topology, and the ratio to the single NIC on the same tier."""
    print("\nuplink topologies vs a single NIC, one run, medians per host")
    print("| tier | topology | samples | confirmed | s/host | vs single | lost v4 (max) "
          "| lost v6 (max) | carrier changes (max) | apply wall s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    singles: dict[str, list[float]] = {}
    for tier in tiers:
        singles.setdefault(tier.name, []).extend(s.elapsed for s in tier.samples.get("single", []))
    for tier in tiers:
        base = statistics.median(singles[tier.name])
        for name in tier.topologies:
            got = tier.samples[name]
            median = statistics.median(s.elapsed for s in got)
            confirmed = sum(s.status == "confirmed" for s in got)
            cells = [
                tier.name, name, str(len(got)), str(confirmed), f"{median:.2f}",
                f"{median / base:.2f}", _med_max([s.lost4 for s in got]),
                _med_max([s.lost6 for s in got]), _med_max([s.carrier for s in got]),
                f"{statistics.median(tier.walls[name]):.1f}",
            ]  # fmt: skip
            print("| " + " | ".join(cells) + " |")
    print("(lost: probes of ping -i 0.2 from the lab switch lost during the whole apply; "
          "carrier changes: the host kernel's counters of its NICs during the apply)")  # fmt: skip


def _med_max(values: list[int]) -> str:
    return f"{statistics.median(values):.1f} ({max(values)})"


def options() -> argparse.Namespace:
    """The command line."""
    args = argparse.ArgumentParser(description="uplink topologies vs a single NIC")
    args.add_argument("--quick", action="store_true", help="2 hosts per lab, 1 round, 2 VMs")
    args.add_argument("--tiers", default="netns,distro,vm", help="netns,distro,vm (default all)")
    args.add_argument("--hosts", type=int, default=4, help="netns and distro hosts (default 4)")
    args.add_argument("--rounds", type=int, default=3, help="netns/distro rounds (default 3)")
    opts = args.parse_args()
    opts.tiers = [t.strip() for t in opts.tiers.split(",") if t.strip()]
    if not opts.tiers or set(opts.tiers) - {"netns", "distro", "vm"}:
        args.error("--tiers: a list of netns, distro, vm")
    if opts.quick:
        opts.hosts, opts.rounds = 2, 1
    return opts


def netns_tier(tmp: Path, hosts: int, fd: int) -> tuple[Tier, dict[str, Path]]:
    """The netns lab (in network namespace ``fd``) and its task per topology."""
    with inside(fd):
        built = netns_up(tmp / "netns", hosts, prefix="fbrtn")
    tasks = {name: topology.write(built, name) for name in NETNS_TOPOLOGIES}
    return Tier("netns", built, fd, NETNS_TOPOLOGIES), tasks


def distro_tiers(tmp: Path, hosts: int, fds: tuple[int, int]) -> list[Tier]:
    """Two distro labs of networkd hosts, each in a network namespace of its own (one address
    plan): NICs with static addresses (single) and NICs with DHCP leases (dhcp)."""
    out = []
    for name, fd in zip(DISTRO_TOPOLOGIES, fds, strict=True):
        with inside(fd):
            built = distro.up(tmp / f"distro-{name}", hosts, "networkd", prefix=f"fbrd{name[0]}",
                              dhcp_hosts=name == "dhcp")  # fmt: skip
        out.append(Tier("distro", built, fd, (name,)))
    return out


def vm_tier(tmp: Path, names: tuple[str, ...], fd: int) -> Tier:
    """One VM per topology: networkd on eth0, eth1 idle (booted, not yet settled)."""
    built = vm.up(tmp / "vm", len(names), "networkd", nics=2, prefix="fbrtv")
    return Tier("vm", built, fd, names)


def settle(tier: Tier, started: float) -> Path:
    """Wait until every VM finished booting; write the mixed task (each VM's own topology)."""
    for host in tier.lab.hosts:  # a guest still booting stalls SSH sessions on a busy machine
        vm_ssh(tier.lab, host, "systemctl is-system-running --wait", timeout=BOOT_SETTLE_WAIT)
    print(f"vm: {len(tier.lab.hosts)} VMs up in {time.monotonic() - started:.0f}s",
          file=sys.stderr)  # fmt: skip
    task = topology.write(tier.lab, "mixed")
    topology.mark_hosts(tier.lab.inventory_dir / "hosts.yaml", list(tier.topologies))
    return task


def main() -> int:
    """The labs, the runs, the report; every lab always taken down."""
    opts = options()
    vm_names = QUICK_VM if opts.quick else VM_TOPOLOGIES
    if "vm" in opts.tiers and shutil.which("qemu-system-x86_64") is None:
        raise SystemExit("the VM tier needs QEMU: run scripts/setup (or --tiers netns)")
    with tempfile.TemporaryDirectory(prefix="fleetbr-tbench-") as tmp, _bytecode(Path(tmp)):
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        other, third = new_netns(), new_netns()
        tiers: list[Tier] = []
        try:
            timed([PYTHON, "-c", WARM_IMPORTS])
            if "netns" in opts.tiers:
                tier, tasks = netns_tier(Path(tmp), opts.hosts, other)
                tiers.append(tier)
                run_netns(tier, tasks, opts.rounds)
            if "distro" in opts.tiers:
                tiers += distro_tiers(Path(tmp), opts.hosts, (other, third))
                tasks = {t.topologies[0]: topology.write(t.lab, t.topologies[0])
                         for t in tiers if t.name == "distro"}  # fmt: skip
                run_distro([t for t in tiers if t.name == "distro"], tasks, opts.rounds)
            if "vm" in opts.tiers:
                started = time.monotonic()
                tiers.append(vm_tier(Path(tmp), vm_names, here))
                run_vm(tiers[-1], settle(tiers[-1], started))
            report(tiers)
        finally:
            for tier in tiers:
                with inside(tier.netns_fd):
                    lab_down(tier.lab.dir)
            for fd in (other, third, here):
                os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
