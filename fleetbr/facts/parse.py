"""Turn the output of the facts script (``facts.sh.j2``) into :class:`HostFacts`. Pure, no I/O.

The output is a sequence of ``@@fleetbr-section NAME`` blocks closed by ``@@fleetbr-end``; see
docs/facts.md for every section and field.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Any

from fleetbr.backends import registry
from fleetbr.errors import FactsError
from fleetbr.facts.filemeta import parse_file_meta, parse_kept
from fleetbr.facts.model import (
    MANAGED_MAX_BYTES,
    PIN_DIR,
    ArmedTransaction,
    Backend,
    Family,
    HostFacts,
)
from fleetbr.facts.parse_daemons import parse_daemons
from fleetbr.facts.parse_ip import load_json, parse_addresses, parse_bridges, parse_links
from fleetbr.facts.parse_libvirt import parse_libvirt
from fleetbr.facts.parse_routes import parse_routes, parse_rules
from fleetbr.facts.parse_topology import parse_topology
from fleetbr.validate import split_lines

SECTION_MARK = "@@fleetbr-section "
END_MARK = "@@fleetbr-end"
FAILED_MARK = "@@fleetbr-failed"
SECTIONS = (
    "meta",
    "links",
    "addr",
    "routes4",
    "routes6",
    "bridge_links",
    "bridges",
    "bridge_nf",
    "wireless",
    "docker",
    "backends",
    "managed_files",
    "probes",
    "armed",
    "daemons",
)
# Sections of older facts scripts: main-table routes only (instead of routes4/routes6 of every
# table), no rules4/rules6/modules/daemons. Their output (a staged snapshot) still parses.
LEGACY_SECTIONS = {"routes4": "route4", "routes6": "route6"}
OPTIONAL_SECTIONS = frozenset(
    {
        "rules4",
        "rules6",
        "modules",
        "daemons",
        "pins",
        "libvirt",
        "file_meta",
        "kept",
        "managed_contents",
        "bridge_vlans",
        "dhcp",
    }
)
# Sections whose command may legitimately fail (IPv6 disabled at boot, no bridge(8), a kernel
# without bridge VLAN support).
OPTIONAL_COMMANDS = frozenset(
    {"route6", "routes6", "bridge_links", "rules4", "rules6", "bridge_vlans"}
)
MODULE_STATES = ("loaded", "builtin", "absent")
BRIDGE_NF_KEYS = ("call-iptables", "call-ip6tables", "call-arptables")
# the tools every facts output reports (a backend registered later may be missing: not installed)
BACKENDS = (*(b.tool for b in registry.BUILTIN), "brctl")
META_KEYS = ("hostname", "kernel", "pid1_systemd", "has_modules", "has_sysctl", "has_virsh", "now")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_PIN_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\.json$")
_DOCKER_NET_RE = re.compile(r"^br-[0-9a-f]{12}$")
_YESNO = {"yes": True, "no": False}

Sections = dict[str, list[str]]


def split_sections(output: str) -> Sections:
    """Split the output into section name -> content lines; text before the first marker is ignored.

    Unknown sections are kept (a newer script may add some); a missing end marker means the output
    was cut short and is an error.
    """
    sections: Sections = {}
    current: list[str] | None = None
    for line in split_lines(output):
        if line.startswith(SECTION_MARK):
            name = line[len(SECTION_MARK) :].strip()
            if name in sections:
                raise FactsError(f"section {name}: appears twice")
            current = sections[name] = []
        elif line == END_MARK:
            break
        elif current is not None:
            current.append(line)
    else:
        raise FactsError("facts output is truncated: no end marker (@@fleetbr-end)")
    missing = [
        name
        for name in SECTIONS
        if name not in sections
        and LEGACY_SECTIONS.get(name) not in sections
        and name not in OPTIONAL_SECTIONS
    ]
    if missing:
        raise FactsError(f"section {missing[0]}: missing from the facts output")
    return sections


def _key_values(section: str, lines: Sequence[str]) -> dict[str, str]:
    values = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise FactsError(f"section {section}: expected key=value, got {line!r}")
        values[key] = value
    return values


def _yesno(section: str, value: str) -> bool:
    if value not in _YESNO:
        raise FactsError(f"section {section}: expected yes or no, got {value!r}")
    return _YESNO[value]


def _int(section: str, key: str, value: str) -> int:
    if not value.isdigit():
        raise FactsError(f"section {section}: {key} is not a number: {value!r}")
    return int(value)


def _words(section: str, lines: Sequence[str], first: str, count: int) -> list[list[str]]:
    """Lines of ``count`` words starting with ``first`` (the last word may contain spaces)."""
    rows = []
    for line in lines:
        words = line.split(" ", count - 1)
        if len(words) != count or words[0] != first or not all(words):
            raise FactsError(f"section {section}: unexpected line {line!r}")
        rows.append(words[1:])
    return rows


def _json_text(section: str, lines: Sequence[str], warnings: list[str]) -> str:
    failed = [line for line in lines if line.startswith(FAILED_MARK)]
    if not failed:
        return "\n".join(lines)
    message = f"section {section}: the command failed on the host ({failed[0]})"
    if section not in OPTIONAL_COMMANDS:
        raise FactsError(message)
    warnings.append(message)
    return ""


def parse_meta(lines: Sequence[str]) -> dict[str, str]:
    """The meta section as a dict, checked for every required key."""
    meta = _key_values("meta", lines)
    for key in META_KEYS:
        if not meta.get(key):
            raise FactsError(f"section meta: {key} is missing")
    _int("meta", "now", meta["now"])
    return meta


def parse_backends(lines: Sequence[str]) -> tuple[Backend, ...]:
    """``backend NAME PRESENT ACTIVE`` lines, one per backend's tool (each built-in's and
    brctl's must be there)."""
    found = {}
    for name, present, active in _words("backends", lines, "backend", 4):
        found[name] = Backend(name, _yesno("backends", present), _yesno("backends", active))
    missing = [name for name in BACKENDS if name not in found]
    if missing:
        raise FactsError(f"section backends: no line for {', '.join(missing)}")
    # a tool that an installed backend replaces is that one's (ifupdown2's ifup): absent
    gone = {b.tool for b in registry.backends() if b.name in registry.replaced(_present(found))}
    for tool in gone & found.keys():
        found[tool] = Backend(tool, False, False)
    return tuple(found.values())


