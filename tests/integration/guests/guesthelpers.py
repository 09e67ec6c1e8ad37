"""Helpers for the guest tier (libvirt guests on the distro lab's hosts): task files with a
``guests:`` section, facts read inside a host, a domain's interfaces and their bridge."""

from __future__ import annotations

from pathlib import Path

import yaml

from fleetbr.facts.libvirt import Domain
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.lab import Lab, host_exec
from tests.integration.helpers import REPO, TIMEOUT

CONFIRM_TIMEOUT = 30


def task(tmp_path: Path, guests: dict[str, object], base: str = "bridge.yaml") -> Path:
    """tasks/<base> with a guests: section and a short timer: the shortest for a host that must
    roll back (cut-off), a longer one where the host must confirm on a loaded machine (each
    virsh call in the apply and the facts costs tens of milliseconds, more under load)."""
    doc = yaml.safe_load((REPO / "tasks" / base).read_text())
    doc["deadman"]["timeout"] = TIMEOUT if base == "cut-off.yaml" else CONFIRM_TIMEOUT
    doc["guests"] = guests
    if base == "cut-off.yaml":  # its jinja default would not survive a YAML round trip
        doc["bridge"]["addresses"] = ["203.0.113.250/32"]
    path = tmp_path / f"guests-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, width=10_000))
    return path


def host_facts(lab: Lab, host: str) -> HostFacts:
    """The host's facts, read without SSH (the facts script run inside the host)."""
    return parse_facts(host_exec(lab, host, ["sh", "-s"], input=facts_script()).stdout)


def domains(facts: HostFacts) -> dict[str, Domain]:
    """The host's libvirt domains by name."""
    assert facts.guests is not None
    return {d.name: d for d in facts.guests.domains}


def master(facts: HostFacts, tap: str) -> str | None:
    """The bridge ``tap`` is a port of (None: none, or no such link)."""
    link = facts.link(tap)
    return link.master if link is not None else None
