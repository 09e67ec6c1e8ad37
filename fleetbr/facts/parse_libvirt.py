"""Parse the facts script's ``libvirt`` section into :class:`~fleetbr.facts.libvirt.Libvirt`.

Lines: ``status ok`` or ``status error BASE64``, ``version X.Y.Z``, and per domain ``domain UUID
live|config BASE64`` (its ``dumpxml`` / ``dumpxml --inactive``). The XML is parsed with
xml.etree after a size check; a document type declaration (entities) is refused, never expanded.
A domain whose definition cannot be read is kept with its ``error``, so a task can name it in a
refusal.
"""

from __future__ import annotations

import base64
import binascii
import copy as copy_module
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from fleetbr.errors import FactsError
from fleetbr.facts.libvirt import LIBVIRT_MAX_BYTES, Domain, GuestInterface, Libvirt

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z.+~-]{0,40}$")
# What update-device cannot change on a moved interface (qemuDomainChangeNet refuses, or the
# change would silently drop it): fleetbr refuses to move such an interface.
_UNMOVABLE = ("virtualport", "vlan")


class _BadXml(ValueError):
    pass


def _decode(data: str) -> str:
    if data == "-":
        raise _BadXml("virsh printed no definition")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise _BadXml("the definition is not valid base64") from None
    if len(raw) > LIBVIRT_MAX_BYTES:
        raise _BadXml(f"the definition is larger than {LIBVIRT_MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadXml("the definition is not UTF-8") from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise _BadXml("the definition has a document type declaration")
    return text


def _one_line(elem: ET.Element) -> ET.Element:
    """A copy of ``elem`` without the whitespace between elements."""
    copy = copy_module.deepcopy(elem)
    for node in copy.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        node.tail = None
    return copy


def interface_xml(elem: ET.Element) -> str:
    """``elem`` as one line of XML."""
    return ET.tostring(_one_line(elem), encoding="unicode")


def canonical(elem: ET.Element) -> str:
    """The form of an interface compared across a rollback: C14N, without the runtime port id."""
    copy = _one_line(elem)
    for source in copy.iter("source"):
        source.attrib.pop("portid", None)
    return ET.canonicalize(ET.tostring(copy, encoding="unicode"), strip_text=True)


def _attr(elem: ET.Element, path: str, name: str) -> str:
    found = elem.find(path)
    return "" if found is None else found.get(name, "")


def parse_interface(elem: ET.Element) -> GuestInterface:
    """One ``<interface>`` element."""
    kind = elem.get("type", "")
    source = _attr(elem, "source", "network" if kind == "network" else "bridge")
    bridge = _attr(elem, "source", "bridge")
    unmovable = next((tag for tag in _UNMOVABLE if elem.find(tag) is not None), "")
    return GuestInterface(
        mac=_attr(elem, "mac", "address").lower(),
        type=kind,
        source=source if kind in ("network", "bridge") else "",
        bridge=bridge if kind in ("network", "bridge") else "",
        model=_attr(elem, "model", "type"),
        tap=_attr(elem, "target", "dev"),
        xml=interface_xml(elem),
        canonical=canonical(elem),
        unmovable=unmovable,
    )


def _definition(text: str) -> tuple[ET.Element, tuple[GuestInterface, ...]]:
    try:
        # expat never fetches external entities; a DOCTYPE (internal entities) was refused above
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError as exc:
        raise _BadXml(f"the definition is not valid XML ({exc})") from None
    if root.tag != "domain":
        raise _BadXml(f"the definition is a <{root.tag}>, not a <domain>")
    return root, tuple(parse_interface(e) for e in root.findall("devices/interface"))


def _domain(uuid: str, scopes: dict[str, str]) -> Domain:
    name = ""
    try:
        root, live = _definition(_decode(scopes.get("live", "-")))
        name = root.findtext("name") or ""
        config = None
        if "config" in scopes:
            config = _definition(_decode(scopes["config"]))[1]
    except _BadXml as exc:
        return Domain(uuid, name, False, (), None, error=str(exc))
    active = root.get("id", "-1") not in ("", "-1")
    return Domain(uuid, name, active, live, config)


def _status(words: list[str]) -> str:
    if words[1:] == ["ok"]:
        return ""
    if len(words) == 3 and words[1] == "error":
        try:
            text = base64.b64decode(words[2], validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            text = "unreadable error"
        return " ".join(text.split()) or "virsh failed"
    if words[1:] == ["error"]:
        return "virsh failed"
    raise FactsError(f"section libvirt: unexpected status line {' '.join(words)!r}")


def parse_libvirt(lines: Sequence[str]) -> Libvirt | None:
    """The libvirt section; None when it is empty (no virsh on the host)."""
    if not lines:
        return None
    error, version = "", ""
    scopes: dict[str, dict[str, str]] = {}
    for line in lines:
        words = line.split(" ")
        if words[0] == "status" and len(words) >= 2:
            error = _status(words)
        elif words[0] == "version" and len(words) == 2 and _VERSION_RE.match(words[1]):
            version = words[1]
        elif (
            words[0] == "domain"
            and len(words) == 4
            and _UUID_RE.match(words[1])
            and words[2] in ("live", "config")
        ):
            scopes.setdefault(words[1], {})[words[2]] = words[3]
        else:
            raise FactsError(f"section libvirt: unexpected line {line[:100]!r}")
    domains = tuple(_domain(uuid, found) for uuid, found in scopes.items())
    return Libvirt(version=version, domains=domains, error=error)