def _present(found: dict[str, Backend]) -> list[str]:
    """The tools found installed."""
    return [name for name, b in found.items() if b.present]


def parse_bridge_nf(lines: Sequence[str]) -> dict[str, int | None]:
    """``call-iptables 1`` lines -> every key of BRIDGE_NF_KEYS, None when absent on the host."""
    values: dict[str, int | None] = dict.fromkeys(BRIDGE_NF_KEYS)
    for line in lines:
        key, _, value = line.partition(" ")
        if key not in values or not value.isdigit():
            raise FactsError(f"section bridge_nf: unexpected line {line!r}")
        values[key] = int(value)
    return values


def parse_managed_files(lines: Sequence[str]) -> dict[str, str | None]:
    """``file SHA256|absent|unreadable PATH`` lines -> path -> sha256 (None when absent)."""
    files: dict[str, str | None] = {}
    for digest, path in _words("managed_files", lines, "file", 3):
        if digest not in {"absent", "unreadable"} and not _SHA256_RE.match(digest):
            raise FactsError(f"section managed_files: bad checksum {digest!r} for {path}")
        files[path] = None if digest == "absent" else digest
    return files


def parse_managed_contents(lines: Sequence[str]) -> dict[str, str]:
    """``content BASE64|- PATH`` lines -> path -> text; a file cut at the size limit is left
    out (its text would be a lie), bytes that are not UTF-8 are kept as surrogates."""
    texts: dict[str, str] = {}
    for data, path in _words("managed_contents", lines, "content", 3):
        try:
            raw = b"" if data == "-" else base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FactsError(f"section managed_contents: bad base64 for {path}") from exc
        if len(raw) <= MANAGED_MAX_BYTES:
            texts[path] = raw.decode("utf-8", "surrogateescape")
    return texts


