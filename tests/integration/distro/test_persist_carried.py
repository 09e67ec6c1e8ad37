"""What the NIC's configuration holds beyond addresses and routes survives the cutover, on every
backend (issue 14, item 6): a NIC with MTU 9000, two name servers and a policy rule in its
daemon's own configuration, bridged with tasks/bridge.yaml (persist: auto). After confirm and
after a reboot the bridge and its port have MTU 9000 and the rule is in the kernel (ip -j link,
ip -j rule), the daemon's files give the bridge both name servers (and NetworkManager's own view
of the bridge has them), and ``check`` is in sync; a rule deleted and an MTU lowered by hand are
drift. ifupdown's comment in the NIC's stanza is kept too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fleetbr.backends import registry
from fleetbr.changes.bridge.drift import check_facts
from fleetbr.changes.bridge.task import load_task, render_task
from fleetbr.facts.model import HostFacts
from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import reboot
from fleetbr.lab.faults import host_exec
from fleetbr.report import Status
from tests.integration.distro.persisthelpers import (
    HOSTS,
    apply_all,
    on_each,
    persist_task,
    settled_facts,
)
from tests.integration.helpers import sh, specs

pytestmark = pytest.mark.lab

DNS = ("198.51.100.53", "198.51.100.54")
MTU = 9000
COMMENT = "# uplink with jumbo frames: kept by fleetbr"
ETC_NM = "/etc/NetworkManager/system-connections"
# backend -> the file that must give the bridge the name servers, and how it says so
DNS_FILES = {
    "ifupdown": ("/etc/network/interfaces", f"dns-nameservers {' '.join(DNS)}"),
    "networkd": ("/etc/systemd/network/10-br0.network", f"DNS={DNS[0]}\nDNS={DNS[1]}\n"),
    "netplan": ("/etc/netplan/01-netcfg.yaml", None),  # checked in the YAML's bridge entry
    "networkmanager": (f"{ETC_NM}/br0.nmconnection", f"dns={DNS[0]};{DNS[1]};"),
}


def _v4(facts: HostFacts) -> str:
    return next(a.cidr.split("/")[0] for a in facts.addresses_of("eth0") if a.family == 4)


def _write(lab: Lab, host: str, path: str, text: str) -> None:
    host_exec(lab, host, ["sh", "-c", f"cat > {path}"], input=text)


def _ifupdown(lab: Lab, host: str, addr: str) -> None:
    path = "/etc/network/interfaces"
    extra = (
        f"    {COMMENT}\n    mtu {MTU}\n    dns-nameservers {' '.join(DNS)}\n"
        f"    up ip rule add from {addr} table 100 priority 100\n"
    )
    text = sh(lab, host, f"cat {path}").replace(
        "iface eth0 inet static\n", f"iface eth0 inet static\n{extra}"
    )
    _write(lab, host, path, text)
    # ifupdown has no reload: what ifup would have done, by hand
    sh(lab, host, f"ip link set eth0 mtu {MTU} && ip rule add from {addr} table 100 priority 100")


def _networkd(lab: Lab, host: str, addr: str) -> None:
    path = "/etc/systemd/network/10-eth0.network"
    text = sh(lab, host, f"cat {path}").replace(
        "[Network]\n", f"[Link]\nMTUBytes={MTU}\n\n[Network]\nDNS={DNS[0]}\nDNS={DNS[1]}\n"
    )
    text += f"\n[RoutingPolicyRule]\nFrom={addr}/32\nTable=100\nPriority=100\n"
    _write(lab, host, path, text)
    sh(lab, host, "networkctl reload && networkctl reconfigure eth0")


def _netplan(lab: Lab, host: str, addr: str) -> None:
    path = "/etc/netplan/01-netcfg.yaml"
    doc = yaml.safe_load(sh(lab, host, f"cat {path}"))
    eth0 = doc["network"]["ethernets"]["eth0"]
    eth0["mtu"] = MTU
    eth0["nameservers"] = {"addresses": list(DNS)}
    eth0["routing-policy"] = [{"from": f"{addr}/32", "table": 100, "priority": 100}]
    _write(lab, host, path, yaml.safe_dump(doc))
    sh(lab, host, f"chmod 600 {path} && netplan apply 2>/dev/null")


def _networkmanager(lab: Lab, host: str, addr: str) -> None:
    uuid = sh(lab, host, "nmcli -g GENERAL.CON-UUID device show eth0").strip()
    sh(
        lab,
        host,
        f"nmcli connection modify {uuid} 802-3-ethernet.mtu {MTU} ipv4.dns {','.join(DNS)} "
        f"ipv4.routing-rules 'priority 100 from {addr} table 100' "
        f"&& nmcli -w 30 connection up {uuid} >/dev/null",
    )


SETUP: dict[str, Callable[[Lab, str, str], None]] = {
    "ifupdown": _ifupdown,
    "networkd": _networkd,
    "netplan": _netplan,
    "networkmanager": _networkmanager,
}


def _rule(facts: HostFacts, addr: str) -> bool:
    return any(
        r.family == 4 and r.priority == 100 and f"src {addr} " in f"{r.text} "
        and "table 100" in r.text
        for r in facts.rules or ()
    )  # fmt: skip


def _configured(lab: Lab, backend: str) -> str:
    """Give the NIC of ``backend``'s host MTU 9000, two name servers and a policy rule in its
    daemon's configuration and in the kernel; its IPv4 address."""
    host = HOSTS[backend]
    addr = _v4(settled_facts(lab, host))
    SETUP[backend](lab, host, addr)
    facts = settled_facts(lab, host)
    link = facts.link("eth0")
    assert link is not None and link.mtu == MTU, (backend, link)
    assert _rule(facts, addr), (backend, facts.rules)
    return addr


