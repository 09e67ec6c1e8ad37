"""netplan: the one YAML file in /etc/netplan that defines the NIC is rewritten (comments and
other devices kept): the NIC loses its addresses and routes, a ``bridges:`` entry takes them.
``netplan apply`` renders it for networkd or NetworkManager."""

from __future__ import annotations

import io
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ruamel.yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from fleetbr.backends import carry
from fleetbr.backends.base import Backend
from fleetbr.backends.carry import Carried
from fleetbr.backends.model import (
    PRIVATE_MODE,
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    TopologyConfig,
    check_route,
)
from fleetbr.backends.netplan import topology, view
from fleetbr.facts.model import DaemonView, HostFacts, Route
from fleetbr.facts.views import ViewContext

ETC = "/etc/netplan"
# Keys of the NIC's definition that move to the bridge (addresses, routes, name servers...).
MOVED = ("addresses", "routes", "gateway4", "gateway6", "nameservers", "routing-policy")
# Of those, what the bridge's entry takes over as it is (addresses and routes come from the task).
CARRIED = ("nameservers", "routing-policy")
DHCP = ("dhcp4", "dhcp6")


def _yaml() -> ruamel.yaml.YAML:
    yaml = ruamel.yaml.YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def source_file(facts: HostFacts, nic: str) -> str:
    """The one /etc/netplan file that defines ``nic`` (refused otherwise)."""
    files = [path for path, names in facts.daemons.netplan.items() if nic in names]
    if len(files) != 1:
        where = ", ".join(files) or "no file"
        raise BackendRefusal(
            f"persist: netplan: {nic} is defined in {where}; fleetbr rewrites exactly one "
            "netplan file (merge them first)"
        )
    if posixpath.dirname(files[0]) != ETC:
        raise BackendRefusal(
            f"persist: netplan: {files[0]} is not in {ETC}; fleetbr writes only there"
        )
    return files[0]


def nic_entry(ethernets: Any, nic: str, path: str) -> tuple[str, CommentedMap]:
    """The ``ethernets:`` entry (its id, its mapping) named for ``nic`` alone."""
    for ident, raw in list((ethernets or {}).items()):
        value = raw
        if raw is None:  # "eth0:" with nothing under it
            ethernets[ident] = value = CommentedMap()
        if not isinstance(value, CommentedMap):
            continue
        match, set_name = value.get("match"), value.get("set-name")
        if (str(ident) == nic and not match and set_name in (None, nic)) or set_name == nic:
            return str(ident), value
    raise BackendRefusal(
        f"persist: netplan: {path} defines {nic} other than as an ethernets entry named for it "
        "(by a match that may cover other NICs); fleetbr will not rewrite it"
    )


def device_entry(network: CommentedMap, dev: str, path: str) -> tuple[str, CommentedMap]:
    """The entry of ``dev``: its ``bonds:`` entry (a bond bridged as it is: its interfaces and
    parameters kept), else :func:`nic_entry`."""
    bonds = network.get("bonds")
    if isinstance(bonds, CommentedMap) and isinstance(bonds.get(dev), CommentedMap):
        return dev, bonds[dev]
    return nic_entry(network.get("ethernets"), dev, path)


def route_entry(route: Route) -> CommentedMap:
    """A ``routes:`` item (refused when netplan cannot express the route exactly)."""
    check_route(route, "netplan")
    entry = CommentedMap()
    entry["to"] = route.dst
    if route.gateway:
        entry["via"] = route.gateway
    if route.metric is not None:
        entry["metric"] = route.metric
    if route.table != "main":
        if not route.table.isdigit():
            raise BackendRefusal(f"persist: netplan: table {route.table} is not a number")
        entry["table"] = int(route.table)
    if route.onlink:
        entry["on-link"] = True
    if route.scope == "link" and not route.gateway:
        entry["scope"] = "link"
    return entry


