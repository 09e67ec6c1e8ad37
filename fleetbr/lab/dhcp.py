"""The lab's DHCP server: dnsmasq (Debian's ``dnsmasq-base``, the binary only) in the switch
namespace, with a fixed IPv4 and IPv6 lease per DHCP host (by MAC: the host's usual lab
addresses) and a small IPv4 pool for any other client, so a client with another identity gets
another IPv4 address and no IPv6 one (docs/lab.md, "DHCP"). No IPv6 pool: dnsmasq hands an IA
every address it ever leased it, so a NIC that gets its client identity back after a rollback
would keep the pool address its bridge was given beside its own. Its pid, lease, hosts and log
files live in the lab dir; `lab down` kills it with the switch namespace's other processes."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetbr.errors import LabError
from fleetbr.lab.model import Lab, LabHost
from fleetbr.lab.render import render
from fleetbr.lab.system import run

CONF, HOSTS, LEASES, PID, LOG = (
    "dnsmasq.conf",
    "dnsmasq.hosts",
    "dnsmasq.leases",
    "dnsmasq.pid",
    "dnsmasq.log",
)
FILES = (CONF, HOSTS, LEASES, PID, LOG)
SWITCH_BRIDGE = "sw0"  # fleetbr.lab.build.build_switch
# The pool for clients without a fixed lease (the /24 plan's hosts use .10 to .209).
POOL4 = ("198.51.100.220", "198.51.100.250")
LEASE_TIMEOUT = 60.0


def host_line(mac: str, addr4: str, addr6: str, name: str) -> str:
    """A dhcp-hostsfile line: the fixed IPv4 and IPv6 lease of ``mac``."""
    return f"{mac},{addr4.split('/', maxsplit=1)[0]},[{addr6.split('/', maxsplit=1)[0]}],{name}"


def hosts_text(hosts: Sequence[LabHost]) -> str:
    """The dhcp-hostsfile of the lab's DHCP hosts (their usual lab addresses)."""
    return "".join(f"{host_line(h.mac, h.addr4, h.addr6, h.name)}\n" for h in hosts if h.dhcp)


def conf_text(lab: Lab) -> str:
    """dnsmasq's whole configuration (nothing from /etc/dnsmasq.conf is read)."""
    return render(
        "lab_dnsmasq.conf.j2",
        dir=str(lab.dir),
        bridge=SWITCH_BRIDGE,
        pool4=POOL4,
        net6=str(ipaddress.ip_interface(lab.controller6).network.network_address),
        prefix6=lab.controller6.split("/", 1)[1],
    )


def start(lab: Lab) -> None:
    """Write the configuration and start dnsmasq in the switch namespace (it daemonizes)."""
    if shutil.which("dnsmasq") is None:
        raise LabError("the lab's DHCP server needs dnsmasq: apt-get install dnsmasq-base")
    (lab.dir / HOSTS).write_text(hosts_text(lab.hosts))
    (lab.dir / CONF).write_text(conf_text(lab))
    (lab.dir / LEASES).write_text("")
    run(["ip", "netns", "exec", lab.switch_netns, "dnsmasq", f"--conf-file={lab.dir / CONF}"])


def _reload(lab: Lab, text: str) -> None:
    """Write the fixed leases and make dnsmasq re-read them (SIGHUP)."""
    (lab.dir / HOSTS).write_text(text)
    run(["kill", "-HUP", (lab.dir / PID).read_text().strip()])


def client_id(lab: Lab, host: LabHost) -> str:
    """The DHCPv4 client id the server recorded for ``host``'s MAC (dnsmasq.leases)."""
    for line in (lab.dir / LEASES).read_text().splitlines():
        words = line.split()
        if len(words) == 5 and words[1] == host.mac:
            return words[4]
    raise LabError(f"{host.name}: no DHCPv4 lease for {host.mac} in {lab.dir / LEASES}")


def key_by_client_id(lab: Lab, host: LabHost) -> None:
    """Key ``host``'s fixed IPv4 lease by the client id it presented instead of its MAC (the
    IPv6 one stays keyed by MAC): a client with the same identity on another MAC gets the same
    IPv4 address and no IPv6 one."""
    _reload(lab, by_client_id_text(lab, host, client_id(lab, host)))


def by_client_id_text(lab: Lab, host: LabHost, cid: str) -> str:
    """The fixed leases with ``host``'s IPv4 one keyed by client id ``cid``."""
    lines = [line for line in hosts_text(lab.hosts).splitlines() if not line.startswith(host.mac)]
    lines += [f"id:{cid},{host.ip4},{host.name}", f"{host.mac},[{host.ip6}],{host.name}"]
    return "".join(f"{line}\n" for line in lines)


def key_by_mac(lab: Lab) -> None:
    """Every fixed lease keyed by MAC again (as at ``lab up``)."""
    _reload(lab, hosts_text(lab.hosts))


def leased(host: LabHost, dev: str | None = None) -> list[str]:
    """The dynamic global addresses (DHCP leases) on ``dev`` (the NIC) of a distro host."""
    out = subprocess.run(
        ["ip", "-n", host.container_netns, "-o", "addr", "show", "dev", dev or host.nic],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        if "dynamic" in words and "global" in words and len(words) > 3:
            found.append(words[3])
    return found


def wait_leases(host: LabHost, timeout: float = LEASE_TIMEOUT, dev: str | None = None) -> list[str]:
    """Wait until ``dev`` (the host's NIC unless given, e.g. a bridge that keeps its leases)
    holds the host's fixed IPv4 and IPv6 leases; returns its leases."""
    want = {host.addr4.split("/")[0], host.addr6.split("/")[0]}
    deadline = time.monotonic() + timeout
    while True:
        have = leased(host, dev)
        if want <= {a.split("/")[0] for a in have}:
            return have
        if time.monotonic() > deadline:
            raise LabError(
                f"{host.name}: no DHCP leases {sorted(want)} on {dev or host.nic} ({have})"
            )
        time.sleep(0.5)


def log_tail(lab: Lab, lines: int = 20) -> str:
    """The end of dnsmasq's log (for a failing test's message)."""
    path: Path = lab.dir / LOG
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "no dnsmasq log"


@dataclass(frozen=True)
class ServerLease:
    """One lease as the server recorded it (``dnsmasq.leases``): the address, what it is keyed
    by (IPv4: the client's MAC; IPv6: the IAID) and the identity the client presented (IPv4: its
    client id; IPv6: its DUID; ``*``: none); ``acks``: how often its log says it handed the
    address out (DHCPACK, DHCPv6 REPLY), renewals included."""

    family: int
    address: str
    key: str
    client: str
    acks: int


def server_leases(lab: Lab, host: LabHost) -> tuple[ServerLease, ...]:
    """The server's records of ``host``'s fixed IPv4 and IPv6 addresses, sorted by family."""
    log = (lab.dir / LOG).read_text(errors="replace")
    found = []
    for line in (lab.dir / LEASES).read_text().splitlines():
        words = line.split()  # expiry, MAC or IAID, address, hostname, client id or DUID
        if len(words) == 5 and words[2] in (host.ip4, host.ip6):
            family = 6 if ":" in words[2] else 4
            acks = re.findall(rf"DHCP(?:ACK|REPLY)\(\S+\) {re.escape(words[2])} ", log)
            found.append(ServerLease(family, words[2], words[1], words[4], len(acks)))
    return tuple(sorted(found, key=lambda lease: lease.family))