def _check(lab: Lab, host: str, task: Path, facts: HostFacts) -> tuple[Status, list[str]]:
    rendered = render_task(load_task(task), specs(lab.inventory_dir)[host].context())
    outcome = check_facts(rendered, facts)
    return outcome.status, [d.field for d in outcome.differences]


def _problems(lab: Lab, backend: str, addr: str, task: Path) -> list[str]:
    """Why the bridge does not carry what the NIC had (empty: it does)."""
    host = HOSTS[backend]
    facts = settled_facts(lab, host)
    out = [
        f"{name} MTU {link.mtu if link else None}"
        for name in ("br0", "eth0")
        if (link := facts.link(name)) is None or link.mtu != MTU
    ]
    if not _rule(facts, addr):
        out.append(f"rule from {addr} table 100 missing: {facts.rules}")
    path, needle = DNS_FILES[backend]
    text = sh(lab, host, f"cat {path}")
    if backend == "netplan":
        servers = yaml.safe_load(text)["network"]["bridges"]["br0"].get("nameservers")
        if servers != {"addresses": list(DNS)}:
            out.append(f"netplan br0 nameservers: {servers}")
    elif needle is not None and needle not in text:
        out.append(f"{path} lacks {needle!r}:\n{text}")
    if backend == "ifupdown" and f"    {COMMENT}\n" not in text:
        out.append(f"the comment of eth0's stanza is gone:\n{text}")
    servers = registry.get(backend).name_servers(facts, "br0")
    if backend == "networkmanager" and servers != DNS:
        out.append(f"NetworkManager's name servers of br0: {servers}")
    status, fields = _check(lab, host, task, facts)
    if status != Status.IN_SYNC:
        out.append(f"check: {status.value} {fields}")
    return out


def _lines(when: str, problems: dict[str, list[str]]) -> str:
    return "\n".join(
        f"{when}: {b}: {line[:300]}" for b, lines in problems.items() for line in lines
    )


def test_mtu_name_servers_and_policy_rules_follow_the_nic_to_the_bridge(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    on_each(HOSTS.values(), fresh_distro_host)
    addrs = on_each(HOSTS, lambda b: _configured(distro_lab, b))
    task = persist_task(tmp_path)
    result = apply_all(distro_lab, HOSTS.values(), task)
    for backend, host in HOSTS.items():
        assert result[host].status == Status.CONFIRMED, (backend, result[host].message)
    problems = on_each(HOSTS, lambda b: _problems(distro_lab, b, addrs[b], task))
    assert not any(problems.values()), _lines("after confirm", problems)

    on_each(HOSTS.values(), lambda h: reboot(distro_lab, h))
    problems = on_each(HOSTS, lambda b: _problems(distro_lab, b, addrs[b], task))
    assert not any(problems.values()), _lines("after a reboot", problems)

    # by hand: the rule deleted, the bridge's MTU lowered: drift, which check reports
    for host in HOSTS.values():
        sh(distro_lab, host, "ip rule del priority 100 && ip link set br0 mtu 1500")
    for backend, host in HOSTS.items():
        status, fields = _check(distro_lab, host, task, settled_facts(distro_lab, host))
        assert (status, fields) == (Status.DRIFTED, ["mtu.br0", "rules"]), backend
