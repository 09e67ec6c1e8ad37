"""NetworkManager: two keyfiles (the bridge, the NIC as its port); the NIC's old profile is
kept but set to autoconnect no by nmcli during the apply (NM would otherwise bring it back up at
boot and take the NIC out of the bridge). A rollback restores that file byte for byte."""

from __future__ import annotations

import dataclasses
import posixpath
import re
import uuid
from pathlib import Path

from fleetbr import validate
from fleetbr.backends import carry
from fleetbr.backends.base import Backend
from fleetbr.backends.carry import Carried, PolicyRule
from fleetbr.backends.model import (
    PRIVATE_MODE,
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    TopologyConfig,
    check_route,
)
from fleetbr.backends.networkmanager import topology, view
from fleetbr.errors import ValidationError
from fleetbr.facts.model import HostFacts, Route
from fleetbr.facts.views import ViewContext

ETC = "/etc/NetworkManager/system-connections"
_NAMESPACE = uuid.UUID("0d9f4a52-3c1b-4e8e-9a57-6a2f1b0c7d31")
HEADER = "# Managed by fleetbr: {what} (a fleetbr rollback removes it)."


def profile_uuid(hostname: str, role: str, config: BridgeConfig) -> str:
    """A stable uuid for one of fleetbr's profiles on one host."""
    return str(uuid.uuid5(_NAMESPACE, f"{hostname}/{config.name}/{config.nic}/{role}"))


def _old_profile(facts: HostFacts, nic: str) -> tuple[str, str]:
    active = facts.daemons.nm_active.get(nic)
    path = next((f.path for f in facts.manager(nic).files), "")
    if active is None or not path:
        raise BackendRefusal(
            f"persist: networkmanager: {nic} has no active NetworkManager profile with a file"
        )
    if not path.startswith(ETC + "/"):
        raise BackendRefusal(
            f"persist: networkmanager: the profile of {nic} lives in {path}, not {ETC}; "
            "fleetbr does not change profiles it cannot restore byte for byte"
        )
    return active[0], path


_DOMAIN_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,252}$")


def name_servers(facts: HostFacts, device: str) -> dict[str, str]:
    """The DNS settings of the profile active on ``device``, validated, as keyfile lines'
    values (``dns``/``dns-search`` per family: ``"ipv4.dns" -> "198.51.100.53;"``)."""
    active = facts.daemons.nm_active.get(device)
    found = facts.daemons.nm_dns.get(active[0], {}) if active else {}
    out: dict[str, str] = {}
    for key, value in found.items():
        if not key.endswith((".dns", ".dns-search")):
            continue
        items = [v.strip() for v in value.split(",") if v.strip()]
        try:
            if key.endswith(".dns"):
                items = [validate.ip_address(v, key) for v in items]
            elif not all(_DOMAIN_RE.match(v) for v in items):
                raise ValidationError(f"{key}: {value!r} is not a list of domain names")
        except ValidationError as exc:
            raise BackendRefusal(f"persist: networkmanager: {device}'s profile: {exc}") from None
        out[key] = "".join(f"{v};" for v in items)
    return out


def _settings(facts: HostFacts, device: str) -> dict[str, str]:
    active = facts.daemons.nm_active.get(device)
    return facts.daemons.nm_dns.get(active[0], {}) if active else {}


def profile_mtu(facts: HostFacts, device: str) -> int | None:
    """The ``ethernet.mtu`` of the profile active on ``device`` (None: auto)."""
    value = _settings(facts, device).get("802-3-ethernet.mtu", "auto")
    if value in ("auto", "0"):
        return None
    return carry.mtu(value, "networkmanager", f"{device}'s profile 802-3-ethernet.mtu")


def routing_rules(facts: HostFacts, device: str) -> tuple[PolicyRule, ...]:
    """The ``ipv4.routing-rules`` and ``ipv6.routing-rules`` of the profile active on
    ``device`` (BackendRefusal for a rule fleetbr cannot carry and compare)."""
    out: list[PolicyRule] = []
    for family in (4, 6):
        key = f"ipv{family}.routing-rules"
        for text in _settings(facts, device).get(key, "").split(","):
            if text.strip():
                out.append(
                    _rule(text.strip(), family, f"{device}'s profile {key} ({text.strip()})")
                )
    return tuple(out)