def _bridge(config: BridgeConfig, ident: str, nic: CommentedMap) -> CommentedMap:
    bridge = CommentedMap()
    bridge["interfaces"] = CommentedSeq([ident])
    if config.mac:
        bridge["macaddress"] = config.mac
    bridge["addresses"] = CommentedSeq(config.addresses)
    if config.routes:
        bridge["routes"] = CommentedSeq([route_entry(r) for r in config.routes])
    for key in CARRIED:
        if key in nic:
            bridge[key] = nic[key]
    if "mtu" in nic:  # the port keeps it too
        bridge["mtu"] = nic["mtu"]
    bridge["accept-ra"] = False
    bridge["parameters"] = CommentedMap(
        [("stp", config.stp), ("forward-delay", config.forward_delay)]
    )
    return bridge


def load(text: str, path: str) -> tuple[CommentedMap, CommentedMap]:
    """The file's document and its ``network:`` mapping (comments kept)."""
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise BackendRefusal(
            f"persist: netplan: {path} is not YAML fleetbr can read: {exc}"
        ) from None
    network = doc.get("network") if isinstance(doc, CommentedMap) else None
    if not isinstance(network, CommentedMap):
        raise BackendRefusal(f"persist: netplan: {path} has no network: mapping")
    return doc, network


def dump(doc: CommentedMap, network: CommentedMap) -> tuple[str, str]:
    """The document as text, and the renderer it names."""
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue(), str(network.get("renderer", "networkd"))


def rewrite(text: str, path: str, config: BridgeConfig) -> tuple[str, str]:
    """``text`` with the NIC made a port of a new bridge entry, and the renderer it names."""
    doc, network = load(text, path)
    ident, nic = device_entry(network, config.nic, path)
    if any(nic.get(key) for key in DHCP):
        raise BackendRefusal(
            f"persist: netplan: {config.nic} uses DHCP; fleetbr persists static addresses only"
        )
    bridges = network.setdefault("bridges", CommentedMap())
    if not isinstance(bridges, CommentedMap):
        raise BackendRefusal(f"persist: netplan: {path} has a bridges: that is not a mapping")
    old = bridges.get(config.name)
    if old is not None:
        # persisted before (the NIC its only interface): rewritten from the task again
        if not isinstance(old, CommentedMap) or list(old.get("interfaces") or []) != [ident]:
            raise BackendRefusal(
                f"persist: netplan: {path} already defines bridge {config.name} with other "
                "interfaces"
            )
        for key in CARRIED:
            if key in old and key not in nic:
                nic[key] = old[key]
    bridges[config.name] = _bridge(config, ident, nic)
    for key in MOVED:
        nic.pop(key, None)
    for key in DHCP:
        nic[key] = False
    nic["accept-ra"] = False
    nic["link-local"] = CommentedSeq()
    return dump(doc, network)


def source_text(facts: HostFacts, nic: str) -> tuple[str, str]:
    """:func:`source_file`, and its text (refused when the facts do not hold it)."""
    path = source_file(facts, nic)
    text = facts.daemons.contents.get(path)
    if text is None:
        raise BackendRefusal(f"persist: netplan: the facts do not hold the content of {path}")
    return path, text


def carried(text: str, path: str, device: str) -> Carried:
    """The MTU, name servers and policy rules ``device``'s entry (ethernets or bridges) of the
    rewritten ``text`` gives it (BackendRefusal for a rule fleetbr cannot compare)."""
    _, network = load(text, path)
    entry: Any = None
    for kind in ("bridges", "ethernets"):
        group = network.get(kind)
        if isinstance(group, CommentedMap) and isinstance(group.get(device), CommentedMap):
            entry = group[device]
            break
    if entry is None:
        return Carried()
    mtu = entry.get("mtu")
    rules = tuple(
        carry.rule(_rule_selectors(item), "netplan", f"routing-policy of {device} in {path}")
        for item in entry.get("routing-policy") or ()
    )
    dns = (entry.get("nameservers") or {}).get("addresses") or ()
    return Carried(
        mtu=None if mtu is None else carry.mtu(mtu, "netplan", "mtu"),
        rules=rules,
        dns=tuple(str(d) for d in dns),
    )


def _rule_selectors(item: object) -> dict[str, object]:
    if not isinstance(item, CommentedMap):
        raise carry.refuse("netplan", f"routing-policy entry {item!r}", "is not a mapping")
    return {str(k): v for k, v in item.items()}


