"""How ``fleetbr run`` shows its results: grouped like ``clush -b``, streamed, or as JSON data.

Everything here is pure (text in, text out) except :class:`StreamPrinter`, which writes through a
callable it is given. Every value from a host or the inventory goes through
:func:`~fleetbr.adhoc.text.escape`; nothing is ever read as rich markup (rich is not used).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fleetbr.adhoc.job import STREAMS, captured_bytes
from fleetbr.adhoc.text import LineSplitter, escape, fold_hosts, one_line
from fleetbr.report import AggregatedResult, HostResult, Status, hosts_text

Write = Callable[[str, str], None]  # (text, "stdout" | "stderr")

EMPTY_FIELDS: dict[str, Any] = {
    "exit_status": None, "signal": None,
    "stdout": "", "stdout_bytes": 0, "stdout_truncated": False,
    "stderr": "", "stderr_bytes": 0, "stderr_truncated": False,
}  # fmt: skip
KINDS = ("ok", "exited non-zero", "timed out", "unreachable", "failed to run")
# Every line of a host's output is indented by this: fleetbr's own lines (headers, "---- stderr",
# the summary) start at the margin, so no output can pass for them.
INDENT = "  "


def json_document(aggregated: AggregatedResult) -> dict[str, Any]:
    """One JSON document keyed by host; every host has every field (never ran: empty output)."""
    document = {}
    for name, result in aggregated.items():
        fields = result.to_dict()  # status, message, elapsed first
        for key, value in EMPTY_FIELDS.items():
            fields.setdefault(key, value)
        document[name] = fields
    return document


def kind(result: HostResult) -> str:
    """Which of :data:`KINDS` a host's outcome is (for the summary)."""
    if result.status is Status.OK:
        return "ok"
    if result.status is Status.TIMED_OUT:
        return "timed out"
    if result.status is Status.UNREACHABLE:
        return "unreachable"
    if result.data.get("exit_status") is not None:
        return "exited non-zero"
    return "failed to run"  # host key, authentication, a signal: the command's own end unknown


def summary(aggregated: AggregatedResult) -> str:
    """``6 hosts: 3 ok, 1 exited non-zero, 1 timed out, 1 unreachable``."""
    if not aggregated:
        return "no hosts"
    counts = dict.fromkeys(KINDS, 0)
    for result in aggregated.values():
        counts[kind(result)] += 1
    parts = [f"{n} {name}" for name, n in counts.items() if n or name == "ok"]
    hosts = hosts_text(len(aggregated))
    return f"{hosts}: {', '.join(parts)}"


@dataclass(frozen=True)
class Group:
    """Hosts whose outcome and output were identical."""

    hosts: tuple[str, ...]
    sample: HostResult

    def header(self, tag: str = "") -> str:
        """``==== hv[01-03] (3 hosts): exit 0`` (``==== TAG: hv...`` with a ``tag``)."""
        count = f" ({len(self.hosts)} hosts)" if len(self.hosts) > 1 else ""
        tagged = f"{tag}: " if tag else ""
        return one_line(f"==== {tagged}{fold_hosts(self.hosts)}{count}: {self.sample.message}")


def group(results: Iterable[HostResult], *, by_output: bool = True) -> list[Group]:
    """Hosts grouped by (status, message, stdout, stderr, sizes), in order of first appearance;
    by (status, message) alone when not ``by_output``."""
    members: dict[tuple[Any, ...], list[HostResult]] = {}
    for result in results:
        key = _key(result) if by_output else (result.status, result.message)
        members.setdefault(key, []).append(result)
    return [Group(tuple(r.host for r in same), same[0]) for same in members.values()]


def _key(result: HostResult) -> tuple[Any, ...]:
    data = result.data
    streams = tuple((captured_bytes(data, name), data.get(f"{name}_bytes", 0)) for name in STREAMS)
    return (result.status, result.message, *streams)


def render_grouped(aggregated: AggregatedResult, *, with_output: bool = True) -> str:
    """The human report: one block per group, then the summary line."""
    lines: list[str] = []
    for found in group(aggregated.values(), by_output=with_output):
        lines.append(found.header())
        if with_output:
            lines.extend(output_lines(found.sample.data, indent_line))
    lines.append(summary(aggregated))
    return "\n".join(lines) + "\n"


STDERR_MARK = "---- stderr"  # fleetbr's line between a host's stdout and its stderr


def output_lines(data: dict[str, Any], host_line: Callable[[str], str] = str) -> list[str]:
    """A result's output as escaped lines: its stdout, then (if any) :data:`STDERR_MARK` and its
    stderr, each stream followed by its truncation note if cut. ``host_line`` frames each line
    the host printed (:func:`indent_line` in the report); fleetbr's own lines stay as they are."""
    lines: list[str] = []
    for name in STREAMS:
        raw = captured_bytes(data, name)
        if name == "stderr" and raw:
            lines.append(STDERR_MARK)
        lines.extend(host_line(line) for line in stream_lines(raw))
        if data.get(f"{name}_truncated"):
            lines.append(truncation_note(data, name))
    return lines


def stream_lines(raw: bytes) -> list[str]:
    """The escaped lines of one stream's bytes (none for no bytes; a last line without a newline
    is a line)."""
    return escape(raw.removesuffix(b"\n")).split("\n") if raw else []


def truncation_note(data: dict[str, Any], name: str) -> str:
    """``[stdout truncated: 10 of 100 bytes kept (--max-output)]``."""
    kept = len(captured_bytes(data, name))
    return f"[{name} truncated: {kept} of {data[f'{name}_bytes']} bytes kept (--max-output)]"


def indent_line(line: str) -> str:
    """``line`` indented by :data:`INDENT`; an empty line stays empty."""
    return INDENT + line if line else ""


class StreamPrinter:
    """``--stream``: every line as it arrives, ``host: line``, on stdout or stderr like the host's.

    Lines longer than :data:`~fleetbr.adhoc.text.MAX_LINE` bytes are printed in pieces.
    """

    def __init__(self, write: Write) -> None:
        self._write = write
        self._splitters: dict[tuple[str, str], LineSplitter] = {}

    def sink(self, host: str) -> Callable[[str, bytes], None]:
        """The output callback for ``host``'s command."""

        def take(stream: str, chunk: bytes) -> None:
            splitter = self._splitters.setdefault((host, stream), LineSplitter())
            self._print(host, stream, splitter.feed(chunk))

        return take

    def finish(self, host: str) -> None:
        """Print what ``host`` left without a final newline."""
        for stream in STREAMS:
            splitter = self._splitters.pop((host, stream), None)
            if splitter is not None:
                self._print(host, stream, splitter.flush())

    def _print(self, host: str, stream: str, lines: list[bytes]) -> None:
        if lines:
            prefix = escape(host)
            self._write("".join(f"{prefix}: {escape(line)}\n" for line in lines), stream)
