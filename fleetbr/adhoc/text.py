"""Pure text helpers of ``fleetbr run``: escaping host output, cutting lines, folding host names."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_LINE = 64 * 1024  # --stream prints a longer line in pieces of this many bytes


def _escape_table() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
    del table[ord("\n")], table[ord("\t")]
    table[ord("\r")] = "\\r"
    bidi = (0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
    table.update({code: f"\\u{code:04x}" for code in bidi})
    # bytes that are not UTF-8, as surrogateescape decoded them: shown as the byte they were
    table.update({0xDC00 + byte: f"\\x{byte:02x}" for byte in range(0x80, 0x100)})
    return table


_ESCAPES = _escape_table()


def escape(data: bytes | str) -> str:
    """``data`` made safe for a terminal: only newline and tab stay as they are.

    Other C0 controls, DEL and C1 controls (ESC, CR, BEL, CSI...) and Unicode bidi/line-separator
    controls become ``\\xNN`` / ``\\r`` / ``\\uNNNN``; bytes that are not UTF-8 become ``\\xNN``.
    Backslashes are left alone, so this is for people, not lossless (``--json`` is).
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    return text.translate(_ESCAPES)


def one_line(data: bytes | str) -> str:
    """``data`` escaped as :func:`escape` does, and on one line: a newline becomes ``\\n``."""
    return escape(data).replace("\n", "\\n")


class LineSplitter:
    """Cut a byte stream into lines (newline removed); a longer line than ``max_line`` bytes
    comes out in pieces, so nothing is held back without bound."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """The complete lines (or pieces) ``chunk`` finishes."""
        self._pending += chunk
        lines = []
        start = 0
        while (end := self._pending.find(b"\n", start)) >= 0:
            lines.extend(self._pieces(self._pending[start:end]) or [b""])
            start = end + 1
        rest = self._pending[start:]
        whole = len(rest) - len(rest) % self._max
        lines.extend(self._pieces(rest[:whole]))
        self._pending = bytearray(rest[whole:])
        return lines

    def flush(self) -> list[bytes]:
        """What is left after the stream ended (a last line without newline), if anything."""
        rest, self._pending = bytes(self._pending), bytearray()
        return [rest] if rest else []

    def _pieces(self, data: bytearray) -> list[bytes]:
        return [bytes(data[i : i + self._max]) for i in range(0, len(data), self._max)]


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def fold_hosts(names: Iterable[str]) -> str:
    """Host names folded like ClusterShell's ``clush -b``: ``hv01 hv02 hv03 hv05`` ->
    ``hv[01-03,05]``.

    Names are grouped by what surrounds their last number; zero-padded numbers join a range only
    with numbers of the same width. Groups appear in the order of their first name.
    """
    groups: dict[tuple[str, str], dict[str, None]] = {}
    plain: dict[str, None] = {}
    order: list[tuple[str, str] | str] = []
    for name in names:
        match = _NUMBERED.match(name)
        if match is None:
            if name not in plain:
                plain[name] = None
                order.append(name)
            continue
        key = (match.group(1), match.group(3))
        if key not in groups:
            groups[key] = {}
            order.append(key)
        groups[key][match.group(2)] = None
    return ",".join(
        item if isinstance(item, str) else _fold(*item, list(groups[item])) for item in order
    )


def _fold(prefix: str, suffix: str, numbers: list[str]) -> str:
    if len(numbers) == 1:
        return f"{prefix}{numbers[0]}{suffix}"
    runs: list[list[str]] = []
    for number in sorted(numbers, key=lambda n: (int(n), len(n))):
        if runs and _follows(runs[-1][-1], number):
            runs[-1].append(number)
        else:
            runs.append([number])
    ranges = ",".join(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
    return f"{prefix}[{ranges}]{suffix}"


def _follows(previous: str, number: str) -> bool:
    if int(number) != int(previous) + 1:
        return False
    unpadded = previous == str(int(previous)) and number == str(int(number))
    return unpadded or len(number) == len(previous)