def _rule(text: str, family: int, setting: str) -> PolicyRule:
    words = text.split()
    if len(words) % 2:
        raise carry.refuse("networkmanager", setting, "is not selector/value pairs")
    return carry.rule(
        dict(zip(words[::2], words[1::2], strict=True)), "networkmanager", setting, family
    )


def _rule_line(rule: PolicyRule) -> str:
    words = [f"priority {rule.priority}"] * (rule.priority is not None)
    words += [f"from {rule.src}"] * bool(rule.src) + [f"to {rule.dst}"] * bool(rule.dst)
    return " ".join([*words, f"table {rule.table}"])


def _family(
    config: BridgeConfig,
    family: int,
    dns: dict[str, str] | None = None,
    rules: tuple[PolicyRule, ...] = (),
) -> list[str]:
    section = "ipv4" if family == 4 else "ipv6"
    addresses = config.family_addresses(family)
    mine = [r for r in rules if r.family == family]
    if not addresses and mine:
        raise carry.refuse(
            "networkmanager",
            f"{section}.routing-rules ({_rule_line(mine[0])})",
            f"has no IPv{family} address on the bridge to go with",
        )
    servers = [f"{section}.{k}={(dns or {})[f'{section}.{k}']}" for k in ("dns", "dns-search")
               if (dns or {}).get(f"{section}.{k}")]  # fmt: skip
    if not addresses and servers:
        why = f"has no IPv{family} address on the bridge to go with (a profile drops it)"
        raise carry.refuse("networkmanager", servers[0], why)
    if not addresses:
        return [f"[{section}]", "method=disabled" if family == 4 else "method=ignore"]
    lines = [f"[{section}]", "method=manual"]
    lines += [f"address{i}={a}" for i, a in enumerate(addresses, 1)]
    for key in ("dns", "dns-search"):
        if (dns or {}).get(f"{section}.{key}"):
            lines.append(f"{key}={(dns or {})[f'{section}.{key}']}")
    defaults = config.defaults(family)
    if len(defaults) > 1:
        raise BackendRefusal(
            f"persist: networkmanager: more than one IPv{family} default route; "
            "a profile has one gateway"
        )
    others: list[Route] = [r for r in config.routes if r.family == family and r not in defaults]
    if defaults:
        check_route(defaults[0], "networkmanager", tables=False)
        lines.append(f"gateway={defaults[0].gateway}")
        # keep the metric the NIC's default route had (NM's default for a bridge is 425)
        lines.append(f"route-metric={defaults[0].metric or 0}")
    for i, route in enumerate(others, 1):
        check_route(route, "networkmanager")
        value = ",".join(
            [route.dst if route.dst != "default" else ("0.0.0.0/0" if family == 4 else "::/0")]
            + ([route.gateway] if route.gateway else [])
            + ([str(route.metric)] if route.metric is not None else [])
        )
        lines.append(f"route{i}={value}")
        if route.table != "main":
            if not route.table.isdigit():
                raise BackendRefusal(
                    f"persist: networkmanager: table {route.table} is not a number"
                )
            lines.append(f"route{i}_options=table={route.table}")
    lines += [f"routing-rule{i}={_rule_line(r)}" for i, r in enumerate(mine, 1)]
    if family == 6:
        lines.append("addr-gen-mode=eui64")
    return lines


