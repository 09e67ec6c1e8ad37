"""The pure parts of bench/distributed_bench.py: /proc/PID/stat, process trees' CPU, Redis
command counts, the table and the ratios (so the bench cannot rot between its runs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.distributed_figures import (
    DISTRIBUTED,
    LOCAL,
    ProcStat,
    Sample,
    calls_delta,
    command_calls,
    not_confirmed,
    parse_stat,
    ratios,
    read_stats,
    table,
    tree_ticks,
    trees_cpu,
    verdict,
)


def stat_line(pid: int, comm: str, ppid: int, times: tuple[int, int, int, int]) -> str:
    """A /proc/PID/stat line as proc(5) shapes it (fields 3..22 and a few more)."""
    utime, stime, cutime, cstime = times
    head = ["S", str(ppid), "1", "1", "0", "-1", "4194560", "100", "0", "0", "0"]
    rest = [*head, str(utime), str(stime), str(cutime), str(cstime), "20", "0", "1", "0", "9"]
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


def test_parse_stat_reads_the_pid_parent_and_times() -> None:
    assert parse_stat(stat_line(42, "python3", 7, (11, 22, 33, 44))) == ProcStat(
        42, 7, 11, 22, 33, 44
    )


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    parsed = parse_stat(stat_line(9, "celery: (pool) 1", 3, (5, 6, 0, 0)))
    assert (parsed.pid, parsed.ppid, parsed.ticks) == (9, 3, 11)


@pytest.mark.parametrize("bad", ["", "42 python3 S 1", "42 (x) S 1 2 3"])
def test_parse_stat_refuses_a_malformed_line(bad: str) -> None:
    with pytest.raises(ValueError, match="not a /proc/PID/stat line"):
        parse_stat(bad)


def test_the_real_proc_has_this_process_with_its_parent() -> None:
    mine = {s.pid: s for s in read_stats()}[os.getpid()]
    assert mine.ppid == os.getppid()
    assert parse_stat(Path(f"/proc/{os.getpid()}/stat").read_text()).pid == os.getpid()


def test_a_tree_sums_its_live_descendants_and_nothing_else() -> None:
    stats = [
        ProcStat(1, 0, 100, 100, 0, 0),  # not in the tree
        ProcStat(10, 1, 5, 1, 20, 4),  # root: its reaped children in cutime/cstime
        ProcStat(11, 10, 7, 3, 0, 0),  # live child
        ProcStat(12, 11, 2, 0, 0, 0),  # live grandchild
        ProcStat(13, 1, 50, 0, 0, 0),  # a sibling of the root
    ]
    assert tree_ticks(10, stats) == 5 + 1 + 20 + 4 + 7 + 3 + 2
    assert tree_ticks(99, stats) == 0, "a process that is gone has no CPU to count"
    tick = os.sysconf("SC_CLK_TCK")
    assert trees_cpu({"a": [11, 13], "b": []}, stats) == {"a": (10 + 2 + 50) / tick, "b": 0.0}


def test_command_calls_and_their_delta() -> None:
    info = {"cmdstat_get": {"calls": 5, "usec": 10}, "cmdstat_brpop": {"calls": 2},
            "errorstat_ERR": {"count": 1}, "cmdstat_odd": "x"}  # fmt: skip
    before = command_calls(info)
    assert before == {"get": 5, "brpop": 2}
    assert calls_delta(before, {"get": 9, "brpop": 2, "set": 1}) == {"get": 4, "set": 1}


def sample(wall: float, controller: float, workers: float = 0.0, **counts: int) -> Sample:
    cpu = {"controller": controller, "services": 9.0}
    if workers:
        cpu = {"coordinator": controller, "workers": workers, "services": 9.0}
    return Sample(wall, cpu, counts.get("calls", 0), counts.get("writes", 0),
                  counts.get("rows", 0), counts.get("kept", 0), counts.get("size", 0))  # fmt: skip


def test_fleetbr_cpu_is_the_controller_or_coordinator_plus_workers_never_the_services() -> None:
    assert sample(1.0, 2.0).fleetbr_cpu == 2.0
    assert sample(1.0, 0.5, 1.5).fleetbr_cpu == 2.0


def test_the_table_gives_medians_per_host_and_the_ratios() -> None:
    sides = {
        LOCAL: [sample(10.0, 4.0, rows=10, writes=30), sample(12.0, 6.0, rows=10, writes=30),
                sample(30.0, 5.0, rows=10, writes=30)],
        DISTRIBUTED: [sample(11.0, 1.0, 4.5, calls=20, rows=10, writes=50, kept=5120, size=10240)],
    }  # fmt: skip
    lines = table(10, sides)
    assert lines[0].startswith("| side | runs | wall s | CPU s | CPU/host ms |")
    assert lines[2] == "| local | 3 | 12.00 | 5.00 | 500.0 | 0.00 | 3.00 | 1.00 | 0.00 | 0.0 |"
    distributed = "| distributed | 1 | 11.00 | 5.50 | 550.0 | 2.00 | 5.00 | 1.00 | 0.50 | 1.0 |"
    assert lines[3] == distributed
    found = ratios(sides)
    assert found == pytest.approx((11.0 / 12.0, 5.5 / 5.0))
    assert verdict(found) == "distributed/local: wall 0.917x, CPU 1.100x (goal <= 1.15x: met)"
    assert verdict((1.0, 1.152)).endswith("CPU 1.152x (goal <= 1.15x: NOT met)")


def test_without_both_sides_there_is_no_ratio() -> None:
    assert ratios({LOCAL: [sample(1.0, 1.0)], DISTRIBUTED: []}) is None
    assert verdict(None).startswith("ratios: n/a")
    assert len(table(1, {LOCAL: [], DISTRIBUTED: []})) == 2


def test_not_confirmed_names_the_first_hosts_that_were_not() -> None:
    ok = {"status": "confirmed", "message": "confirmed tx"}
    document = {"hv1": ok, "hv2": {"status": "rolled_back", "message": "cut off"},
                "hv3": {"status": "failed", "message": "x" * 500}, "hv4": "odd",
                "hv5": {"status": "skipped"}}  # fmt: skip
    found = not_confirmed(document, 5)
    assert found[:2] == ["hv2: rolled_back: cut off", f"hv3: failed: {'x' * 120}"]
    assert found[2].startswith("hv4: ") and found[3] == "and 1 more"
    assert not_confirmed({"hv1": ok}, 1) == []
    assert not_confirmed({"hv1": ok}, 2) == ["1 hosts in the output, 2 expected"]
    assert not_confirmed([], 1) == ["the output is not a JSON object of hosts"]
