"""The chunk message: what the coordinator sends a site worker, as plain JSON.

Host names, the change (its kind, content and sha256), the run and batch it belongs to, a
deadline to start and, for ``--resume``, the transactions the resumed run left on some of the
hosts (:class:`Left`); never credentials, keys or the history's URL (the worker has its own). A
message is checked field by field before anything else happens (:func:`parse`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbr.errors import FleetbrError, UsageError, ValidationError
from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult, Status
from fleetbr.transaction.scripts import check_txid

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
class Left:
    """A transaction run ``run_id`` (the run being resumed) left on a host: the worker resolves
    it from the host's own state before it applies the change there (``--resume``)."""

    txid: str
    run_id: int


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
    resolve: dict[str, Left] = field(default_factory=dict)  # host -> what a resumed run left

    @property
    def resumed_run(self) -> int | None:
        """The run whose transactions ``resolve`` names (one run: :func:`parse` checks it)."""
        return next((left.run_id for left in self.resolve.values()), None)

    def to_json(self) -> dict[str, Any]:
        """The message body (JSON types only)."""
        return {
            "version": VERSION, "run_id": self.run_id, "command": self.command,
            "site": self.site, "hosts": list(self.hosts), "batch": self.batch,
            "start_by": self.start_by, "forks": self.forks,
            "change": {"kind": self.change.kind, "content": self.change.content,
                       "sha256": self.change.sha256, "label": self.change.label},
            "resolve": {host: {"txid": left.txid, "run_id": left.run_id}
                        for host, left in self.resolve.items()},
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
    run_id, hosts = _int(body, "run_id", low=1), _hosts(body.get("hosts"))
    return Chunk(
        run_id=run_id, command=str(command), site=site_name(body.get("site")),
        hosts=hosts, change=_change(body.get("change")),
        batch=None if body.get("batch") is None else _int(body, "batch", low=0),
        start_by=_number(body, "start_by"), forks=_int(body, "forks", low=1),
        resolve=_resolve(body.get("resolve"), hosts, run_id, str(command)),
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


def _resolve(value: object, hosts: Sequence[str], run_id: int, command: str) -> dict[str, Left]:
    """The ``resolve`` field: per host of the chunk, a well-formed txid of one earlier run."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or (value and command != "apply"):
        raise BadMessage("resolve: expected an object of hosts (apply chunks only)")
    left: dict[str, Left] = {}
    for host, entry in value.items():
        if host not in hosts:
            raise BadMessage(f"resolve: host {host!r:.80} is not one of the chunk's hosts")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("txid"), str):
            raise BadMessage(f"resolve: {host}: expected {{txid, run_id}}")
        try:
            txid = check_txid(entry["txid"])
        except ValidationError:
            raise BadMessage(
                f"resolve: {host}: not a transaction id: {entry['txid']!r:.40}"
            ) from None
        earlier = _int(entry, "run_id", low=1)
        if earlier >= run_id:
            raise BadMessage(f"resolve: {host}: run {earlier} is not an earlier run")
        left[host] = Left(txid, earlier)
    if len({entry.run_id for entry in left.values()}) > 1:
        raise BadMessage("resolve: the transactions of one resumed run only")
    return left


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
