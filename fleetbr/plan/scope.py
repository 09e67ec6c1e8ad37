"""What a transaction may change on a host: the objects of its plan.

A rollback is checked against the facts snapshot only within this scope; differences elsewhere (a
guest's tap device that came or went since the snapshot) are reported as unrelated, not as a
failed rollback. The scope is staged with the transaction as the ``touched`` section of its facts
snapshot (see :func:`touched_lines`), so ``fleetbr rollback`` knows it days later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fleetbr import validate
from fleetbr.errors import FactsError, ValidationError
from fleetbr.plan.model import Plan

NF_KEYS = ("call-iptables", "call-ip6tables", "call-arptables")
_SYSCTL_PREFIX = "net.bridge.bridge-nf-"
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Touched:
    """Devices, routes (family, table, destination), bridge-nf keys and files a plan changes.

    Everything about a touched device is in scope: the link, its addresses, every route through
    it, its bridge settings and membership.
    """

    devs: frozenset[str]
    routes: frozenset[tuple[int, str, str]] = frozenset()
    sysctls: frozenset[str] = frozenset()
    files: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()  # libvirt domains (UUIDs) whose interfaces move
    # interfaces a persisting backend's daemon must see after a rollback as it did before
    managed: frozenset[str] = frozenset()


def touched_by(plan: Plan) -> Touched:
    """The scope of ``plan``: its interfaces (a bridge's NIC and bridge) plus every object its
    steps name (a plan of ``run --deadman`` names none: what an arbitrary command touches is
    unknown)."""
    devs = {dev for dev in plan.interfaces if dev}
    routes: set[tuple[int, str, str]] = set()
    sysctls: set[str] = set()
    domains: set[str] = set()
    for step in plan.steps:
        args = step.args
        devs |= {str(args[k]) for k in ("dev", "name", "master") if args.get(k)}
        if step.kind == "guest_update":
            domains.add(str(args["domain"]))
            devs |= {str(args["tap"])} if args.get("tap") else set()
        elif step.kind in ("route_add", "route_del"):
            routes.add((int(args["family"]), str(args.get("table") or "main"), str(args["dst"])))
        elif step.kind == "sysctl_set":
            sysctls.add(str(args["key"]).removeprefix(_SYSCTL_PREFIX))
        elif step.kind in ("modprobe", "sysctl_load"):
            sysctls |= set(NF_KEYS)
    return Touched(
        frozenset(devs),
        frozenset(routes),
        frozenset(sysctls),
        frozenset(plan.files),
        frozenset(domains),
        frozenset(plan.managed),
    )


def touched_lines(touched: Touched) -> list[str]:
    """``touched`` as the lines of the snapshot's ``touched`` section (one word, then values)."""
    lines = [f"dev {dev}" for dev in sorted(touched.devs)]
    lines += [f"route {fam} {table} {dst}" for fam, table, dst in sorted(touched.routes)]
    lines += [f"sysctl {key}" for key in sorted(touched.sysctls)]
    lines += [f"file {path}" for path in sorted(touched.files)]
    lines += [f"domain {uuid}" for uuid in sorted(touched.domains)]
    lines += [f"manager {dev}" for dev in sorted(touched.managed)]
    return lines


def parse_touched(lines: Iterable[str]) -> Touched:
    """The inverse of :func:`touched_lines`; raises FactsError on a malformed line."""
    devs: set[str] = set()
    routes: set[tuple[int, str, str]] = set()
    sysctls: set[str] = set()
    files: set[str] = set()
    domains: set[str] = set()
    managed: set[str] = set()
    for line in lines:
        words = line.split()
        try:
            if len(words) == 2 and words[0] == "dev":
                devs.add(validate.interface_name(words[1]))
            elif len(words) == 4 and words[0] == "route" and words[1] in ("4", "6"):
                routes.add((int(words[1]), words[2], words[3]))
            elif len(words) == 2 and words[0] == "sysctl" and words[1] in NF_KEYS:
                sysctls.add(words[1])
            elif len(words) == 2 and words[0] == "file" and words[1].startswith("/"):
                files.add(words[1])
            elif len(words) == 2 and words[0] == "domain" and _UUID_RE.match(words[1]):
                domains.add(words[1])
            elif len(words) == 2 and words[0] == "manager":
                managed.add(validate.interface_name(words[1]))
            else:
                raise ValidationError(f"unexpected line {line!r}")
        except ValidationError as exc:
            raise FactsError(f"section touched: {exc}") from None
    return Touched(
        frozenset(devs),
        frozenset(routes),
        frozenset(sysctls),
        frozenset(files),
        frozenset(domains),
        frozenset(managed),
    )
