"""``fleetbr facts --show SECTIONS``: chosen sections of the facts as plain tables per host.

Works on the facts as JSON data (``HostFacts.to_dict()``, secrets already redacted), the same data
``--json`` prints, so a saved document renders the same way. Tables are plain text: columns padded
to their longest value, never wrapped or cut, no colour, every value escaped
(:func:`fleetbr.adhoc.text.escape`): whatever a host reports cannot draw on the terminal or look
like another host's header. Light on imports: the CLI parser checks section names with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetbr.report import AggregatedResult

Row = tuple[str, ...]
Table = tuple[Row, Sequence[Row]]  # (column names, rows)
Facts = Mapping[str, Any]


def _yes(value: object) -> str:
    return "yes" if value else "no"


def _text(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _links(facts: Facts) -> Table:
    rows = [(link["name"], link["kind"], link["state"], _yes(link["admin_up"]), str(link["mtu"]),
             _text(link["mac"]), _text(link["master"])) for link in facts["links"]]  # fmt: skip
    return ("name", "kind", "state", "up", "mtu", "mac", "master"), rows


def _bridges(facts: Facts) -> Table:
    rows = [(b["name"], _yes(b["stp"]), str(b["forward_delay"]), " ".join(b["ports"]) or "-")
            for b in facts["bridges"]]  # fmt: skip
    return ("name", "stp", "forward_delay", "ports"), rows


_ADDRESS_FLAGS = ("dynamic", "secondary", "nodad", "noprefixroute")


def _addresses(facts: Facts) -> Table:
    def flags(a: Mapping[str, Any]) -> str:
        return ",".join(f for f in _ADDRESS_FLAGS if a.get(f)) or "-"

    rows = [(a["dev"], f"v{a['family']}", a["cidr"], a["scope"], flags(a))
            for a in facts["addresses"]]  # fmt: skip
    return ("dev", "family", "address", "scope", "flags"), rows


def _routes(facts: Facts) -> Table:
    rows = [(r["table"], f"v{r['family']}", r["dst"], _text(r["gateway"]), _text(r["dev"]),
             _text(r["metric"]), r["protocol"], r["type"], _text(r["src"]))
            for r in facts["routes"]]  # fmt: skip
    return ("table", "family", "dst", "gateway", "dev", "metric", "proto", "type", "src"), rows


def _rules(facts: Facts) -> Table:
    rows = [(str(r["priority"]), f"v{r['family']}", r["text"]) for r in facts["rules"] or ()]
    return ("priority", "family", "rule"), rows


def _daemons(facts: Facts) -> Table:
    daemons = facts["daemons"]
    running = ", ".join(daemons["running"]) or "none"
    rows = [(name, _text(m["manager"]), m["state"], " ".join(f["path"] for f in m["files"]) or "-")
            for name, m in daemons["interfaces"].items()]  # fmt: skip
    rows.append(("(running daemons)", running, "", ""))
    return ("interface", "manager", "state", "files"), rows


def _backends(facts: Facts) -> Table:
    rows = [(b["name"], _yes(b["present"]), _yes(b["active"])) for b in facts["backends"]]
    return ("backend", "present", "active"), rows


def _guests(facts: Facts) -> Table:
    libvirt = facts["guests"] or {"domains": [], "error": "no virsh on the host"}
    rows = [(d["name"], "running" if d["active"] else "shut off", i["mac"], i["type"],
             _text(i["source"]), _text(i["bridge"]), _text(i["tap"]))
            for d in libvirt["domains"] for i in d["live"]]  # fmt: skip
    if libvirt["error"]:
        rows.append(("(error)", libvirt["error"], "", "", "", "", ""))
    return ("guest", "state", "mac", "type", "source", "bridge", "tap"), rows


def _sysctls(facts: Facts) -> Table:
    rows = [(f"net.bridge.bridge-nf-{key}", _text(value))
            for key, value in facts["bridge_nf"].items()]  # fmt: skip
    rows.append(("br_netfilter module", _text(facts["br_netfilter"])))
    return ("setting", "value"), rows


def _files(facts: Facts) -> Table:
    meta = facts["file_meta"] or {}

    def row(path: str, kind: str, sha: str | None) -> Row:
        m = meta.get(path) or {}
        owner = f"{m['owner']}:{m['group']} {m['mode']}" if m.get("owner") else "-"
        return path, kind, sha[:12] if sha else "missing", owner

    rows = [row(p, "managed", s) for p, s in facts["managed_files"].items()]
    rows += [row(p, "config", s) for p, s in facts["daemons"]["files"].items()]
    return ("path", "kind", "sha256", "owner mode"), rows


# name -> (table builder, the keys of the facts document the section is made of)
SECTIONS: dict[str, tuple[Callable[[Facts], Table], tuple[str, ...]]] = {
    "links": (_links, ("links",)),
    "bridges": (_bridges, ("bridges",)),
    "addresses": (_addresses, ("addresses",)),
    "routes": (_routes, ("routes", "route_tables")),
    "rules": (_rules, ("rules",)),
    "daemons": (_daemons, ("daemons",)),
    "backends": (_backends, ("backends",)),
    "guests": (_guests, ("guests",)),
    "sysctls": (_sysctls, ("bridge_nf", "br_netfilter")),
    "files": (_files, ("managed_files", "file_meta")),
}
ALIASES = {name[:-1]: name for name in SECTIONS} | {"address": "addresses"}


def parse_sections(text: str) -> tuple[str, ...]:
    """``--show`` as section names (singulars accepted, ``all`` for every one), in the order
    given, once each; an unknown or empty name raises ValueError listing the valid ones."""
    names: list[str] = []
    for given in text.split(","):
        word = given.strip().lower()
        found = list(SECTIONS) if word == "all" else [ALIASES.get(word, word)]
        if not word or found[0] not in SECTIONS:
            raise ValueError(
                f"unknown facts section {word!r} (valid: {', '.join(SECTIONS)}, or all)"
            )
        names += [name for name in found if name not in names]
    return tuple(names)


def only_sections(facts: Facts, sections: Sequence[str]) -> dict[str, Any]:
    """The facts document cut to the keys of ``sections`` (for ``--json``)."""
    keys = [key for name in sections for key in SECTIONS[name][1]]
    return {key: facts[key] for key in keys if key in facts}


def table_lines(table: Table, indent: str = "") -> list[str]:
    """``table`` as padded plain lines (every value escaped); ``(none)`` for no row."""
    from fleetbr.adhoc.text import escape  # noqa: PLC0415

    columns, rows = table
    cells = [tuple(escape(str(v)).replace("\n", "\\n").replace("\t", "\\t") for v in row)
             for row in (columns, *rows)]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]  # fmt: skip
    return lines if rows else [*lines, indent + "(none)"]


def host_lines(facts: Facts, sections: Iterable[str]) -> list[str]:
    """The chosen sections of one host's facts, each a titled table, indented under the host."""
    lines: list[str] = []
    for name in sections:
        lines.append(f"  {name}")
        lines += table_lines(SECTIONS[name][0](facts), indent="    ")
    return lines


