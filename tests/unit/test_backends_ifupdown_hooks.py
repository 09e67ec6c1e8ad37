"""ifupdown: a NIC whose addresses come from hook commands (``up ip addr add ...``) is refused
before any change (issue 14, item 9). Before, the hooks moved to the bridge's stanza, ``ifup``
put the addresses back on the port, and the apply was rolled back after the fact."""

from __future__ import annotations

import pytest

from fleetbr.plan import plan_host
from tests.unit.test_backends_bytes import with_content
from tests.unit.test_backends_plan import facts, persist
from tests.unit.test_plan_support import task

PATH = "/etc/network/interfaces"
MANUAL = """\
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet manual
    up ip link set dev eth0 up
    {hook}
    up ip route add default via 198.51.100.1 dev eth0
"""


@pytest.mark.parametrize(
    "hook",
    [
        "up ip addr add 198.51.100.10/24 dev eth0",
        "post-up /sbin/ip -4 address add 198.51.100.10/24 dev eth0",
        "pre-up ip a replace 198.51.100.10/24 dev eth0",
    ],
)
def test_addresses_added_by_hooks_are_refused(hook: str) -> None:
    text = MANUAL.format(hook=hook)
    f = with_content(facts("ifupdown"), PATH, text.encode())
    p = plan_host(task(persist("auto")), f, min_timeout=10)
    assert p.refusal is not None and not p.steps
    assert "eth0 (inet) gets addresses from hook commands" in p.refusal
    assert repr(hook) in p.refusal and "\n" not in p.refusal


def test_other_hooks_are_carried() -> None:
    text = MANUAL.format(hook="up ip link set dev eth0 mtu 1500") + "    address 198.51.100.10/24\n"
    f = with_content(facts("ifupdown"), PATH, text.encode())
    p = plan_host(task(persist("auto")), f, min_timeout=10)
    assert p.refusal is None, p.refusal
