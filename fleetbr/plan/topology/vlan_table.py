"""The bridge VLAN table of a VLAN-aware bridge: what its port and the bridge itself must carry
(``vids`` tagged, the PVID untagged, the VLAN interfaces' VLANs on the bridge), and the
``bridge vlan add`` steps for what the host lacks."""

from __future__ import annotations

from fleetbr.changes.bridge.topology import TopoBridge
from fleetbr.facts.model import HostFacts
from fleetbr.facts.topology import PortVlan
from fleetbr.plan.model import Step
from fleetbr.plan.topology import steps as tsteps


def wanted_table(bridge: TopoBridge) -> list[PortVlan]:
    """The VLAN table a VLAN-aware bridge must have: the port carries ``vids`` tagged and the
    PVID untagged; the bridge itself its VLAN interfaces' VLANs, and the PVID untagged when it
    holds addresses itself."""
    entries: list[PortVlan] = []
    port = bridge.port
    if port is not None:
        entries += [PortVlan(port, lo, hi) for lo, hi in bridge.vids]
        if bridge.pvid is not None:
            entries.append(PortVlan(port, bridge.pvid, bridge.pvid, pvid=True, untagged=True))
    entries += [PortVlan(bridge.name, v.vid, v.vid) for v in bridge.vlan_interfaces]
    if bridge.pvid is not None and bridge.addresses != ():
        entries.append(PortVlan(bridge.name, bridge.pvid, bridge.pvid, pvid=True, untagged=True))
    return _split(entries)


def _split(entries: list[PortVlan]) -> list[PortVlan]:
    """Ranges cut around single entries of the same device (the PVID inside ``vids``)."""
    singles = {(e.dev, e.vid) for e in entries if e.vid == e.vid_end}
    out: list[PortVlan] = []
    for e in entries:
        if e.vid == e.vid_end:
            if not any(o.dev == e.dev and o.vid == e.vid for o in out):
                out.append(e)
            continue
        start = e.vid
        for vid in range(e.vid, e.vid_end + 2):
            if vid > e.vid_end or (e.dev, vid) in singles:
                if start < vid:
                    out.append(PortVlan(e.dev, start, vid - 1))
                start = vid + 1
    return out


def table_steps(bridge: TopoBridge, facts: HostFacts) -> tuple[list[PortVlan], list[Step]]:
    """The VLAN table ``bridge`` and its port must have, and the steps that add what the host
    lacks (each with its inverse)."""
    wanted = wanted_table(bridge)
    devs = [d for d in (bridge.port, bridge.name) if d]
    steps: list[Step] = []
    have = {(e.dev, v): (e.pvid, e.untagged)
            for e in facts.topology.vlan_table or () if e.dev in devs
            for v in range(e.vid, e.vid_end + 1)}  # fmt: skip
    for entry in wanted:
        span = range(entry.vid, entry.vid_end + 1)
        if all(have.get((entry.dev, v)) == (entry.pvid, entry.untagged) for v in span):
            continue
        steps.append(
            tsteps.bridge_vlan_add(entry.dev, (entry.vid, entry.vid_end), pvid=entry.pvid,
                                   untagged=entry.untagged, self_=entry.dev == bridge.name)
        )  # fmt: skip
    want = {(e.dev, v): (e.pvid, e.untagged) for e in wanted for v in range(e.vid, e.vid_end + 1)}
    for e in facts.topology.vlan_table or ():
        span = range(e.vid, e.vid_end + 1)
        if e.dev in devs and all(want.get((e.dev, v)) != (e.pvid, e.untagged) for v in span):
            steps.insert(0, tsteps.bridge_vlan_remove(e.dev, (e.vid, e.vid_end), pvid=e.pvid,
                                                      untagged=e.untagged,
                                                      self_=e.dev == bridge.name))  # fmt: skip
    return wanted, steps
