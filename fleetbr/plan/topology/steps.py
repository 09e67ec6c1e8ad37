"""Step constructors for topologies (bonds, VLAN devices, the bridge VLAN table), each with its
inverse. Every value is validated here; the shell is in ``templates/steps.sh.j2``."""

from __future__ import annotations

import dataclasses
import re

from fleetbr import validate
from fleetbr.changes.bridge.topology import BOND_MODES, BondSpec, OptionValue
from fleetbr.errors import ValidationError
from fleetbr.facts.parse_ip import ADDRGENMODES
from fleetbr.plan.model import Step

_WORD_RE = re.compile(r"^[A-Za-z0-9_.,+:-]{1,256}$")
VLAN_PROTOCOLS = ("802.1Q", "802.1ad")


def _ifname(value: str, field: str) -> str:
    return validate.interface_name(value, field)


def option_words(options: tuple[tuple[str, OptionValue], ...]) -> str:
    """``ip link add ... type bond`` option words: ``miimon 100 lacp_rate fast`` (booleans 1/0)."""
    words: list[str] = []
    for key, value in options:
        text = str(int(value)) if isinstance(value, bool) else str(value)
        for word in (key, text):
            if not _WORD_RE.match(word):
                raise ValidationError(f"bond option {key}: {word!r} is not a plain word")
        words += [key, text]
    return " ".join(words)


def bond_add(bond: BondSpec, mac: str | None = None) -> Step:
    """Create bond ``bond.name`` (down, no slaves) in its mode with its options and ``mac`` (its
    first slave's: a bond created without one gets a MAC from udev's MACAddressPolicy=persistent
    before its first slave comes, keeps it, and gives it to every slave); the inverse deletes
    it."""
    args = {
        "name": _ifname(bond.name, "bond"),
        "mode": validate.choice(bond.mode, "bond mode", BOND_MODES),
        "options": option_words(bond.options),
        "mac": validate.mac_address(mac, "bond mac") if mac else None,
    }
    text = f"create bond {bond.name} (mode {bond.mode}{', ' if bond.options else ''}"
    text += f"{args['options']}{f', mac {mac}' if mac else ''})"
    return Step(
        "bond_add",
        args,
        text,
        inverse=Step("bond_del", {"name": args["name"]}, f"delete bond {bond.name}"),
    )


def bond_enslave(dev: str, bond: str, *, was_up: bool, addrgenmode: str | None = None) -> Step:
    """Put NIC ``dev`` into ``bond`` (set down first: the kernel wants it so); the inverse
    releases it (the kernel closes a released slave), gives it back its IPv6 ``addrgenmode`` (a
    daemon that took the slave may have set it to none, and does not reset it when it lets the
    NIC go) and sets it up again if it was up (the link-local address comes back with it)."""
    args = {"dev": _ifname(dev, "bond slave"), "master": _ifname(bond, "bond"), "up": was_up}
    mode = (
        None if addrgenmode is None else validate.choice(addrgenmode, "addrgenmode", ADDRGENMODES)
    )
    undo = {**args, "addrgenmode": mode}
    return Step(
        "bond_enslave",
        args,
        f"make {dev} a slave of {bond}",
        inverse=Step("bond_release", undo, f"release {dev} from {bond}"),
    )


def vlan_add(name: str, parent: str, vid: int, protocol: str = "802.1Q") -> Step:
    """Create VLAN device ``name`` (id ``vid`` on ``parent``), down; the inverse deletes it."""
    args: dict[str, object] = {
        "name": _ifname(name, "vlan"),
        "link": _ifname(parent, "vlan parent"),
        "vid": validate.integer(vid, "vlan id", 1, 4094),
        "protocol": validate.choice(protocol, "vlan protocol", VLAN_PROTOCOLS),
        "up": False,
    }
    return Step(
        "vlan_add",
        args,
        f"create VLAN {vid} device {name} on {parent}",
        inverse=Step("vlan_del", {"name": args["name"]}, f"delete VLAN device {name}"),
    )


def vlan_del(name: str, parent: str, vid: int, protocol: str, *, was_up: bool) -> Step:
    """Delete VLAN device ``name``; the inverse recreates it (and sets it up if it was)."""
    add = vlan_add(name, parent, vid, protocol)
    recreate = Step("vlan_add", {**add.args, "up": was_up}, f"recreate {add.description[7:]}")
    return Step(
        "vlan_del", {"name": add.args["name"]}, f"delete VLAN device {name}", inverse=recreate
    )


def bridge_vlan_filtering(
    bridge: str, *, on: bool, default_pvid: int, old: tuple[bool, int]
) -> Step:
    """Switch VLAN filtering of ``bridge`` and set its default PVID (0: none, so no port gets a
    VLAN the task does not list); the inverse sets the old values."""

    def args(flag: bool, pvid: int) -> dict[str, object]:
        return {
            "name": _ifname(bridge, "bridge"),
            "on": flag,
            "default_pvid": validate.integer(pvid, "vlan_default_pvid", 0, 4094),
        }

    def text(flag: bool, pvid: int) -> str:
        return f"set VLAN filtering of {bridge} {'on' if flag else 'off'} (default pvid {pvid})"

    return Step(
        "bridge_vlan_set",
        args(on, default_pvid),
        text(on, default_pvid),
        inverse=Step("bridge_vlan_set", args(*old), text(*old)),
    )


def bridge_vlan_add(
    dev: str, vids: tuple[int, int], *, pvid: bool = False, untagged: bool = False,
    self_: bool = False,
) -> Step:  # fmt: skip
    """Add VLANs ``vids`` (an inclusive range) to port ``dev`` (``self_``: to the bridge ``dev``
    itself); the inverse removes them."""
    lo, hi = (validate.integer(v, "vlan id", 1, 4094) for v in vids)
    if lo > hi or ((pvid or untagged) and lo != hi):
        raise ValidationError(f"bridge vlan {lo}-{hi}: a pvid or untagged entry is one VLAN")
    args = {
        "dev": _ifname(dev, "bridge port"),
        "vid": lo,
        "vid_end": hi,
        "pvid": pvid,
        "untagged": untagged,
        "self": self_,
    }
    what = f"VLAN {lo}" if lo == hi else f"VLANs {lo}-{hi}"
    flags = (" pvid" if pvid else "") + (" untagged" if untagged else "")
    where = f"bridge {dev} itself" if self_ else f"port {dev}"
    return Step(
        "bridge_vlan_add",
        args,
        f"add {what}{flags} to {where}",
        inverse=Step("bridge_vlan_del", args, f"remove {what} from {where}"),
    )


def bridge_vlan_remove(
    dev: str, vids: tuple[int, int], *, pvid: bool = False, untagged: bool = False,
    self_: bool = False,
) -> Step:  # fmt: skip
    """Remove VLANs ``vids`` from ``dev`` (a VLAN the task does not list); the inverse adds them
    back with their flags."""
    add = bridge_vlan_add(dev, vids, pvid=pvid, untagged=untagged, self_=self_)
    assert add.inverse is not None
    return dataclasses.replace(add.inverse, inverse=dataclasses.replace(add, inverse=None))
