"""Comparable snapshots of a lab host's network state; resetting a host to its pristine state."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from fleetbr.errors import LabError
from fleetbr.lab.faults import host_exec, start_sshd
from fleetbr.lab.model import Lab, LabHost
from fleetbr.lab.system import ip_batch, is_sshd, kill, netns_pids

SYSCTLS = tuple(
    f"net.bridge.bridge-nf-call-{table}" for table in ("iptables", "ip6tables", "arptables")
)
WATCHED_DIRS = ("/etc/sysctl.d", "/etc/udev/rules.d")
# What fleetbr writes on a host; reset_host removes them from the host's private /etc and /var.
FLEETBR_PATHS = (
    "/var/lib/fleetbr",
    "/run/fleetbr",
    "/etc/sysctl.d/bridge.conf",
    "/etc/udev/rules.d/99-bridge.rules",
    "/etc/modules-load.d/br_netfilter.conf",
)
_VOLATILE = frozenset(
    {
        "ifindex",
        "link_index",
        "link_netnsid",
        "valid_life_time",
        "preferred_life_time",
        "stats",
        "stats64",
    }
)
# Keys whose value counts down while the host does not change: a route's remaining lifetime
# (``ip -j route``'s "expires", seconds: a router advertisement's routes on a DHCP host). Kept as
# present (an expiring route is not a permanent one), their value dropped.
_COUNTDOWNS = frozenset({"expires"})
DAD_SETTLE = 3.0
NIC_MTU = 1500
KILL_ROUNDS = 5  # reset_host: kill what runs in the host, again while anything is left


def nic_commands(lab: Lab, host: LabHost) -> list[str]:
    """``ip -batch`` lines giving a host its pristine addresses and default routes."""
    nic = host.nic
    return [
        "link set lo up",
        f"link set {nic} up",
        f"addr add {host.addr4} dev {nic}",
        f"addr add {host.addr6} dev {nic} nodad",
        f"route add default via {lab.gateway4} dev {nic}",
        f"route add default via {lab.gateway6} dev {nic}",
    ]


def _proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read_sysctls(lab: Lab, host: LabHost) -> dict[str, str]:
    """The bridge-nf-call sysctls of the host's namespace (absent ones are left out)."""
    paths = {_proc_path(key): key for key in SYSCTLS}
    out = host_exec(lab, host, ["grep", "-s", "-H", "", *paths], check=False).stdout
    values = {}
    for line in out.splitlines():
        path, _, value = line.partition(":")
        values[paths[path]] = value.strip()
    return values


def _ip_json(lab: Lab, host: LabHost, argv: list[str]) -> list[dict[str, Any]]:
    out = host_exec(lab, host, argv).stdout.strip()
    data: list[dict[str, Any]] = json.loads(out) if out else []
    return data


def normalise_dump(value: Any, volatile: frozenset[str] = _VOLATILE) -> Any:
    """An ``ip -j`` dump without the keys that change while the host does not (``volatile``,
    and every timer; a countdown's value, _COUNTDOWNS: ``True`` instead): keys sorted, lists
    kept in order."""
    if isinstance(value, dict):
        return {
            k: True if k in _COUNTDOWNS else normalise_dump(v, volatile)
            for k, v in sorted(value.items())
            if k not in volatile and "timer" not in k
        }
    if isinstance(value, list):
        return [normalise_dump(v, volatile) for v in value]
    return value


def _addresses(lab: Lab, host: LabHost) -> list[dict[str, Any]]:
    """``ip -j addr``, waiting briefly for IPv6 DAD on links that are up to finish."""
    deadline = time.monotonic() + DAD_SETTLE
    while True:
        links = _ip_json(lab, host, ["ip", "-j", "addr"])
        tentative = any(
            a.get("tentative")
            for link in links
            if link.get("operstate") == "UP"
            for a in link.get("addr_info", [])
        )
        if not tentative or time.monotonic() >= deadline:
            return links
        time.sleep(0.1)


def _files(lab: Lab, host: LabHost) -> dict[str, str]:
    listing = host_exec(lab, host, ["find", *WATCHED_DIRS, "!", "-type", "d"], check=False)
    names = sorted(listing.stdout.split())
    hashes = {name: "unreadable" for name in names}
    if names:
        out = host_exec(lab, host, ["sha256sum", "--", *names], check=False).stdout
        for line in out.splitlines():
            digest, _, name = line.partition("  ")
            hashes[name] = digest
    return hashes