def _plan(path: str, new: str, renderer: str, config: BridgeConfig, unbridge: bool) -> BackendPlan:
    args = {"backend": "netplan", "bridge": config.name, "nic": config.nic, "renderer": renderer}
    if unbridge:
        args["direction"] = "unbridge"
    managers = (config.nic,) if unbridge else (config.name, config.nic)
    found = carried(new, path, config.nic if unbridge else config.name)
    return BackendPlan(
        "netplan",
        (FileChange(path, new, PRIVATE_MODE),),
        args,
        managers=managers,
        carried=found,
    )


def plan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """The rewritten netplan file; ``netplan apply`` renders it."""
    path, text = source_text(facts, config.nic)
    return _plan(path, *rewrite(text, path, config), config, unbridge=False)


def unrewrite(text: str, path: str, config: BridgeConfig) -> tuple[str, str]:
    """``text`` with the bridge entry removed and its addresses and routes back on the NIC."""
    doc, network = load(text, path)
    _, nic = device_entry(network, config.nic, path)
    bridges = network.get("bridges")
    old = bridges.get(config.name) if isinstance(bridges, CommentedMap) else None
    for key in CARRIED:
        if isinstance(old, CommentedMap) and key in old:
            nic[key] = old[key]
    if isinstance(bridges, CommentedMap):
        bridges.pop(config.name, None)
        if not bridges:
            network.pop("bridges")
    nic["addresses"] = CommentedSeq(config.addresses)
    if config.routes:
        nic["routes"] = CommentedSeq([route_entry(r) for r in config.routes])
    if nic.get("link-local") == []:
        nic.pop("link-local")
    return dump(doc, network)


def unplan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Unbridge: the netplan file gives the NIC its addresses back and loses the bridge."""
    path, text = source_text(facts, config.nic)
    return _plan(path, *unrewrite(text, path, config), config, unbridge=True)


class NetplanBackend(Backend):
    """netplan: the one /etc/netplan file that defines the NIC, rewritten."""

    name = "netplan"
    tool = "netplan"
    # its views carry the words of the daemon it renders for (networkd, NetworkManager)
    settled = ("configured", "connected")
    settling = ("pending", "initialized", "configuring", "connecting", "deactivating", "prepare")
    step_args = ("renderer",)
    boot_shell = True
    templates = Path(__file__).resolve().parent / "templates"
    view_rank = 40
    precedence = 1
    # netplan 0.106 has no bridge VLAN filtering (so no VLAN interfaces of a bridge either);
    # DHCP: networkd's client, its identity pinned by a drop-in (fleetbr.backends.netplan.dhcp)
    topologies = frozenset(
        {"bond_port", "bond_create", "vlan_uplink", "multi_bridge", "host_only", "dhcp"}
    )

    def parse_config(self, ctx: ViewContext) -> None:
        """The interfaces each YAML file defines (Daemons.netplan)."""
        ctx.found["netplan"] = view.netplan_interfaces(ctx.contents, ctx.links, ctx.warnings)

    def parse_view(self, ctx: ViewContext) -> None:
        """Interfaces only defined: no renderer's view named netplan's files."""
        view.add_defined(ctx, ctx.found["netplan"])

    def generates(self, path: str) -> bool:
        """The networkd and NetworkManager files ``netplan generate`` writes."""
        return path.startswith(view.NETPLAN_GENERATED)

    def generated_view(
        self, ctx: ViewContext, name: str, state: str, paths: Sequence[str], claims: bool
    ) -> DaemonView:
        """Its YAML files first, then the renderer's."""
        files = [*view.files_of(ctx.found["netplan"], name), *paths]
        return DaemonView(self.name, state, ctx.config(files), claims=claims)

    def renderer_daemon(self, facts: HostFacts) -> str | None:
        """networkd when it runs, else NetworkManager (what ``netplan apply`` renders for)."""
        return "networkd" if "networkd" in facts.daemons.running else "networkmanager"

    def refusals(self, facts: HostFacts, nic: str, bridge: str) -> None:
        """Also: exactly one file in /etc/netplan defines the NIC, whole."""
        super().refusals(facts, nic, bridge)
        source_text(facts, nic)

    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan`."""
        return plan(config, facts)

    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.unplan`."""
        return unplan(config, facts)

    def plan_topology(self, config: TopologyConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan_topology` (fleetbr.backends.netplan.topology)."""
        return topology.plan_topology(config, facts)
