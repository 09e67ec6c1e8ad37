"""``fleetbr check`` and drift repair on real lab hosts (issue 9 items 1 and 2).

check is read-only: the host's whole state (links, addresses, routes and rules of every table,
bridge ports, sysctls, watched files) and its fleetbr journal are the same after it. Each kind of
drift, injected by hand after a confirmed apply of tasks/bridge.yaml, is reported by its field,
then repaired by ``apply`` with a plan of only the repair steps, under the dead-man timer, and
confirmed; the host is then in sync again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetbr.changes.bridge.change import apply_host
from fleetbr.changes.bridge.drift import check_job
from fleetbr.inventory import HostSpec
from fleetbr.lab import Lab, host_state, set_switch_port
from fleetbr.report import HostResult, Status
from tests.integration.helpers import (
    armed,
    bridged_host,
    derived_inventory,
    events,
    fleetbr,
    fleetbr_processes,
    rendered,
    sh,
    specs,
    task_file,
    wait_for,
)


def _run_check(spec: HostSpec, task: Path, lab: Lab) -> HostResult:
    return asyncio.run(check_job(spec, rendered(lab, task, spec.name)))


def _apply(spec: HostSpec, task: Path, lab: Lab) -> HostResult:
    return asyncio.run(apply_host(spec, rendered(lab, task, spec.name), task.name))


def forwarding(lab: Lab, host: str) -> bool:
    """The host's NIC forwards on br0 (STP has gone through listening and learning)."""
    nic = lab.host(host).nic
    return "state forwarding" in sh(lab, host, f"bridge link show dev {nic}")


# --- check: read-only, exit codes ------------------------------------------------------------