def parse_pins(lines: Sequence[str]) -> tuple[dict[str, str], dict[str, str | None]]:
    """``pin SHA256|unreadable NAME BASE64`` lines -> (path -> text, path -> sha256).

    A record whose content is not text (or was cut at the size limit) keeps its checksum, so it
    still differs from what fleetbr would write, but has no text: it is never used.
    """
    texts: dict[str, str] = {}
    hashes: dict[str, str | None] = {}
    for digest, name, data in _words("pins", lines, "pin", 4):
        if not _PIN_NAME_RE.match(name) or name.startswith("."):
            raise FactsError(f"section pins: unexpected name {name!r}")
        if digest != "unreadable" and not _SHA256_RE.match(digest):
            raise FactsError(f"section pins: bad checksum {digest!r} for {name}")
        path = f"{PIN_DIR}/{name}"
        hashes[path] = digest
        try:
            texts[path] = base64.b64decode(data.encode("ascii"), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeError, ValueError):
            continue
    return texts, hashes


def parse_probes(lines: Sequence[str]) -> tuple[dict[str, bool], list[str]]:
    """``probe ADDR ok|fail|noping`` lines -> (address -> answered, addresses not probed)."""
    results: dict[str, bool] = {}
    unprobed = []
    for addr, result in _words("probes", lines, "probe", 3):
        if result == "noping":
            unprobed.append(addr)
        elif result in ("ok", "fail"):
            results[addr] = result == "ok"
        else:
            raise FactsError(f"section probes: unexpected result {result!r} for {addr}")
    return results, unprobed


# What the facts script says is wrong with a damaged armed marker (fixed words, never its content).
_DAMAGED = {
    "empty": "it is empty",
    "bad-name": "it does not name a valid transaction id",
    "not-a-file": "it is neither a symlink nor a file",
    "no-transaction": "the transaction it names has no folder",
}
_UNREADABLE = "this login may not read it"
_TXID_CHARS_RE = re.compile(r"^[A-Za-z0-9._:-]+$")


def parse_armed(lines: Sequence[str], now: int, boot_id: str) -> ArmedTransaction | None:
    """The armed transaction, if any. Missing deadline/boot_id make it stale, never valid.

    A marker that names no usable transaction is reported ``damaged`` and a state directory this
    login cannot read ``unreadable`` (both stale): never a parse error, never "nothing armed".
    """
    state = _key_values("armed", lines)
    access = state.get("state", "readable")  # scripts without the line could read the state
    if access == "unreadable":
        return ArmedTransaction.untrusted("unreadable", _UNREADABLE, now)
    if access not in ("readable", "absent"):
        raise FactsError(f"section armed: unexpected state {access!r}")
    if "txid_valid" not in state:
        return None
    txid = state.get("txid", "")
    if state["txid_valid"] != "yes" or not _TXID_CHARS_RE.match(txid):
        detail = _DAMAGED.get(state.get("damaged", ""), _DAMAGED["bad-name"])
        named = txid if _TXID_CHARS_RE.match(txid) and txid not in (".", "..") else ""
        return ArmedTransaction.untrusted("damaged", detail, now, txid=named)
    deadline = state.get("deadline", "0")
    return ArmedTransaction(
        txid=txid,
        deadline=_int("armed", "deadline", deadline),
        timer_alive=_yesno("armed", state.get("timer_alive", "no")),
        same_boot=bool(boot_id) and state.get("boot_id") == boot_id,
        now=now,
        boot_guard_failed=_int("armed", "boot_guard_failed", state.get("boot_guard_failed", "0")),
    )


def docker_evidence(lines: Sequence[str], link_names: Sequence[str]) -> tuple[str, ...]:
    """``socket PATH`` / ``dockerd PATH`` lines plus Docker-named bridges, as ``kind:detail``."""
    evidence = [f"link:{name}" for name in link_names if name == "docker0"]
    evidence += [f"link:{name}" for name in link_names if _DOCKER_NET_RE.match(name)]
    for line in lines:
        kind, _, detail = line.partition(" ")
        if kind not in ("socket", "dockerd") or not detail:
            raise FactsError(f"section docker: unexpected line {line!r}")
        evidence.append(f"{kind}:{detail}")
    return tuple(evidence)


