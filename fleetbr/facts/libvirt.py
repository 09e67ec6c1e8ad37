"""Libvirt facts: every domain of ``qemu:///system`` with the interfaces of its definitions.

Read by the facts script with virsh (``dumpxml`` live and ``--inactive``) and parsed here from the
XML (:mod:`fleetbr.facts.parse_libvirt`). A domain is known by its UUID: its name is arbitrary
text that only ever appears in messages, escaped, never in a command.
"""

from __future__ import annotations

from dataclasses import dataclass

LIBVIRT_MAX_BYTES = 1 << 20  # one domain definition; a larger one is reported, never parsed
Scope = str  # "live" (the running guest) or "config" (its persistent definition)
SCOPES: tuple[Scope, ...] = ("live", "config")


@dataclass(frozen=True)
class GuestInterface:
    """One ``<interface>`` of a definition.

    ``source`` is the network name (type network) or the bridge (type bridge), else "";
    ``bridge`` is the bridge its tap is on: the source bridge, or the live network's bridge.
    ``tap`` is the live tap device (``<target dev>``), "" in a persistent definition. ``xml`` is
    the element as libvirt wrote it (one line), ``canonical`` the form compared across a
    rollback (C14N, no runtime port id). ``unmovable`` says why fleetbr will not move it ("").
    """

    mac: str
    type: str
    source: str
    bridge: str
    model: str
    tap: str
    xml: str
    canonical: str
    unmovable: str = ""


@dataclass(frozen=True)
class Domain:
    """A libvirt domain: ``live`` its current definition (that of a running guest when
    ``active``), ``config`` its persistent one (None for a transient domain). ``error`` says why
    its definitions could not be read ("": they were)."""

    uuid: str
    name: str
    active: bool
    live: tuple[GuestInterface, ...]
    config: tuple[GuestInterface, ...] | None
    error: str = ""

    def interfaces(self, scope: Scope) -> tuple[GuestInterface, ...]:
        """The interfaces of the ``live`` or ``config`` definition (() if it has none)."""
        return self.live if scope == "live" else (self.config or ())


@dataclass(frozen=True)
class Libvirt:
    """What the facts script found: ``error`` when virsh does not answer (libvirtd down)."""

    version: str = ""
    domains: tuple[Domain, ...] = ()
    error: str = ""

    def named(self, name: str) -> Domain | None:
        """The domain called ``name``, or None."""
        return next((d for d in self.domains if d.name == name), None)

    def by_uuid(self, uuid: str) -> Domain | None:
        """The domain with ``uuid``, or None."""
        return next((d for d in self.domains if d.uuid == uuid), None)
