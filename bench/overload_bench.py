"""Apply under overload (issue 6, item 0): every lab host's login shell burns ~150 ms of CPU per
command (as a root .bashrc running `pyenv init` does), every host at once (-f = host count), a
60 s dead-man timer, the bridge task (so every host should end confirmed).

Side by side in one run, alternating: clean shells, slow shells, and slow shells with the
rollout's pacing switched off (every host started at once, as fleetbr 0.1 did). Reports wall time
and spurious rollbacks (hosts not confirmed; target 0 with pacing).

Usage (repository root): ``scripts/in-netns .venv/bin/python -m bench.overload_bench
[--hosts 150] [--rounds 1] [--shell-ms 150]``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import PYTHON, lab_up, parser, task_copy, timed
from fleetbr import lab

DEADMAN = 60


def burn_loop(ms: int) -> int:
    """Loop iterations of a bash busy loop that take about ``ms`` ms of CPU here."""
    probe = 200_000
    script = f"i=0; while [ $i -lt {probe} ]; do i=$((i+1)); done"
    before = time.perf_counter()
    subprocess.run(["bash", "--norc", "-c", script], check=True)
    took = time.perf_counter() - before
    return max(1, int(probe * (ms / 1000) / took))


def set_shells(built: lab.Lab, rc: str) -> None:
    """Write (or, with "", remove) root's ~/.bashrc on every host."""
    for host in built.hosts:
        path = host.dir / "home" / ".bashrc"
        if rc:
            path.write_text(rc)
        else:
            path.unlink(missing_ok=True)


def reset_all(built: lab.Lab) -> None:
    """Every host back at its post-up state (not timed)."""
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda h: lab.reset_host(built, h), built.hosts))


def main() -> None:
    """Run the three sides and print the table."""
    args = parser("apply under overload: slow login shells, -f = hosts", rounds=1)
    args.add_argument("--shell-ms", type=int, default=150, help="CPU per login shell (150 ms)")
    opts = args.parse_args()
    loops = burn_loop(opts.shell_ms)
    slow_rc = f"i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done\n"
    sides = {"clean": ("", False), "slow": (slow_rc, False), "slow, no pacing": (slow_rc, True)}
    rows: dict[str, list[tuple[float, float, dict[str, object]]]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as tmp, lab_up(opts.hosts, opts.prefix) as built:
        task = task_copy(Path(tmp), DEADMAN)
        for index in range(opts.rounds):
            order = list(sides) if index % 2 == 0 else list(reversed(list(sides)))
            for name in order:
                rc, no_pacing = sides[name]
                set_shells(built, rc)
                argv = [PYTHON, "-m", "bench.paced_apply", str(built.inventory_dir), str(task),
                        str(opts.hosts)] + (["--no-pacing"] if no_pacing else [])  # fmt: skip
                run = timed(argv)
                rows[name].append((run.wall, run.cpu, json.loads(run.stdout)))
                set_shells(built, "")
                reset_all(built)
    print(f"\napply under overload: {opts.hosts} hosts, -f {opts.hosts}, {DEADMAN}s timer, "
          f"login shell ~{opts.shell_ms} ms CPU ({loops} loop iterations), "
          f"{opts.rounds} round(s)")  # fmt: skip
    print(f"  {'side':16} {'wall s':>8} {'ctl CPU s':>10} {'confirmed':>10} {'spurious':>9} "
          f"{'peak in flight':>15}")  # fmt: skip
    walls = {}
    for name, runs in rows.items():
        for wall, cpu, doc in runs:
            counts = doc["counts"]
            assert isinstance(counts, dict)
            confirmed = counts.get("confirmed", 0)
            print(f"  {name:16} {wall:8.1f} {cpu:10.2f} {confirmed:>10} "
                  f"{opts.hosts - confirmed:>9} {doc['peak']:>15}")  # fmt: skip
        walls[name] = min(w for w, _, _ in runs)
    print(f"  ratio slow/clean wall: {walls['slow'] / walls['clean']:.2f}")


if __name__ == "__main__":
    main()