def parse_module(lines: Sequence[str], name: str) -> str | None:
    """``module NAME loaded|builtin|absent`` lines -> the state of ``name`` (None: no line)."""
    states = dict(_words("modules", lines, "module", 3))
    for module, state in states.items():
        if state not in MODULE_STATES:
            raise FactsError(f"section modules: unexpected state {state!r} for {module}")
    return states.get(name)


_BY_FAMILY: tuple[tuple[Family, str, str], ...] = (
    (4, "routes4", "rules4"),
    (6, "routes6", "rules6"),
)


def _routing(sections: Sections, warnings: list[str]) -> dict[str, Any]:
    """routes (every table, or main only from an older script), rules and br_netfilter."""
    out: dict[str, Any] = {"route_tables": "all", "routes": ()}
    for family, wanted, _ in _BY_FAMILY:
        name = wanted if wanted in sections else LEGACY_SECTIONS[wanted]
        if name != wanted:
            out["route_tables"] = "main"
        data = load_json(name, _json_text(name, sections[name], warnings))
        out["routes"] += parse_routes(name, data, family)
    if "rules4" in sections and "rules6" in sections:
        out["rules"] = tuple(
            rule
            for family, _, name in _BY_FAMILY
            for rule in parse_rules(
                name, load_json(name, _json_text(name, sections[name], warnings)), family
            )
        )
    if "modules" in sections:
        out["br_netfilter"] = parse_module(sections["modules"], "br_netfilter")
    return out


def parse_facts(output: str) -> HostFacts:
    """Parse the whole facts output; raises FactsError naming the section on malformed input."""
    sections = split_sections(output)
    warnings: list[str] = []
    meta = parse_meta(sections["meta"])
    now = int(meta["now"])
    wireless = frozenset(
        name for (name,) in _words("wireless", sections["wireless"], "wireless", 2)
    )
    json = {
        name: load_json(name, _json_text(name, sections[name], warnings))
        for name in ("links", "addr", "bridge_links")
    }
    links = parse_links(json["links"], wireless)
    routing = _routing(sections, warnings)
    probes, unprobed = parse_probes(sections["probes"])
    backends = parse_backends(sections["backends"])
    present = [b.name for b in backends if b.present]
    daemons = parse_daemons(sections.get("daemons", []), links, warnings, present)
    pins, pin_hashes = parse_pins(sections.get("pins", []))
    vlan_text = None
    if "bridge_vlans" in sections:
        failed = any(line.startswith(FAILED_MARK) for line in sections["bridge_vlans"])
        text = _json_text("bridge_vlans", sections["bridge_vlans"], warnings)
        vlan_text = None if failed else text
    extra: dict[str, object] = {"boot_id": meta.get("boot_id", ""), "now": now}
    if unprobed:
        extra["unprobed"] = unprobed
    if warnings:
        extra["warnings"] = warnings
    return HostFacts(
        hostname=meta["hostname"],
        kernel=meta["kernel"],
        pid1_systemd=_yesno("meta", meta["pid1_systemd"]),
        links=links,
        addresses=parse_addresses(json["addr"]),
        **routing,
        bridges=parse_bridges(json["links"], json["bridge_links"], sections["bridges"]),
        bridge_nf=parse_bridge_nf(sections["bridge_nf"]),
        docker=docker_evidence(sections["docker"], [link.name for link in links]),
        backends=backends,
        libvirt=_yesno("meta", meta["has_virsh"]),
        has_modules=_yesno("meta", meta["has_modules"]),
        has_sysctl=_yesno("meta", meta["has_sysctl"]),
        managed_files=parse_managed_files(sections["managed_files"]) | pin_hashes,
        managed_contents=parse_managed_contents(sections.get("managed_contents", [])),
        pins=pins,
        probes=probes,
        armed=parse_armed(sections["armed"], now, meta.get("boot_id", "")),
        daemons=daemons,
        guests=parse_libvirt(sections.get("libvirt", [])),
        file_meta=parse_file_meta(sections["file_meta"]) if "file_meta" in sections else None,
        kept=parse_kept(sections.get("kept", [])),
        topology=parse_topology(
            json["links"], json["addr"], vlan_text, sections.get("dhcp"), daemons
        ),
        extra=extra,
    )