def render(aggregated: AggregatedResult, sections: Sequence[str], *, as_json: bool) -> None:
    """Print ``fleetbr facts --show``: the sections per host (plain tables, then the summary
    line), or with ``as_json`` the usual document with each host's facts cut to the sections."""
    import sys  # noqa: PLC0415

    from fleetbr.output import print_json, summary_line  # noqa: PLC0415

    if as_json:
        document = aggregated.to_dict()
        for entry in document.values():
            if isinstance(entry.get("facts"), Mapping):
                entry["facts"] = only_sections(entry["facts"], sections)
        print_json(document)
        return
    for line in report_lines(aggregated, sections):
        sys.stdout.write(line + "\n")
    sys.stdout.write(summary_line(aggregated) + "\n")
    sys.stdout.flush()


def report_lines(aggregated: AggregatedResult, sections: Sequence[str]) -> list[str]:
    """Every host: a ``==== host status`` line, then its tables (or the reason it has none)."""
    from fleetbr.adhoc.text import escape  # noqa: PLC0415

    lines: list[str] = []
    for name, result in aggregated.items():
        head = f"==== {escape(name)} {result.status.value}"
        facts = result.data.get("facts")
        if not isinstance(facts, Mapping):
            message = escape(result.message).replace("\n", "\\n")
            lines.append(f"{head}: {message}" if message else head)
            continue
        lines += [head, *host_lines(facts, sections)]
    return lines
