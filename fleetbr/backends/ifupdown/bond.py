"""Bond stanzas in ifenslave's syntax (Debian 12's ifenslave 2.13: its
/etc/network/if-pre-up.d/ifenslave creates the bond from ``bond-slaves`` and writes each
``bond-*`` option to /sys/class/net/BOND/bonding/; a slave's ``bond-master`` enslaves it).

A bond the task creates gets, in this order (``ifup -a`` follows the file's ``auto`` order):
its own stanza (``inet manual``, ``bond-slaves``, ``bond-mode``, the task's options), so that
the hook enslaves the slaves in the task's order and the bond takes the first one's MAC (the
package's 98-net-bonding.link sets ``MACAddressPolicy=none``), as the runtime steps build it;
then each slave's (``inet manual``, ``bond-master``). An existing bond that becomes a port keeps
a ``manual`` stanza with its own ``bond-*`` options (its addresses move to the bridge).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetbr.backends.model import BackendRefusal
from fleetbr.facts.model import HostFacts

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import BondSpec, OptionValue

TOOL = "ifenslave"  # the facts' ``backend ifenslave PRESENT no`` line (templates/facts.sh.j2)
# task option -> ifenslave keyword (its hook has no min_links or all_slaves_active)
_KEYS = {
    "miimon": "bond-miimon",
    "updelay": "bond-updelay",
    "downdelay": "bond-downdelay",
    "arp_interval": "bond-arp-interval",
    "arp_ip_target": "bond-arp-ip-target",
    "arp_validate": "bond-arp-validate",
    "use_carrier": "bond-use-carrier",
    "lacp_rate": "bond-lacp-rate",
    "ad_select": "bond-ad-select",
    "xmit_hash_policy": "bond-xmit-hash-policy",
    "primary": "bond-primary",
    "primary_reselect": "bond-primary-reselect",
    "fail_over_mac": "bond-fail-over-mac",
    "tlb_dynamic_lb": "bond-tlb-dynamic-lb",
}


def is_bond_option(option: str) -> bool:
    """A ``bond-*`` option (never carried to a bridge's stanza)."""
    return option.split(maxsplit=1)[0].startswith(("bond-", "bond_"))


def require_ifenslave(facts: HostFacts) -> None:
    """Refuse a bond on a host without ifenslave: ifupdown would ignore the ``bond-*`` lines
    and build no bond at boot."""
    if not any(b.name == TOOL and b.present for b in facts.backends):
        raise BackendRefusal(
            "persist: ifupdown: ifenslave is not installed, so ifupdown cannot build the bond "
            "at boot (apt-get install ifenslave)"
        )


def _value(key: str, value: OptionValue, bond: str) -> str:
    if key not in _KEYS:
        raise BackendRefusal(
            f"persist: ifupdown: bond {bond}: option {key} has no keyword in ifenslave "
            "(use persist: none for a runtime-only change)"
        )
    if isinstance(value, bool):
        return "1" if value else "0"  # sysfs's words for use_carrier, tlb_dynamic_lb
    return str(value).replace(",", " ") if key == "arp_ip_target" else str(value)


def bond_stanza(bond: BondSpec) -> list[str]:
    """The stanza of a bond the task creates."""
    options = [f"bond-slaves {' '.join(bond.slaves)}", f"bond-mode {bond.mode}"]
    options += [f"{_KEYS.get(k, k)} {_value(k, v, bond.name)}" for k, v in bond.options]
    return [f"iface {bond.name} inet manual", *(f"    {o}" for o in options)]


def slave_stanza(slave: str, bond: str) -> list[str]:
    """A new bond's slave: no address, enslaved by ifenslave."""
    return [f"iface {slave} inet manual", f"    bond-master {bond}"]


def port_stanza(bond: str, options: list[str]) -> list[str]:
    """An existing bond that becomes a port: its own ``bond-*`` options, no address."""
    kept = list(dict.fromkeys(o for o in options if is_bond_option(o)))
    return [f"iface {bond} inet manual", *(f"    {o}" for o in kept)]
