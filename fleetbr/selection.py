"""``-l`` selection, Ansible style, over host names and the groups each host belongs to.

``-l 'rack-a,kvm-b0[12]'``: the union of the plain terms (host names, group names, globs on
either, ``all``); ``&TERM`` keeps only the hosts that TERM also selects; ``!TERM`` drops the
hosts it selects. With no plain term the start is ``all`` (``-l '!rack-b'``), as in Ansible.

A term starting with ``@`` names a set of hosts resolved before the selection (``@failed:12``,
``@failed:last``: :mod:`fleetbr.failed` reads them from the run history); it combines like any
other term (``-l '@failed:last,&rack-a'``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Mapping, Sequence

from fleetbr.errors import InventoryError, UsageError
from fleetbr.validate import show

GLOB_CHARACTERS = "*?["
NAMED_MARK = "@"  # a term naming a host set resolved beforehand (@failed:RUN)


def select_names(
    groups: Mapping[str, Collection[str]],
    limit: str,
    *,
    unmatched: Callable[[str], None] | None = None,
    named: Mapping[str, Collection[str]] | None = None,
) -> list[str]:
    """The names of ``groups`` (host name -> its groups, in order) that ``limit`` selects.

    ``unmatched(term)`` is called for a term that matches nothing (the CLI raises there);
    ``named`` holds the hosts of each ``@`` term (UsageError for one it does not hold).
    """
    terms = [term.strip() for term in limit.split(",")]
    if not all(term.lstrip("!&").strip() for term in terms):
        raise UsageError(
            f"--limit: {show(limit)} is empty or has an empty term; name hosts, groups or globs "
            "(use -l all, or no -l, for every host)"
        )
    plain = [term for term in terms if term[0] not in "!&"]
    chosen: set[str] = set() if plain else set(groups)
    for term in plain:
        chosen |= _matched(groups, term, unmatched, named)
    for term in terms:
        if term[0] == "&":
            chosen &= _matched(groups, term[1:].strip(), unmatched, named, shown=term)
        elif term[0] == "!":
            chosen -= _matched(groups, term[1:].strip(), unmatched, named, shown=term)
    return [name for name in groups if name in chosen]


def _matched(
    groups: Mapping[str, Collection[str]],
    pattern: str,
    unmatched: Callable[[str], None] | None,
    named: Mapping[str, Collection[str]] | None,
    *,
    shown: str | None = None,
) -> set[str]:
    if pattern.startswith(NAMED_MARK):
        if named is None or pattern not in named:
            raise UsageError(
                f"--limit: {show(pattern)}: an @ term is only taken by -l of a command that "
                "runs on hosts, as @failed:RUN or @failed:last"
            )
        found = set(named[pattern]) & set(groups)
    else:
        found = match_pattern(groups, pattern)
    if not found and unmatched is not None:
        unmatched(shown or pattern)
    return found


def match_pattern(groups: Mapping[str, Collection[str]], pattern: str) -> set[str]:
    """Hosts one term selects: ``all``; a host name; else a group's hosts; a glob matches host
    names and group names (``rack-*``)."""
    if pattern == "all":
        return set(groups)
    if pattern in groups:
        return {pattern}
    members = {name for name, of in groups.items() if pattern in of}
    if members or not any(ch in pattern for ch in GLOB_CHARACTERS):
        return members
    return {
        name
        for name, of in groups.items()
        if fnmatch.fnmatchcase(name, pattern) or any(fnmatch.fnmatchcase(g, pattern) for g in of)
    }


def no_match(term: str) -> None:
    """``unmatched`` for the CLI: a term that matches nothing is an inventory error (exit 2)."""
    raise InventoryError(f"--limit: {show(term)} matches no host or group in the inventory")


def require_some(names: Sequence[str], limit: str) -> Sequence[str]:
    """An expression whose terms all matched but that leaves no host is an error too."""
    if not names:
        raise InventoryError(f"--limit: {show(limit)} leaves no host")
    return names
