"""For demos: what a lab host's guests are attached to, and the task section that moves them.

The distro demo (fleetbr.demo_distro_guests) boots one host with a guest (fleetbr.lab.distro.up
with one guest count per host), adds :data:`TASK_SECTION` to its task, and prints
:func:`guest_lines` before and after the cut-over: the guest's interface goes from the libvirt
network ``lab`` (tap on ``virbr-lab``) to ``br0``.
"""

from __future__ import annotations

from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.lab.distro.guests import NETWORK
from fleetbr.lab.faults import host_exec
from fleetbr.lab.model import Lab

TASK_SECTION: dict[str, object] = {"move": "all", "from": NETWORK, "link_flap": True}


def guest_lines(facts: HostFacts) -> list[str]:
    """One line per guest interface: domain, definition, type and source, tap and its bridge."""
    if facts.guests is None:
        return ["no libvirt"]
    out = []
    for domain in facts.guests.domains:
        for scope in ("live", "config"):
            if scope == "live" and not domain.active:
                continue
            for iface in domain.interfaces(scope):
                line = f"{domain.name} ({scope}): {iface.type} {iface.source}"
                link = facts.link(iface.tap) if iface.tap else None
                if link is not None:
                    line += f", tap {iface.tap} on {link.master}"
                out.append(line)
    return out


def host_guest_lines(lab: Lab, host: str) -> list[str]:
    """:func:`guest_lines` of a lab host, read inside the host (no SSH)."""
    output = host_exec(lab, host, ["sh", "-s"], input=facts_script()).stdout
    return guest_lines(parse_facts(output))
