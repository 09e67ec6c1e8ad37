"""The backends read the daemons' files as the daemons do: a line ends at ``\\n`` only. A form
feed or U+2028 inside a comment is part of the comment (``str.splitlines`` would make what
follows it a line of its own: a key, a section, a stanza)."""

from __future__ import annotations

import pytest

from fleetbr.backends import ini
from fleetbr.backends.ifupdown import backend as ifupdown
from fleetbr.backends.model import BridgeConfig
from fleetbr.facts.model import Route

BREAKS = ("\f", "\u2028", "\x1c", "\u0085", "\v")
BRIDGE = BridgeConfig("br0", "eth0", None, False, 4, ("198.51.100.12/24",),
                      (Route(4, "default", "br0", "198.51.100.1"),))  # fmt: skip


@pytest.mark.parametrize("brk", BREAKS)
def test_a_break_inside_an_ini_comment_is_no_key(brk: str) -> None:
    text = f"[Match]\nName=eth0\n\n[Network]\n# was:{brk}DHCP=yes\nAddress=198.51.100.12/24\n"
    parts = ini.sections(text)
    assert [name for name, _ in parts] == ["", "Match", "Network"]
    assert ini.values(dict(parts)["Network"]) == [("Address", "198.51.100.12/24")]
    assert f"# was:{brk}DHCP=yes" in ini.render(parts)


@pytest.mark.parametrize("brk", BREAKS)
def test_a_break_inside_an_ini_comment_is_no_section(brk: str) -> None:
    parts = ini.sections(f"[Match]\nName=eth0\n# see{brk}[Bridge]\n")
    assert [name for name, _ in parts] == ["", "Match"]


@pytest.mark.parametrize("brk", BREAKS)
def test_a_break_inside_an_interfaces_comment_is_no_stanza(brk: str) -> None:
    text = (
        f"auto lo\niface lo inet loopback\n# old:{brk}iface eth0 inet dhcp\n\n"
        "auto eth0\niface eth0 inet static\n    address 198.51.100.12/24\n"
    )
    kept, options = ifupdown.split(text, "eth0")  # "inet dhcp" would be refused
    assert f"# old:{brk}iface eth0 inet dhcp" in kept
    assert options == {"inet": ["address 198.51.100.12/24"]}
    out = ifupdown.rewrite(text, BRIDGE)
    assert f"# old:{brk}iface eth0 inet dhcp\n" in out and "bridge_ports eth0" in out