def bridge_profile(
    config: BridgeConfig,
    conn_uuid: str,
    dns: dict[str, str] | None = None,
    carried: Carried | None = None,
) -> str:
    """The bridge's keyfile (``dns``: see :func:`name_servers`; ``carried``: the NIC profile's
    MTU and routing rules)."""
    lines = [
        HEADER.format(what=f"bridge {config.name}"),
        "[connection]",
        f"id={config.name}",
        f"uuid={conn_uuid}",
        "type=bridge",
        f"interface-name={config.name}",
        "autoconnect=true",
        "",
    ]
    ethernet = [f"cloned-mac-address={config.mac.upper()}"] if config.mac else []
    ethernet += _mtu_lines(carried)
    if ethernet:
        lines += ["[ethernet]", *ethernet, ""]
    stp = "true" if config.stp else "false"
    lines += ["[bridge]", f"stp={stp}", f"forward-delay={config.forward_delay}", ""]
    rules = carried.rules if carried else ()
    lines += [*_family(config, 4, dns, rules), "", *_family(config, 6, dns, rules)]
    return "\n".join(lines) + "\n"


def _mtu_lines(carried: Carried | None) -> list[str]:
    return [f"mtu={carried.mtu}"] if carried and carried.mtu is not None else []


def port_profile(
    config: BridgeConfig, conn_uuid: str, bridge_uuid: str, carried: Carried | None = None
) -> str:
    """The NIC's keyfile as a port of the bridge (with the NIC profile's MTU)."""
    lines = [
        HEADER.format(what=f"{config.nic} as a port of {config.name}"),
        "[connection]",
        f"id={config.name}-port-{config.nic}",
        f"uuid={conn_uuid}",
        "type=ethernet",
        f"interface-name={config.nic}",
        f"master={bridge_uuid}",
        "slave-type=bridge",
        "autoconnect=true",
        "autoconnect-priority=10",
    ]
    if _mtu_lines(carried):
        lines += ["", "[ethernet]", *_mtu_lines(carried)]
    return "\n".join(lines) + "\n"


def plan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Keyfiles for the bridge and its port; the old profile is set to autoconnect no (a bond
    as the NIC: its own profile becomes the port, fleetbr.backends.networkmanager.topology)."""
    link = facts.link(config.nic)
    if link is not None and link.kind == "bond":
        return topology.plan_bond_port(config, facts)
    bridge_uuid = profile_uuid(facts.hostname, "bridge", config)
    port_uuid = profile_uuid(facts.hostname, "port", config)
    active = facts.daemons.nm_active.get(config.nic)
    if active is not None and active[0] == port_uuid:  # persisted before: nothing to retire
        old_uuid: str | None = None
        guarded: tuple[str, ...] = ()
        dns = name_servers(facts, config.name)
        rules = routing_rules(facts, config.name)
    else:
        old_uuid, old_path = _old_profile(facts, config.nic)
        guarded = (old_path,)
        dns = name_servers(facts, config.nic)
        rules = routing_rules(facts, config.nic)
    servers = [v for k in ("ipv4.dns", "ipv6.dns") for v in dns.get(k, "").split(";") if v]
    carried = Carried(profile_mtu(facts, config.nic), rules, tuple(servers))
    bridge_path = posixpath.join(ETC, f"{config.name}.nmconnection")
    port_path = posixpath.join(ETC, f"{config.name}-port-{config.nic}.nmconnection")
    if set(guarded) & {bridge_path, port_path}:
        raise BackendRefusal(
            f"persist: networkmanager: the NIC's profile is {guarded[0]}, a name fleetbr uses"
        )
    files = (
        FileChange(bridge_path, bridge_profile(config, bridge_uuid, dns, carried), PRIVATE_MODE),
        FileChange(port_path, port_profile(config, port_uuid, bridge_uuid, carried), PRIVATE_MODE),
    )
    args = {
        "backend": "networkmanager",
        "bridge": config.name,
        "nic": config.nic,
        "bridge_uuid": bridge_uuid,
        "port_uuid": port_uuid,
        "old_uuid": old_uuid,
    }
    return BackendPlan(
        "networkmanager",
        files,
        args,
        managers=(config.name, config.nic),
        guarded=guarded,
        carried=carried,
    )


def unplan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Unbridge: fleetbr's bridge and port profiles go; a profile of fleetbr's own gives the NIC
    its addresses (the NIC's old profile, set to autoconnect no by the cutover, stays as is)."""
    nic_uuid = profile_uuid(facts.hostname, "nic", config)
    plain = dataclasses.replace(config, name=config.nic)
    rules = routing_rules(facts, config.name)
    mtu = [f"mtu={m}"] if (m := profile_mtu(facts, config.nic)) is not None else []
    lines = [
        HEADER.format(what=f"{config.nic} with its addresses (bridge {config.name} removed)"),
        "[connection]",
        f"id=fleetbr-{config.nic}",
        f"uuid={nic_uuid}",
        "type=ethernet",
        f"interface-name={config.nic}",
        "autoconnect=true",
        "",
        *(["[ethernet]", *mtu, ""] if mtu else []),
        *_family(plain, 4, name_servers(facts, config.name), rules),
        "",
        *_family(plain, 6, name_servers(facts, config.name), rules),
    ]
    files = (
        FileChange(posixpath.join(ETC, f"{config.name}.nmconnection"), None),
        FileChange(posixpath.join(ETC, f"{config.name}-port-{config.nic}.nmconnection"), None),
        FileChange(
            posixpath.join(ETC, f"fleetbr-{config.nic}.nmconnection"),
            "\n".join(lines) + "\n",
            PRIVATE_MODE,
        ),
    )
    args = {
        "backend": "networkmanager",
        "bridge": config.name,
        "nic": config.nic,
        "direction": "unbridge",
        "nic_uuid": nic_uuid,
        "bridge_uuid": profile_uuid(facts.hostname, "bridge", config),
        "port_uuid": profile_uuid(facts.hostname, "port", config),
    }
    return BackendPlan("networkmanager", files, args, managers=(config.nic,))


