"""NetworkManager: two keyfiles (the bridge, the NIC as its port); the NIC's old profile is
kept but set to autoconnect no by nmcli during the apply (NM would otherwise bring it back up at
boot and take the NIC out of the bridge). A rollback restores that file byte for byte."""

from __future__ import annotations

import posixpath
import uuid

from fleetbr.backends.model import (
    PRIVATE_MODE,
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    check_route,
)
from fleetbr.facts.model import HostFacts, Route

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


def _family(config: BridgeConfig, family: int) -> list[str]:
    section = "ipv4" if family == 4 else "ipv6"
    addresses = config.family_addresses(family)
    if not addresses:
        return [f"[{section}]", "method=disabled" if family == 4 else "method=ignore"]
    lines = [f"[{section}]", "method=manual"]
    lines += [f"address{i}={a}" for i, a in enumerate(addresses, 1)]
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
    if family == 6:
        lines.append("addr-gen-mode=eui64")
    return lines


def bridge_profile(config: BridgeConfig, conn_uuid: str) -> str:
    """The bridge's keyfile."""
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
    if config.mac:
        lines += ["[ethernet]", f"cloned-mac-address={config.mac.upper()}", ""]
    stp = "true" if config.stp else "false"
    lines += ["[bridge]", f"stp={stp}", f"forward-delay={config.forward_delay}", ""]
    lines += [*_family(config, 4), "", *_family(config, 6)]
    return "\n".join(lines) + "\n"


def port_profile(config: BridgeConfig, conn_uuid: str, bridge_uuid: str) -> str:
    """The NIC's keyfile as a port of the bridge."""
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
    return "\n".join(lines) + "\n"


def plan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Keyfiles for the bridge and its port; the old profile is set to autoconnect no."""
    bridge_uuid = profile_uuid(facts.hostname, "bridge", config)
    port_uuid = profile_uuid(facts.hostname, "port", config)
    active = facts.daemons.nm_active.get(config.nic)
    if active is not None and active[0] == port_uuid:  # persisted before: nothing to retire
        old_uuid: str | None = None
        guarded: tuple[str, ...] = ()
    else:
        old_uuid, old_path = _old_profile(facts, config.nic)
        guarded = (old_path,)
    bridge_path = posixpath.join(ETC, f"{config.name}.nmconnection")
    port_path = posixpath.join(ETC, f"{config.name}-port-{config.nic}.nmconnection")
    if set(guarded) & {bridge_path, port_path}:
        raise BackendRefusal(
            f"persist: networkmanager: the NIC's profile is {guarded[0]}, a name fleetbr uses"
        )
    files = (
        FileChange(bridge_path, bridge_profile(config, bridge_uuid), PRIVATE_MODE),
        FileChange(port_path, port_profile(config, port_uuid, bridge_uuid), PRIVATE_MODE),
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
        "networkmanager", files, args, managers=(config.name, config.nic), guarded=guarded
    )
