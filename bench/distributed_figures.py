"""The pure parts of ``bench/distributed_bench.py``: a process tree's CPU from ``/proc/PID/stat``,
Redis command counts, and the side-by-side table with its ratios."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GOAL = 1.15  # the distributed side's wall time and CPU at most this times the local side's
LOCAL, DISTRIBUTED = "local", "distributed"


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` the bench needs; times in clock ticks."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int  # waited-for children (a postmaster's exited backends, a pool's old children)
    cstime: int

    @property
    def ticks(self) -> int:
        """The process's own CPU and that of its children it has reaped."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/PID/stat`` line (proc(5)); the command name in parentheses may hold spaces
    and parentheses, so the fields are counted from its last ``)``; ValueError if malformed."""
    head, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or "(" not in head or len(fields) < 15:
        raise ValueError(f"not a /proc/PID/stat line: {text[:80]!r}")
    pid = int(head.split("(", 1)[0])
    # fields[0] is proc(5)'s field 3 (state): field N is fields[N - 3]
    ppid, utime, stime, cutime, cstime = (int(fields[n - 3]) for n in (4, 14, 15, 16, 17))
    return ProcStat(pid, ppid, utime, stime, cutime, cstime)


def read_stats(proc: Path = Path("/proc")) -> list[ProcStat]:
    """Every process's stat now (processes that end while they are read are left out)."""
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                found.append(parse_stat((entry / "stat").read_text()))
            except (OSError, ValueError):
                continue
    return found


def tree_ticks(root: int, stats: Iterable[ProcStat]) -> int:
    """CPU ticks of ``root`` and every live descendant (each one's reaped children included:
    a child that ended moved its time into its parent's ``cutime``, so nothing counts twice)."""
    children: dict[int, list[ProcStat]] = {}
    by_pid: dict[int, ProcStat] = {}
    for stat in stats:
        by_pid[stat.pid] = stat
        children.setdefault(stat.ppid, []).append(stat)
    if root not in by_pid:
        return 0
    total, todo = 0, [by_pid[root]]
    while todo:
        stat = todo.pop()
        total += stat.ticks
        todo.extend(children.get(stat.pid, ()))
    return total


def trees_cpu(roots: Mapping[str, Sequence[int]], stats: Iterable[ProcStat]) -> dict[str, float]:
    """Seconds of CPU per named group of process trees."""
    listed = list(stats)
    tick = os.sysconf("SC_CLK_TCK")
    return {name: sum(tree_ticks(pid, listed) for pid in pids) / tick
            for name, pids in roots.items()}  # fmt: skip


def command_calls(commandstats: Mapping[str, object]) -> dict[str, int]:
    """``{command: calls}`` from redis-py's ``info("commandstats")`` (``cmdstat_NAME``:
    ``{"calls": N, ...}``)."""
    calls = {}
    for key, value in commandstats.items():
        if key.startswith("cmdstat_") and isinstance(value, Mapping):
            count = value.get("calls")
            if isinstance(count, int):
                calls[key.removeprefix("cmdstat_")] = count
    return calls


def calls_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Calls per command between two readings (only commands that were called)."""
    delta = {name: count - before.get(name, 0) for name, count in after.items()}
    return {name: count for name, count in delta.items() if count > 0}


def not_confirmed(document: object, hosts: int, shown: int = 3) -> list[str]:
    """What is wrong with an apply's ``--json`` document that should have ``hosts`` hosts, all
    ``confirmed``: the first ``shown`` other hosts (name, status, message), and a missing count."""
    if not isinstance(document, Mapping):
        return ["the output is not a JSON object of hosts"]
    wrong = []
    for name, result in document.items():
        found = result if isinstance(result, Mapping) else {"status": result}
        if found.get("status") != "confirmed":
            wrong.append(f"{name}: {found.get('status')}: {str(found.get('message', ''))[:120]}")
    shortened = wrong[:shown] + ([f"and {len(wrong) - shown} more"] if len(wrong) > shown else [])
    if len(document) != hosts:
        shortened.append(f"{len(document)} hosts in the output, {hosts} expected")
    return shortened


@dataclass(frozen=True)
class Sample:
    """One side's run: wall s; CPU s per process group (``fleetbr``: the controller, or the
    coordinator and the workers; ``services``: redis-server and PostgreSQL); broker commands;
    the history's row writes (inserts, updates, deletes), rows kept, their bytes, and the bytes
    the database grew by (whole pages, dead row versions included)."""

    wall: float
    cpu: Mapping[str, float]
    broker_calls: int
    row_writes: int
    rows: int
    row_bytes: int
    db_bytes: int
    calls: Mapping[str, int] = field(default_factory=dict)

    @property
    def fleetbr_cpu(self) -> float:
        """CPU of fleetbr's own processes (controller; or coordinator + workers)."""
        return sum(v for k, v in self.cpu.items() if k in ("controller", "coordinator", "workers"))


def _median(samples: Sequence[Sample], value: str) -> float:
    return float(statistics.median(float(getattr(s, value)) for s in samples))


COLUMNS = (
    ("wall s", "wall", 1.0, "{:.2f}"),
    ("CPU s", "fleetbr_cpu", 1.0, "{:.2f}"),
    ("CPU/host ms", "fleetbr_cpu", 1000.0, "{:.1f}"),
    ("broker cmds/host", "broker_calls", 1.0, "{:.2f}"),
    ("row writes/host", "row_writes", 1.0, "{:.2f}"),
    ("rows/host", "rows", 1.0, "{:.2f}"),
    ("row KB/host", "row_bytes", 1 / 1024, "{:.2f}"),
    ("DB KB/host", "db_bytes", 1 / 1024, "{:.1f}"),
)
PER_HOST = {title for title, *_ in COLUMNS if "/host" in title}


def table(hosts: int, sides: Mapping[str, Sequence[Sample]]) -> list[str]:
    """Markdown rows: medians per side, per host where the column says so."""
    lines = ["| side | runs | " + " | ".join(c[0] for c in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for name, samples in sides.items():
        if not samples:
            continue
        cells = []
        for title, value, scale, shape in COLUMNS:
            figure = _median(samples, value) * scale
            cells.append(shape.format(figure / hosts if title in PER_HOST else figure))
        lines.append(f"| {name} | {len(samples)} | " + " | ".join(cells) + " |")
    return lines


def ratios(sides: Mapping[str, Sequence[Sample]]) -> tuple[float, float] | None:
    """(wall, CPU) of the distributed side over the local side, medians; None without both."""
    local, distributed = sides.get(LOCAL), sides.get(DISTRIBUTED)
    if not local or not distributed:
        return None
    wall = _median(distributed, "wall") / _median(local, "wall")
    cpu = _median(distributed, "fleetbr_cpu") / _median(local, "fleetbr_cpu")
    return wall, cpu


def verdict(found: tuple[float, float] | None) -> str:
    """The ratio line with the goal."""
    if found is None:
        return "ratios: n/a (a side has no successful run)"
    wall, cpu = found
    met = "met" if max(wall, cpu) <= GOAL else "NOT met"
    return f"distributed/local: wall {wall:.3f}x, CPU {cpu:.3f}x (goal <= {GOAL}x: {met})"