class NetworkManagerBackend(Backend):
    """NetworkManager: keyfiles for the bridge and its port; the old profile retired."""

    name = "networkmanager"
    tool = "networkmanager"
    daemon = "networkmanager"
    settled = ("connected",)
    settling = ("connecting", "deactivating", "prepare")
    aliases = ("NetworkManager",)
    step_args = ("bridge_uuid", "port_uuid", "old_uuid", "nic_uuid")
    templates = Path(__file__).resolve().parent / "templates"
    process = "NetworkManager"
    view_words = view.WORDS
    view_rank = 20
    precedence = 0
    # DHCP: NM's client with the NIC's identity pinned (fleetbr.backends.networkmanager.dhcp)
    # every feature (fleetbr.changes.bridge.topology.FEATURES: not imported, the facts command
    # must not load the change kinds; tests/unit/test_startup_imports.py)
    topologies = frozenset(
        {
            "bond_port",
            "bond_create",
            "vlan_uplink",
            "multi_bridge",
            "vlan_filtering",
            "vlan_interface",
            "host_only",
            "dhcp",
        }
    )

    def name_servers(self, facts: HostFacts, name: str) -> tuple[str, ...] | None:
        """The name servers of the profile active on ``name`` (ipv4, then ipv6), as nmcli
        reports them."""
        found = _settings(facts, name)
        return tuple(
            v.strip()
            for key in ("ipv4.dns", "ipv6.dns")
            for v in found.get(key, "").split(",")
            if v.strip()
        )

    def parse_config(self, ctx: ViewContext) -> None:
        """Each device's active profile, that profile's carried settings and the device's DHCP
        client identity."""
        devices = view.devices(ctx)
        ctx.notes[self.name] = devices
        ctx.found["nm_active"] = {f[0]: (f[4], f[3]) for f in devices if f[0] and f[4]}
        ctx.found["nm_dns"] = view.profile_settings(ctx)
        ctx.found["nm_dhcp"] = view.dhcp_identities(ctx)

    def parse_view(self, ctx: ViewContext) -> None:
        """Each device NetworkManager lists."""
        view.add_views(ctx, ctx.notes[self.name], view.connection_files(ctx))

    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan`."""
        return plan(config, facts)

    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.unplan`."""
        return unplan(config, facts)

    def plan_topology(self, config: TopologyConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan_topology` (fleetbr.backends.networkmanager.topology)."""
        return topology.plan_topology(config, facts)
