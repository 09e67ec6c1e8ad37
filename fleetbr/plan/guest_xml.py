"""The new ``<interface>`` XML of a guest moved onto a bridge, built from the one libvirt reported.

Everything libvirt uses to find the device and to keep the guest's view of it stays as it was
(MAC, model, PCI address, alias, target, ROM...); only the type and the source change, and for
a link flap the ``<link state>``. update-device then moves the tap without restarting the guest.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fleetbr.errors import ValidationError
from fleetbr.facts.parse_libvirt import interface_xml

XML_MAX = 64 * 1024  # one interface, as staged in a step


def _parse(xml: str) -> ET.Element:
    if len(xml) > XML_MAX or "<!" in xml:
        raise ValidationError("guest interface XML is too large or has a declaration")
    try:
        # the text is fleetbr's own serialisation of an element it parsed (no declarations)
        elem = ET.fromstring(xml)  # noqa: S314
    except ET.ParseError as exc:
        raise ValidationError(f"guest interface XML does not parse: {exc}") from None
    if elem.tag != "interface":
        raise ValidationError("guest interface XML is not an <interface>")
    return elem


def checked(xml: str) -> str:
    """``xml`` if it is one well-formed ``<interface>`` element of bounded size."""
    _parse(xml)
    if "\n" in xml or "\r" in xml:
        raise ValidationError("guest interface XML must be one line")
    return xml


def on_bridge(xml: str, bridge: str, link: str | None = None) -> str:
    """``xml`` (an interface) moved to ``<interface type='bridge'><source bridge=BRIDGE/>``;
    ``link`` ("down"/"up") sets ``<link state>``, None keeps what it had."""
    elem = _parse(xml)
    elem.set("type", "bridge")
    old = elem.find("source")
    at = list(elem).index(old) if old is not None else min(1, len(elem))
    for source in elem.findall("source"):
        elem.remove(source)
    elem.insert(at, ET.Element("source", {"bridge": bridge}))
    if link is not None:
        for state in elem.findall("link"):
            elem.remove(state)
        elem.append(ET.Element("link", {"state": link}))
    return interface_xml(elem)


def with_link(xml: str, link: str) -> str:
    """``xml`` with ``<link state=LINK/>``."""
    elem = _parse(xml)
    for state in elem.findall("link"):
        elem.remove(state)
    elem.append(ET.Element("link", {"state": link}))
    return interface_xml(elem)


def strip_port(xml: str) -> str:
    """``xml`` without ``<source portid>``: a live network port that no longer exists once the
    interface moved (libvirt allocates a new one when it goes back)."""
    elem = _parse(xml)
    for source in elem.findall("source"):
        source.attrib.pop("portid", None)
    return interface_xml(elem)