def advertised_without_metrics(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Routes from a router advertisement without their metrics (mtu, hoplimit): the latest
    advertisement sets them (the rollback verdict does not compare them either)."""
    return [
        {k: v for k, v in entry.items() if k != "metrics"}
        if entry.get("protocol") == "ra"
        else entry
        for entry in entries
    ]


def host_state(lab: Lab, host: LabHost | str) -> dict[str, Any]:
    """A comparable snapshot: links, addresses, routes of every table (the kernel's local and
    broadcast ones included), policy rules, bridge ports, sysctls, watched files."""
    member = lab.host(host) if isinstance(host, str) else host
    addrs = _addresses(lab, member)
    for link in addrs:
        link["addr_info"] = sorted(
            link.get("addr_info", []), key=lambda a: (a.get("family", ""), a.get("local", ""))
        )
    key = json.dumps
    return {
        "links": sorted(normalise_dump(_ip_json(lab, member, ["ip", "-j", "-d", "link"])), key=key),
        "addresses": sorted(normalise_dump(addrs), key=key),
        **{
            f"{what}{family}": sorted(
                advertised_without_metrics(
                    normalise_dump(_ip_json(lab, member, ["ip", "-j", f"-{family}", *argv]))
                ),
                key=key,
            )
            for family in (4, 6)
            for what, argv in (("routes", ["route", "show", "table", "all"]), ("rules", ["rule"]))
        },
        "bridge_ports": sorted(
            normalise_dump(_ip_json(lab, member, ["bridge", "-j", "link"])), key=key
        ),
        "sysctls": read_sysctls(lab, member),
        "files": _files(lab, member),
    }


def _route_del(route: dict[str, Any], family: str) -> str:
    """An ``ip -batch`` line deleting ``route`` (batch lines cannot say -6; the dst implies it)."""
    dst = route["dst"]
    if dst == "default":
        dst = "::/0" if family == "-6" else "0.0.0.0/0"
    words = ["route", "del"]
    if route.get("type", "unicast") != "unicast":
        words.append(route["type"])
    words += [dst, "table", str(route.get("table", "main"))]
    for field in ("dev", "metric"):
        if field in route:
            words += [field, str(route[field])]
    return " ".join(words)


def _reset_network(lab: Lab, host: LabHost) -> None:
    links = _ip_json(lab, host, ["ip", "-j", "link"])
    extra = [link["ifname"] for link in links if link["ifname"] not in ("lo", host.nic)]
    routes = [
        _route_del(r, family)
        for family in ("-4", "-6")
        for r in _ip_json(lab, host, ["ip", "-j", family, "route", "show", "table", "all"])
        if (r.get("protocol") != "kernel" or r.get("gateway")) and r.get("table") != "local"
    ]
    # the rules a fresh namespace has: local (0), main (32766), default (32767, IPv4)
    rules = [
        f"{family} rule del priority {r['priority']}"
        for family in ("-4", "-6")
        for r in _ip_json(lab, host, ["ip", "-j", family, "rule"])
        if r.get("priority") not in (0, 32766, 32767)
    ]
    for rule in rules:  # ip -batch cannot switch family per line
        host_exec(lab, host, ["ip", *rule.split()], check=False)
    ip_batch(
        [
            *(f"link del dev {name}" for name in extra),
            *routes,
            f"link set dev {host.nic} nomaster",
            f"link set dev {host.nic} mtu {NIC_MTU}",
            f"addr flush dev {host.nic} scope global",
            "addr flush dev lo scope global",
        ],
        netns=host.netns,
        check=False,
    )
    nic_addrs = _ip_json(lab, host, ["ip", "-j", "-6", "addr", "show", "dev", host.nic])
    if not any(a.get("scope") == "link" for link in nic_addrs for a in link.get("addr_info", [])):
        ip_batch([f"link set dev {host.nic} down"], netns=host.netns)
    ip_batch(nic_commands(lab, host), netns=host.netns)


def _reset_files_and_sysctls(lab: Lab, host: LabHost) -> None:
    """Drop what fleetbr wrote; make the watched dirs match this machine's (the overlay's lower)."""
    current = _files(lab, host)
    added = [name for name in current if not Path(name).exists()]
    host_exec(lab, host, ["rm", "-rf", "--", *FLEETBR_PATHS, *added])
    for real in (Path(d, n) for d in WATCHED_DIRS if Path(d).is_dir() for n in os.listdir(d)):
        if (
            real.is_file()
            and current.get(str(real)) != hashlib.sha256(real.read_bytes()).hexdigest()
        ):
            host_exec(lab, host, ["tee", str(real)], input=real.read_text())
    for key, value in host.sysctls.items():
        host_exec(lab, host, ["tee", _proc_path(key)], input=f"{value}\n")


def reset_host(lab: Lab, host: LabHost | str) -> LabHost:
    """Restore a host to its state right after ``up`` so tests can share lab hosts; returns it."""
    member = lab.host(host) if isinstance(host, str) else host
    if member.backend:
        raise LabError(f"{member.name} is a distro host: use fleetbr.lab.distro.reset_host")
    keep = {member.holder_pid, member.sshd_pid if is_sshd(member.sshd_pid) else None}
    # again while any is left: a process forking while the first list was taken (a timer's shell
    # starting its next command) leaves a child no list had
    for _ in range(KILL_ROUNDS):
        left = [pid for pid in netns_pids(member.netns) if pid not in keep]
        if not left:
            break
        kill(left)
    _reset_network(lab, member)
    _reset_files_and_sysctls(lab, member)
    ip_batch([f"link set dev {member.switch_port} master sw0 up"], netns=lab.switch_netns)
    start_sshd(lab, member)
    return member
