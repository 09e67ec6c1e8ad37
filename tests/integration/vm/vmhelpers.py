"""Helpers for the VM tier's topology tests: topology tasks, the host's kernel state and daemon
files over SSH (a VM has no namespace to enter), and the exact-rollback check of
tests/integration/distro/persisthelpers.py (restored_problems) for a VM."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetbr.backends import ini
from fleetbr.changes.bridge.change import BridgeChange
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.lab import Lab
from fleetbr.lab.state import normalise_dump
from fleetbr.lab.vm import reboot
from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import Transaction, _arm_and_apply, _prepare, resolve
from fleetbr.transport.ssh import open_connection
from tests.integration.distro.persisthelpers import daemon_view, owns, settled_facts, state_diff
from tests.integration.helpers import fleetbr, rendered, specs
from tests.integration.vm.conftest import booted_lab, ssh, vm_sh

# What a kernel dump may differ in without the host being different: counters, timers, indexes.
_VOLATILE = frozenset(
    {"ifindex", "link_index", "stats", "stats64", "valid_life_time", "preferred_life_time"}
)
_DUMPS = {
    "links": "ip -j -d link",
    "addresses": "ip -j addr",
    "routes4": "ip -j -4 route show table all",
    "routes6": "ip -j -6 route show table all",
    "bridge_ports": "bridge -j link",
}
BOND = {"name": "bond0", "slaves": ["eth0", "eth1"], "mode": "active-backup",
        "options": {"miimon": 100}}  # fmt: skip
NM_ETC = "/etc/NetworkManager/system-connections"
NM_BOND_UUID = "8e1f2a3b-4c5d-4e6f-8a7b-9c0d1e2f3a40"  # its slaves': ...41, ...42
# eth1 as NetworkManager would have it from an operator: a profile of its own, no address
NM_ETH1 = (
    "[connection]\nid=eth1\nuuid=4f7d1c2a-9b3e-4e5f-8a6b-0c1d2e3f4a5b\ntype=ethernet\n"
    "interface-name=eth1\nautoconnect=true\n\n[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=ignore\n"
)


@contextmanager
def booted_nm_lab(tmp_path_factory: pytest.TempPathFactory, prefix: str) -> Iterator[Lab]:
    """One VM (hv01, two NICs) whose eth0 NetworkManager configures (the lab's addresses),
    eth1 with a profile of its own and no address (NM_ETH1), up."""
    with booted_lab(tmp_path_factory, ["networkmanager"], prefix=prefix) as lab:
        write = f"umask 077 && printf '%s' '{NM_ETH1}' > {NM_ETC}/eth1.nmconnection"
        vm_sh(lab, "hv01", f"{write} && nmcli connection reload && nmcli -w 60 connection up eth1")
        yield lab


def _nm_bond_profiles(eth0_profile: str, mac: str) -> dict[str, str]:
    """An operator's NetworkManager bond of eth0 and eth1 (active-backup, miimon 100) holding
    eth0's addresses (the [ipv4]/[ipv6] of ``eth0_profile``), its MAC pinned to eth0's ``mac``
    (the lab's controller has a permanent neighbour entry with it), a slave profile per NIC."""
    ip = [(name, lines) for name, lines in ini.sections(eth0_profile) if name in ("ipv4", "ipv6")]
    bond = ini.render([
        ("connection", ["id=bond0", f"uuid={NM_BOND_UUID}", "type=bond",
                        "interface-name=bond0", "autoconnect=true"]),
        ("ethernet", [f"cloned-mac-address={mac.upper()}"]),
        ("bond", ["mode=active-backup", "miimon=100"]),
        *ip,
    ])  # fmt: skip
    out = {f"{NM_ETC}/nm-bond0.nmconnection": bond}
    for i, nic in enumerate(("eth0", "eth1")):
        out[f"{NM_ETC}/nm-bond0-{nic}.nmconnection"] = ini.render([
            ("connection", [f"id=bond0-{nic}", f"uuid={NM_BOND_UUID[:-1]}{i + 1}", "type=ethernet",
                            f"interface-name={nic}", "master=bond0", "slave-type=bond",
                            "autoconnect=true"]),
        ])  # fmt: skip
    return out


def make_nm_bond(lab: Lab, host: str, timeout: float) -> None:
    """Turn ``host`` (a confirmed topology of fleetbr's on it, or the lab's eth0/eth1 profiles)
    into an operator's NetworkManager bond (_nm_bond_profiles): every other profile of eth0,
    eth1, bond0 and br0 removed, br0 and bond0 deleted, the bond's profiles up. Run detached
    (it cuts the host off), then wait until the host answers and NM settled."""
    eth0 = vm_sh(lab, host, f"cat {NM_ETC}/eth0.nmconnection")
    link = settled_facts(lab, host, timeout=120).link("eth0")
    assert link is not None and link.mac, link
    files = _nm_bond_profiles(eth0, link.mac)
    writes = " && ".join(f"printf '%s' {shlex.quote(t)} > {p}" for p, t in files.items())
    ups = " && ".join(f"nmcli -w 60 connection up {NM_BOND_UUID[:-1]}{i}" for i in (1, 2))
    old = ["br0", "bond0", "bond0-slave-eth0", "bond0-slave-eth1", "eth0", "eth1"]
    script = (
        f"cd {NM_ETC} && rm -f --{''.join(f' {n}.nmconnection' for n in old)} && umask 077"
        f" && {writes}"
        " && nmcli connection reload && sleep 2; ip link del br0 2>/dev/null; ip link del bond0"
        f" 2>/dev/null; nmcli -w 60 connection up {NM_BOND_UUID} && {ups}"
    )
    vm_sh(lab, host, f"printf '%s' {shlex.quote(script)} > /root/nm-bond.sh")
    vm_sh(lab, host, "setsid sh /root/nm-bond.sh </dev/null >/root/nm-bond.log 2>&1 &")
    active = (
        f"nmcli -t -f UUID,DEVICE connection show --active | grep -qx {NM_BOND_UUID[:-1]}2:eth1"
    )
    wait_vm(lab, host, active, timeout, "the NetworkManager bond")
    facts = settled_facts(lab, host, timeout=120)
    assert facts.manager("bond0").manager == "networkmanager", facts.manager("bond0")


def topology_task(tmp_path: Path, persist: str, timeout: int, **top: Any) -> Path:
    """A task file: ``top`` (``bridge:`` or ``bridges:``) with ``persist`` and a dead-man
    ``timeout`` (TCG guests on a loaded machine are slow to confirm)."""
    doc = {"persist": persist, "netfilter": "keep", "deadman": {"timeout": timeout}, **top}
    path = tmp_path / f"topology-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cli(lab: Lab, host: str, task: Path, command: str, timeout: float) -> tuple[int, str, str]:
    """``fleetbr COMMAND task`` on ``host``: exit code, status, message (``timeout``: the
    subprocess's bound; a TCG guest's apply can take minutes on a loaded machine)."""
    code, doc, err = fleetbr(
        "-i", str(lab.inventory_dir), "-l", host, command, str(task), timeout=timeout
    )
    assert isinstance(doc, dict), (doc, err)
    return code, doc[host]["status"], doc[host]["message"]


def kernel_state(lab: Lab, host: str) -> dict[str, Any]:
    """Links (with details), addresses, routes of every table, bridge ports: comparable dumps."""
    out = {}
    for key, command in _DUMPS.items():
        text = vm_sh(lab, host, command).strip()
        items = normalise_dump(json.loads(text) if text else [], _VOLATILE)
        out[key] = sorted(items, key=json.dumps)
    return out


def vm_file_sha256(lab: Lab, host: str, path: str) -> str | None:
    """sha256 of a file on the VM (None: absent)."""
    quoted = shlex.quote(path)  # NetworkManager's own profiles have spaces in their names
    out = vm_sh(lab, host, f"[ -e {quoted} ] && sha256sum {quoted} || :").split()
    return out[0] if out else None


def wait_event(
    lab: Lab, host: str, word: str, timeout: float, failed: str | None = "apply_failed"
) -> None:
    """Poll the host's fleetbr journal until ``word`` is there; fail on ``failed`` or after
    ``timeout`` s. An SSH attempt that fails meanwhile is retried: an apply may cut the host off
    for a while (``netplan apply`` or NetworkManager re-enslaving a NIC)."""
    deadline = time.monotonic() + timeout
    while True:
        done = ssh(
            lab, lab.host(host).ip4, "cat /var/lib/fleetbr/journal 2>/dev/null || :", shared=True
        )
        words = [line.split()[2] for line in done.stdout.splitlines() if len(line.split()) > 2]
        if done.returncode == 0 and word in words:
            return
        assert failed is None or failed not in words, f"{host}: {failed}\n{apply_logs(lab, host)}"
        assert time.monotonic() < deadline, f"{host}: no {word} within {timeout} s"
        time.sleep(1)


def apply_logs(lab: Lab, host: str) -> str:
    """The tail of the host's newest transaction log (its steps, their error output)."""
    return vm_sh(lab, host, 'tail -n 40 "$(ls -t /var/lib/fleetbr/tx/*/apply.log | head -n 1)"')


def failed_rollback_steps(lab: Lab, host: str, txid: str) -> list[str]:
    """The rollback steps of ``txid`` its log says failed (a step's own error output, also in
    the log, does not count)."""
    log = vm_sh(lab, host, f"cat /var/lib/fleetbr/tx/{txid}/apply.log")
    return re.findall(r"^rollback step \d+ failed: .*$", log, re.M)


def roll_back_on_host(lab: Lab, host: str, txid: str, reason: str, timeout: float) -> None:
    """Run the host's own rollback of ``txid`` (as its timer or a failed confirm runs it),
    detached (it may cut the host off for longer than an SSH session lasts: the daemon takes
    the NICs back), and wait until the host's journal says it rolled back."""
    script = f"/var/lib/fleetbr/tx/{txid}/rollback.sh"
    vm_sh(lab, host, f"setsid sh {script} {reason} </dev/null >/dev/null 2>&1 &")
    wait_event(lab, host, "rolled_back", timeout, failed=None)


def last_journal_line(lab: Lab, host: str) -> str:
    """The last line of the host's fleetbr journal (``EPOCH TXID WORD ...``)."""
    return vm_sh(lab, host, "tail -n 1 /var/lib/fleetbr/journal")


def master_is(lab: Lab, host: str, dev: str, master: str) -> bool:
    """``dev`` is a port (or slave) of ``master`` on ``host`` now."""
    return f"INTERFACE={master}" in vm_sh(lab, host, f"cat /sys/class/net/{dev}/master/uevent")


_MONITOR = "/root/fleetbr-test-addresses"


@contextmanager
def address_events(lab: Lab, host: str) -> Iterator[list[str]]:
    """The host's ``ip -o monitor address`` lines while the block runs (filled at its end)."""
    log, pid = f"{_MONITOR}.log", f"{_MONITOR}.pid"
    vm_sh(lab, host, f"setsid sh -c 'echo $$ > {pid}; exec ip -o monitor address > {log} 2>&1' "
                     "</dev/null >/dev/null 2>&1 &")  # fmt: skip
    lines: list[str] = []
    try:
        yield lines
    finally:
        lines += vm_sh(lab, host, f'kill "$(cat {pid})"; cat {log}').splitlines()


def global_address_added(events: list[str], dev: str) -> list[str]:
    """The events of ``events`` that gave ``dev`` a global address."""
    return [e for e in events if not e.startswith("Deleted") and "scope global" in e
            and e.split()[1:2] == [dev]]  # fmt: skip


def wait_vm(lab: Lab, host: str, command: str, timeout: float, what: str) -> None:
    """Poll ``command`` on the VM until it succeeds; fail after ``timeout`` s (a bound, not a
    guess at the machine's speed)."""
    deadline = time.monotonic() + timeout
    while ssh(lab, lab.host(host).ip4, command, shared=True).returncode != 0:
        assert time.monotonic() < deadline, f"{host}: {what} not within {timeout} s"
        time.sleep(1)


def networkctl(lab: Lab, host: str) -> dict[str, tuple[str, str]]:
    """networkd's own view: link -> (operational, setup) state."""
    out = vm_sh(lab, host, "networkctl list --no-legend --no-pager")
    return {row[1]: (row[3], row[4]) for row in map(str.split, out.splitlines()) if len(row) >= 5}


def restored_problems_vm(
    lab: Lab,
    host: str,
    txid: str,
    before: tuple[dict[str, Any], HostFacts],
    *,
    gone: tuple[str, ...],
    reasons: tuple[str, ...] = ("reason=timer ", "reason=apply-failed-step-"),
    residue: Mapping[str, tuple[str, ...]] | None = None,
    rebooted: bool = False,
) -> list[str]:
    """Why the VM is not exactly as before transaction ``txid`` (empty: it is): rolled back by
    the host (``reasons``), every daemon file byte for byte as in the snapshot (the new ones
    gone), the daemon's view of eth0 and eth1 as before, the ``gone`` devices gone, the kernel
    state as before, nothing armed. ``rebooted``: the host rebooted since ``before``, so the
    daemon's runtime files (under /run, a tmpfs the daemon fills again at boot: NetworkManager's
    in-memory profiles) are not compared."""
    state, facts = before
    out = []
    last = last_journal_line(lab, host)
    if not any(reason in last for reason in reasons):
        out.append(f"not rolled back by the host ({' or '.join(reasons)}): {last}")
    snap = parse_facts(vm_sh(lab, host, f"cat /var/lib/fleetbr/tx/{txid}/snapshot/facts.txt"))
    now = settled_facts(lab, host, timeout=120)
    files = [_persistent(f.daemons.files, rebooted) for f in (now, snap, facts)]
    if not files[0] == files[1] == files[2]:
        out.append(f"files {files[2]} -> {files[0]}")
    for path, digest in files[1].items():
        if vm_file_sha256(lab, host, path) != digest:
            out.append(f"{path} differs from the snapshot")
    for nic in ("eth0", "eth1"):
        if daemon_view(now, nic) != daemon_view(facts, nic):
            out.append(f"{nic}: {daemon_view(facts, nic)} -> {daemon_view(now, nic)}")
    out += [f"{dev} still there" for dev in gone if now.link(dev) is not None]
    out += state_diff(_without(state, residue), _without(kernel_state(lab, host), residue))
    if vm_sh(lab, host, "[ -L /var/lib/fleetbr/armed ] && echo armed || :").strip():
        out.append("still armed")
    return out


def _persistent(files: Mapping[str, str | None], rebooted: bool) -> dict[str, str | None]:
    """``files`` (path -> sha256), without those under /run if the host ``rebooted``."""
    return {p: d for p, d in files.items() if not (rebooted and p.startswith("/run/"))}


def _without(
    state: dict[str, Any], residue: Mapping[str, tuple[str, ...]] | None
) -> dict[str, Any]:
    """``state`` (kernel_state) with the ``residue`` keys of each named device's entries left
    out."""
    if not residue:
        return state
    return {
        key: [
            {k: v for k, v in item.items() if k not in residue.get(item.get("ifname", ""), ())}
            if isinstance(item, dict)
            else item
            for item in items
        ]
        for key, items in state.items()
    }


BOND_DEVS = ("br0", "bond0", "eth0", "eth1")


def bond_problems(facts: HostFacts, backend: str, *, mac: bool = True) -> list[str]:
    """What is not as a confirmed task of br0 over a new active-backup bond0 of eth0 and eth1
    (``BOND``) leaves it, each device ``backend``'s (empty: all is); ``mac``: bond0 has eth0's
    MAC (the first slave's, pinned)."""
    out = []
    bond = facts.topology.bond("bond0")
    if bond is None or (bond.mode, sorted(bond.slave_names)) != ("active-backup", ["eth0", "eth1"]):
        out.append(f"bond0: {bond}")
    found = facts.bridge("br0")
    if found is None or found.ports != ("bond0",):
        out.append(f"br0: {found}")
    link, eth0 = facts.link("bond0"), facts.link("eth0")
    if mac and (link is None or eth0 is None or link.mac != eth0.mac):
        out.append(f"bond0's MAC {link and link.mac} is not eth0's {eth0 and eth0.mac}")
    out += [f"{dev} not {backend}'s: {facts.manager(dev)}" for dev in BOND_DEVS
            if not owns(facts, dev, backend)]  # fmt: skip
    return out


def before(lab: Lab, host: str) -> tuple[dict[str, Any], HostFacts]:
    """The host's kernel state and settled facts, to compare a rollback with."""
    facts = settled_facts(lab, host, timeout=120)
    return kernel_state(lab, host), facts


async def applied_in_window(lab: Lab, host: str, task: Path) -> Transaction:
    """Stage, arm and apply ``task`` on ``host``; return once the host launched the apply (no
    confirm comes: the host's timer, or a test, decides)."""
    spec = specs(lab.inventory_dir)[host]
    tx = Transaction(spec, BridgeChange(rendered(lab, task, host), task.name))
    async with open_connection(spec) as conn:
        assert await _prepare(tx, conn) is None, host
        await _arm_and_apply(tx, conn)
    return tx


def power_cut_in_window(
    lab: Lab, host: str, task: Path, window: float, in_place: Callable[[], bool]
) -> tuple[str, HostResult]:
    """Stage, arm and apply ``task`` on ``host``; once the host's journal says ``applied`` and
    ``in_place()`` sees the change, kill QEMU (a power cut), let the host boot (its boot guard
    decides) and resolve the transaction from the controller as a resume does: (txid, result)."""
    tx = asyncio.run(applied_in_window(lab, host, task))
    wait_event(lab, host, "applied", window / 2)
    assert in_place(), f"{host}: applied, but the change is not in place"
    reboot(lab, host, hard=True)
    return tx.txid, asyncio.run(resolve(tx))


def power_cut_comes_back_as_before(
    lab: Lab, host: str, task: Path, window: int, *, enslaved: tuple[str, str],
    file: tuple[str, str], gone: tuple[str, ...],
    residue: Mapping[str, tuple[str, ...]] | None = None,
) -> None:  # fmt: skip
    """A power cut once ``enslaved`` (a device, its master) holds in the kernel and ``file``
    (a path, a line of the change's) is written: the boot guard rolls back, ``gone`` is gone,
    and the host is exactly as before, the file byte for byte (``residue``: see
    restored_problems_vm)."""
    path, line = file
    was = before(lab, host)
    text = vm_sh(lab, host, f"cat {path}")

    def in_place() -> bool:
        return master_is(lab, host, *enslaved) and line in vm_sh(lab, host, f"cat {path}")

    txid, resolved = power_cut_in_window(lab, host, task, window, in_place)
    assert resolved.status == Status.ROLLED_BACK, resolved.message
    problems = restored_problems_vm(lab, host, txid, was, gone=gone,
                                    reasons=("reason=reboot failed_steps=0",),
                                    residue=residue)  # fmt: skip
    assert problems == [], "\n".join(problems)
    assert vm_sh(lab, host, f"cat {path}") == text


def _applied_problems(lab: Lab, host: str, applied: Callable[[HostFacts], list[str]]) -> list[str]:
    """``applied``'s problems once they are none, or after a bound: NetworkManager re-enslaves a
    replaced bond's slaves by autoconnect, after the apply's own steps (the applied state comes,
    but not at once). A failure carries the apply's log."""
    deadline = time.monotonic() + 120
    while (problems := applied(settled_facts(lab, host, timeout=120))) and (
        time.monotonic() < deadline
    ):
        time.sleep(2)
    return [*problems, apply_logs(lab, host)] if problems else []


def host_rollback_is_exact(
    lab: Lab,
    host: str,
    task: Path,
    window: float,
    *,
    applied: Callable[[HostFacts], list[str]] | None = None,
    residue: Mapping[str, tuple[str, ...]] | None = None,
    gone: tuple[str, ...] = ("br0", "bond0"),
) -> None:
    """Apply a bond ``task`` inside its window, then run the host's own rollback (as its timer
    or a failed confirm runs it, detached) and check the host is back as it was: decided
    ``rolled_back``, files, daemon view and kernel state (``residue``: named keys of named
    devices left out; ``gone``: the devices the rollback deletes), no rollback step failed.
    ``applied``: what to check once applied."""
    was = before(lab, host)
    tx = asyncio.run(applied_in_window(lab, host, task))
    wait_event(lab, host, "applied", window / 2)
    assert master_is(lab, host, "eth0", "bond0")
    problems = [] if applied is None else _applied_problems(lab, host, applied)
    roll_back_on_host(lab, host, tx.txid, "confirm-failed", window)
    # checked after the rollback: a failure leaves no armed transaction to the next tests
    assert problems == [], f"{host}: applied, but {problems}"
    resolved = asyncio.run(resolve(tx))
    assert resolved.status == Status.ROLLED_BACK, resolved.message
    problems = restored_problems_vm(
        lab, host, tx.txid, was, gone=gone, reasons=("reason=confirm-failed",),
        residue=residue,
    )  # fmt: skip
    assert problems == [], "\n".join(problems)
    assert failed_rollback_steps(lab, host, tx.txid) == []
