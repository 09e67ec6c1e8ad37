"""The chunk message: what the coordinator sends a site worker, as plain JSON.

Host names, the change (its kind, content and sha256), the run and batch it belongs to, and a
deadline to start; never credentials, keys or the history's URL (the worker has its own). A
message is checked field by field before anything else happens (:func:`parse`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbr.errors import FleetbrError, UsageError
from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult, Status

VERSION = 1
MAX_CONTENT = 1024 * 1024  # bytes of change content a chunk may carry
COMMANDS = frozenset({"apply", "check"})
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_HOST = re.compile(r"^[^\s\x00-\x1f]{1,253}$")


class BadMessage(FleetbrError):
    """A chunk message that is not one fleetbr sends (refused, nothing contacted)."""


@dataclass(frozen=True)
class ChangeSpec:
    """The change as it travels: a kind's name, the source's text and its sha256."""

    kind: str
    content: str
    sha256: str
    label: str

    @classmethod
    def of(cls, kind: str, content: str, label: str) -> ChangeSpec:
        """The spec of ``content``, its sha256 computed."""
        return cls(kind, content, sha256_of(content), label)


@dataclass(frozen=True)
class Chunk:
    """One site's part of one batch of a run."""

    run_id: int
    command: str
    site: str
    hosts: tuple[str, ...]
    change: ChangeSpec
    batch: int | None
    start_by: float  # epoch seconds: a chunk not started by then is not started at all
    forks: int

    def to_json(self) -> dict[str, Any]:
        """The message body (JSON types only)."""
        return {
            "version": VERSION, "run_id": self.run_id, "command": self.command,
            "site": self.site, "hosts": list(self.hosts), "batch": self.batch,
            "start_by": self.start_by, "forks": self.forks,
            "change": {"kind": self.change.kind, "content": self.change.content,
                       "sha256": self.change.sha256, "label": self.change.label},
        }  # fmt: skip


def sha256_of(content: str) -> str:
    """The sha256 of ``content``'s UTF-8 bytes (as the history records a task file's)."""
    return hashlib.sha256(content.encode()).hexdigest()


def site_name(text: object) -> str:
    """``text`` as a site name (letters, digits, ``_.-``); BadMessage otherwise."""
    if not isinstance(text, str) or not _SITE.match(text):
        raise BadMessage(f"not a site name: {text!r:.80}")
    return text


def parse(body: object) -> Chunk:
    """The chunk in ``body``; BadMessage (one line) for anything fleetbr would not send."""
    if not isinstance(body, Mapping):
        raise BadMessage("a chunk message is a JSON object")
    if body.get("version") != VERSION:
        raise BadMessage(f"unknown chunk message version {body.get('version')!r:.20}")
    command = body.get("command")
    if command not in COMMANDS:
        raise BadMessage(f"command {command!r:.40} is not one a worker runs")
    return Chunk(
        run_id=_int(body, "run_id", low=1), command=str(command), site=site_name(body.get("site")),
        hosts=_hosts(body.get("hosts")), change=_change(body.get("change")),
        batch=None if body.get("batch") is None else _int(body, "batch", low=0),
        start_by=_number(body, "start_by"), forks=_int(body, "forks", low=1),
    )  # fmt: skip


def _int(body: Mapping[str, Any], key: str, *, low: int) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BadMessage(f"{key}: expected an integer >= {low}, got {value!r:.40}")
    return value


def _number(body: Mapping[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadMessage(f"{key}: expected a number, got {value!r:.40}")
    return float(value)


def _hosts(value: object) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise BadMessage("hosts: expected a non-empty list of host names")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not _HOST.match(name):
            raise BadMessage(f"hosts: not a host name: {name!r:.80}")
    if len(set(names)) != len(names):
        raise BadMessage("hosts: a host is named twice")
    return names


def _change(value: object) -> ChangeSpec:
    if not isinstance(value, Mapping):
        raise BadMessage("change: expected an object")
    fields = {key: value.get(key) for key in ("kind", "content", "sha256", "label")}
    if not all(isinstance(text, str) for text in fields.values()):
        raise BadMessage("change: kind, content, sha256 and label are strings")
    spec = ChangeSpec(*(str(fields[key]) for key in ("kind", "content", "sha256", "label")))
    if len(spec.content.encode()) > MAX_CONTENT:
        raise BadMessage(f"change: content larger than {MAX_CONTENT} bytes")
    if sha256_of(spec.content) != spec.sha256:
        raise BadMessage("change: the content does not match its sha256")
    return spec


def result_to_json(result: HostResult) -> dict[str, Any]:
    """A host's result as a worker returns it."""
    return {
        "host": result.host, "status": result.status.value, "message": result.message,
        "data": result.data, "elapsed": result.elapsed, "lines": list(result.lines),
    }  # fmt: skip


def result_from_json(item: object) -> HostResult:
    """A host's result as the coordinator reads it back; BadMessage for a malformed one."""
    if not isinstance(item, Mapping):
        raise BadMessage("a host result is a JSON object")
    host, status, message = item.get("host"), item.get("status"), item.get("message", "")
    data, elapsed, lines = item.get("data", {}), item.get("elapsed", 0.0), item.get("lines", [])
    if not isinstance(host, str) or status not in {s.value for s in Status}:
        raise BadMessage(f"a host result without a host or a known status: {item!r:.80}")
    if not isinstance(message, str) or not isinstance(data, dict) or not isinstance(lines, list):
        raise BadMessage(f"a malformed host result for {host}")
    seconds = float(elapsed) if isinstance(elapsed, int | float) else 0.0
    return HostResult(host, Status(status), message, dict(data), seconds,
                      tuple(str(line) for line in lines))  # fmt: skip


def sites_of(hosts: Sequence[HostSpec]) -> dict[str, list[HostSpec]]:
    """The hosts by site (``data.site``), sites in the order their first host comes;
    UsageError naming a host without a valid site."""
    split: dict[str, list[HostSpec]] = {}
    for spec in hosts:
        site = spec.data.get("site")
        try:
            name = site_name(site)
        except BadMessage:
            raise UsageError(
                f"host {spec.name}: no site for the celery executor (data.site: {site!r:.40}); "
                "give every host a site in the inventory (docs/scale.md)"
            ) from None
        split.setdefault(name, []).append(spec)
    return split
