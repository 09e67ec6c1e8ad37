"""A model of systemd-networkd's DHCP client and a DHCP server with fixed leases, on top of the
kernel-and-files model (tests/unit/test_topology_networkd.FileKernel), for ``addresses: dhcp``.

networkd runs a client on every interface whose .network says ``DHCP=`` and that is up and no
bridge port; it presents the identity its file pins, else networkd's defaults: client id
``ff`` + IAID + DUID, the IAID derived from the interface (here: a CRC of its name; the real one
is a hash too, so two interfaces never share it) and the host's DUID. The server hands each
identity its fixed leases, any other one an address of its pool. The client's leases replace the
same addresses put there statically (networkd takes them over, with lifetimes)."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Literal

from fleetbr.backends import ini
from fleetbr.facts.model import Address, HostFacts, Route
from fleetbr.facts.topology import DhcpLease
from tests.unit.test_topology_networkd import ETC, FileKernel, nd_host, with_files

HOST_DUID = "0002" + "0000ab11" + "a96a5b7ceaf73041"  # DUID-EN, as from the machine id
POOL = ("198.51.100.220/24",)  # the lab's: no IPv6 pool (fleetbr.lab.dhcp)
LEASE4, LEASE6 = "198.51.100.11/24", "2001:db8:100::b/128"
DHCP_FILE = (
    "# fleetbr lab host hv02: eth0 configured by systemd-networkd.\n"
    "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\nIPv6AcceptRA=yes\n\n"
    "[DHCPv4]\nSendRelease=no\n"
)


def default_iaid(dev: str) -> str:
    """networkd's IAID of ``dev`` when nothing pins it (8 hex digits)."""
    return f"{zlib.crc32(dev.encode()):08x}"


def client_id(dev: str, mac: str, text: str) -> str:
    """The DHCPv4 client id networkd presents on ``dev`` configured by ``text``."""
    sections = ini.sections(text)
    v4 = dict(kv for name, lines in sections if name == "DHCPv4" for kv in ini.values(lines))
    if v4.get("ClientIdentifier") == "mac":
        return "01" + mac.replace(":", "")
    iaid = f"{int(v4['IAID']):08x}" if "IAID" in v4 else default_iaid(dev)
    duid = HOST_DUID
    if "DUIDRawData" in v4:
        types = {"vendor": 2, "link-layer": 3, "uuid": 4, "link-layer-time": 1}
        kind = v4.get("DUIDType", "vendor")
        number = types.get(kind, int(kind) if kind.isdigit() else 2)
        duid = f"{number:04x}" + v4["DUIDRawData"].replace(":", "")
    return "ff" + iaid + duid


def dhcp_word(text: str) -> str | None:
    """The ``DHCP=`` of a .network (None: no client)."""
    keys = [
        kv for name, lines in ini.sections(text) if name == "Network" for kv in ini.values(lines)
    ]
    word = dict(keys).get("DHCP")
    return None if word in (None, "no", "false") else word


@dataclasses.dataclass
class DhcpKernel(FileKernel):
    """The kernel and networkd's files, with networkd's DHCP clients and the lab's server:
    ``fixed`` maps a client id to the leases the server gives it."""

    fixed: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def _file_of(self, dev: str) -> str | None:
        return next(
            (t for p, t in self.etc.items() if p.endswith(".network") and f"Name={dev}\n" in t),
            None,
        )

    def _clients(self) -> list[tuple[str, str, str]]:
        """(dev, client id, DHCP=) of every running client."""
        out = []
        for name, dev in self.devs.items():
            text = self._file_of(name)
            word = dhcp_word(text) if text else None
            if text and word and dev.link.admin_up and dev.link.master is None:
                out.append((name, client_id(name, dev.link.mac or "", text), word))
        return out

    def facts(self) -> HostFacts:
        base = super().facts()
        leases, addresses = [], list(base.addresses)
        for dev, cid, word in self._clients():
            for cidr in self.fixed.get(cid, POOL):
                family: Literal[4, 6] = 6 if ":" in cidr else 4
                if word not in ("yes", f"ipv{family}"):
                    continue
                addresses = [a for a in addresses if (a.dev, a.cidr) != (dev, cidr)]
                addresses.append(Address(dev, family, cidr, "global", dynamic=True))
                leases.append(DhcpLease(dev, family, cidr, "networkd", 3600, cid))
        topology = dataclasses.replace(base.topology, dhcp=tuple(leases))
        return dataclasses.replace(base, addresses=tuple(addresses), topology=topology)


def dhcp_nd_host(eth0_file: str = DHCP_FILE) -> tuple[HostFacts, dict[str, tuple[str, ...]]]:
    """The networkd lab host with eth0 a DHCP client that holds its fixed leases (the facts as
    the model renders them), and the server's fixed leases."""
    base = nd_host()
    files = {p: t for p, t in base.daemons.contents.items() if p.startswith(ETC)}
    files[f"{ETC}/10-eth0.network"] = eth0_file
    static = [a for a in base.addresses if not (a.dev == "eth0" and a.scope == "global")]
    routes = (
        Route(4, "default", "eth0", "198.51.100.1", 1024, "dhcp"),
        Route(6, "default", "eth0", "fe80::1", 1024, "ra"),
    )
    base = dataclasses.replace(base, addresses=tuple(static), routes=routes)
    base = with_files(base, files)
    eth0 = base.link("eth0")
    assert eth0 is not None and eth0.mac is not None
    fixed: dict[str, tuple[str, ...]] = {client_id("eth0", eth0.mac, eth0_file): (LEASE4, LEASE6)}
    return kernel(base, fixed).facts(), fixed


def kernel(facts: HostFacts, fixed: dict[str, tuple[str, ...]]) -> DhcpKernel:
    """The model of a host ``facts`` describe, with the server's ``fixed`` leases."""
    model = DhcpKernel.with_dir(facts)
    assert isinstance(model, DhcpKernel)
    model.fixed = dict(fixed)
    return model