def test_check_reads_only_and_reports_every_difference(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host("hv12")
    task = task_file(tmp_path)
    before, journal = host_state(lab, "hv12"), events(lab, "hv12")
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv12", "check", str(task))
    assert code == 3, err
    result = doc["hv12"]
    assert result["status"] == "drifted"
    fields = {d["field"] for d in result["differences"]}
    assert {"bridge", "addresses.br0", "addresses.eth0", "routes"} <= fields
    assert all(set(d) == {"field", "want", "have", "text"} for d in result["differences"])
    assert "make eth0 a port of br0" in result["repair"]
    assert host_state(lab, "hv12") == before  # not one link, address, route, sysctl or file
    assert events(lab, "hv12") == journal == []  # nothing staged
    assert sh(lab, "hv12", "ls /var/lib/fleetbr/tx /run/fleetbr 2>/dev/null || :").strip() == ""


def test_check_writes_its_metrics_and_records_its_drift_in_the_history(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """`--metrics-file` is honoured (fleetbr_drifted_hosts 1), and `history --command check -l
    HOST` answers since when the host has drifted: every check is a run with its diff."""
    task = task_file(tmp_path)
    bridged_host(lab, fresh_host, "hv13", task)
    history, prom = tmp_path / "h.sqlite3", tmp_path / "fleetbr.prom"
    options = ["--history", str(history), "--metrics-file", str(prom), "-i",
               str(lab.inventory_dir), "-l", "hv13"]  # fmt: skip
    code, _, err = fleetbr(*options, "check", str(task))
    assert code == 0, err
    sh(lab, "hv13", "ip link set dev br0 type bridge stp_state 1")
    code, doc, err = fleetbr(*options, "check", str(task))
    assert (code, doc["hv13"]["status"]) == (3, "drifted"), err
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    [drifted] = families["fleetbr_drifted_hosts"].samples
    assert drifted.value == 1
    assert drifted.labels == {"command": "check", "selection": "hv13", "schedule": ""}
    code, found, err = fleetbr("--history", str(history), "history", "--command", "check",
                               "-l", "hv13")  # fmt: skip
    assert code == 0, err
    rows = found["hosts"]  # newest first
    assert [(r["command"], r["status"]) for r in rows] == [("check", "drifted"),
                                                          ("check", "in_sync")]  # fmt: skip
    assert [d["field"] for d in rows[0]["diff"]] == ["bridge.stp"], rows[0]
    assert rows[1]["diff"] == [] and rows[0]["started"] > rows[1]["ended"]
    code, runs, err = fleetbr("--history", str(history), "history", "--command", "check")
    assert code == 0, err
    assert [run["options"]["origin"] for run in runs["runs"]] == ["cli", "cli"]
    fresh_host("hv13")


def test_an_in_sync_host_is_in_sync_and_apply_stages_nothing(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    task = task_file(tmp_path)
    spec = bridged_host(lab, fresh_host, "hv13", task)
    before, journal = host_state(lab, "hv13"), events(lab, "hv13")
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv13", "check", str(task))
    assert code == 0, err
    assert doc["hv13"]["status"] == "in_sync" and doc["hv13"]["differences"] == []
    again = _apply(spec, task, lab)
    assert again.status == Status.UNCHANGED, again.message
    assert events(lab, "hv13") == journal  # no new journal entry: nothing was staged
    assert host_state(lab, "hv13") == before


def test_a_host_that_cannot_be_checked_makes_exit_code_1(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    task = task_file(tmp_path)
    bridged_host(lab, fresh_host, "hv14", task)
    fresh_host("hv15")
    set_switch_port(lab, "hv15", up=False)
    try:
        code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv14,hv15", "check",
                               str(task))  # fmt: skip
    finally:
        set_switch_port(lab, "hv15", up=True)
    assert code == 1
    assert doc["hv14"]["status"] == "in_sync"
    assert doc["hv15"]["status"] == "unreachable"


# --- repair: each kind of drift --------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A drift to inject (shell inside the host), the field check reports, the repair steps."""

    inject: str
    field: str
    steps: Callable[[Lab, str], list[str]]
    stp: bool = False  # the task turns STP on (forward delay 2 s)
    port: bool = True  # the NIC stays a port of the bridge (wait until it forwards)


KINDS = {
    "address removed from the bridge": Kind(
        "ip -6 addr del {addr6} dev br0", "addresses.br0",
        lambda lab, h: [f"add {lab.host(h).addr6} to br0"],
    ),
    "STP turned on": Kind(
        "ip link set dev br0 type bridge stp_state 1", "bridge.stp",
        lambda lab, h: [f"change bridge br0 (mac {mac(lab, h)}, stp off, forward delay 4s)"],
    ),
    "forward delay changed (STP on)": Kind(
        "ip link set dev br0 type bridge forward_delay 1000", "bridge.forward_delay",
        lambda lab, h: [f"change bridge br0 (mac {mac(lab, h)}, stp on, forward delay 2s)"],
        stp=True,
    ),
    "bridge-nf-call-iptables set back to 1": Kind(
        "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables",
        "sysctl.net.bridge.bridge-nf-call-iptables",
        lambda lab, h: ["set net.bridge.bridge-nf-call-iptables = 0 (was 1)"],
    ),
    "sysctl.d file edited": Kind(
        "echo 'net.bridge.bridge-nf-call-iptables = 1' >> /etc/sysctl.d/bridge.conf",
        "file./etc/sysctl.d/bridge.conf",
        lambda lab, h: ["write /etc/sysctl.d/bridge.conf"],
    ),
    "udev rule deleted": Kind(
        "rm /etc/udev/rules.d/99-bridge.rules", "file./etc/udev/rules.d/99-bridge.rules",
        lambda lab, h: ["write /etc/udev/rules.d/99-bridge.rules"],
    ),
    "an extra default route": Kind(
        "ip route add default via 198.51.100.254 dev br0 metric 500", "routes",
        lambda lab, h: ["remove route default via 198.51.100.254 dev br0 metric 500"],
    ),
}  # fmt: skip


def mac(lab: Lab, host: str) -> str:
    """The MAC of the host's NIC (the bridge's)."""
    nic = lab.host(host).nic
    return sh(lab, host, f"cat /sys/class/net/{nic}/address").strip()


def _repair(lab: Lab, spec: HostSpec, task: Path, kind: Kind) -> None:
    host = spec.name
    sh(lab, host, kind.inject.format(addr6=lab.host(host).addr6))
    if kind.port:
        wait_for(lambda: forwarding(lab, host), 20, "the port to forward again")
    drifted = _run_check(spec, task, lab)
    assert drifted.status == Status.DRIFTED, drifted.message
    assert {d["field"] for d in drifted.data["differences"]} == {kind.field}
    staged = len(events(lab, host))
    repaired = _apply(spec, task, lab)
    assert repaired.status == Status.CONFIRMED, repaired.message
    assert repaired.data["steps"] == kind.steps(lab, host)  # only what drifted
    assert events(lab, host)[staged:] == ["staged", "armed", "applied", "confirmed"]
    assert not armed(lab, host) and not fleetbr_processes(lab, host)
    after = _run_check(spec, task, lab)
    assert after.status == Status.IN_SYNC, after.message


@pytest.mark.parametrize("name", list(KINDS))
def test_drift_is_repaired_with_only_the_repair_steps(
    lab: Lab, fresh_host: Any, tmp_path: Path, name: str
) -> None:
    kind = KINDS[name]
    extra: dict[str, Any] = {"stp": True, "forward_delay": 2} if kind.stp else {}
    task = task_file(tmp_path, **extra)
    spec = bridged_host(lab, fresh_host, "hv16", task)
    wait_for(lambda: forwarding(lab, "hv16"), 20, "the port to forward")
    _repair(lab, spec, task, kind)


def test_forward_delay_with_stp_off_is_not_drift(lab: Lab, fresh_host: Any, tmp_path: Path) -> None:
    task = task_file(tmp_path)
    spec = bridged_host(lab, fresh_host, "hv16", task)
    sh(lab, "hv16", "ip link set dev br0 type bridge forward_delay 1500")
    assert _run_check(spec, task, lab).status == Status.IN_SYNC
    assert _apply(spec, task, lab).status == Status.UNCHANGED


# --- the NIC detached: only a host with another path can be repaired -------------------------

MGMT_CTL = "203.0.113.1/24"


@contextlib.contextmanager
def management_path(lab: Lab, host: str, tmp_path: Path) -> Iterator[HostSpec]:
    """A second link to ``host`` (203.0.113.0/24, not through its bridge) and an inventory that
    reaches it there, as a hypervisor's management NIC would."""
    index = int(host.removeprefix("hv"))
    address = f"203.0.113.{10 + index}"
    ctl = f"fbrmg{index}"
    subprocess.run(["ip", "link", "add", ctl, "type", "veth", "peer", "name", "mgmt0", "netns",
                    lab.host(host).netns], check=True)  # fmt: skip
    try:
        subprocess.run(["ip", "addr", "add", MGMT_CTL, "dev", ctl], check=True)
        subprocess.run(["ip", "link", "set", ctl, "up"], check=True)
        sh(lab, host, f"ip addr add {address}/24 dev mgmt0 && ip link set mgmt0 up")
        known = tmp_path / "known_hosts"
        key = next(
            line.split(" ", 1)[1]
            for line in lab.known_hosts_path.read_text().splitlines()
            if line.startswith(lab.host(host).ip4 + " ")
        )
        shutil.copy(lab.known_hosts_path, known)
        with known.open("a") as out:
            out.write(f"{address} {key}\n")

        def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
            hosts[host]["hostname"] = address
            defaults["connection_options"]["fleetbr"]["extras"]["known_hosts"] = str(known)

        inventory = derived_inventory(lab, tmp_path / "inv", edit)
        yield specs(inventory)[host]
    finally:
        subprocess.run(["ip", "link", "del", ctl], check=False)


def test_nic_detached_cuts_the_host_off_and_is_repaired_over_another_path(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    task = task_file(tmp_path)
    bridged_host(lab, fresh_host, "hv17", task)
    with management_path(lab, "hv17", tmp_path) as spec:
        sh(lab, "hv17", f"ip link set dev {lab.host('hv17').nic} nomaster")
        # through the bridge the host is gone: check says it could not check it
        code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv17", "check", str(task))
        assert code == 1 and doc["hv17"]["status"] == "unreachable"
        kind = Kind("true", "ports.br0", lambda lab, h: ["make eth0 a port of br0"], port=False)
        _repair(lab, spec, task, kind)
    code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv17", "check", str(task))
    assert code == 0 and doc["hv17"]["status"] == "in_sync"


def test_a_stale_transaction_is_drift(lab: Lab, fresh_host: Any, tmp_path: Path) -> None:
    task = task_file(tmp_path)
    spec = bridged_host(lab, fresh_host, "hv18", task)
    txid = "20261127T181500-3fa9c2"
    sh(lab, "hv18", f"mkdir -p /var/lib/fleetbr/tx/{txid} && "
       f"ln -s {txid} /var/lib/fleetbr/armed")  # fmt: skip
    journal = events(lab, "hv18")
    result = _run_check(spec, task, lab)
    assert result.status == Status.DRIFTED
    assert result.data["differences"][0]["field"] == "transaction"
    assert result.data["differences"][0]["have"] == f"stale {txid}"
    assert events(lab, "hv18") == journal
