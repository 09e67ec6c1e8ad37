"""The HTML report's render time in Debian's headless chromium: a 1000-host page beside a
1-host and a 100-host page, alternated round by round in one run.

Usage (repository root): ``.venv/bin/python -m bench.report_bench [--rounds R] [--hosts N]``.
The figure is the page's own (``#rendered[data-ms]``: ``performance.now()`` once the page is
parsed, its filter applied and laid out), not chromium's start-up. Prints every round, the
medians, the best, the ratios to the small pages and the cost per host. A script, not a timed
test: the figures measure the machine's load as much as the page (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from fleetbr.htmlreport.model import build
from fleetbr.htmlreport.render import render_html, write_report
from tests.chromium import dump_dom
from tests.reportsample import synthetic

TARGET_S = 2.0  # issue 19: a 1000-host report renders in under 2 s
SMALL = (1, 100)


def write_page(directory: Path, hosts: int) -> Path:
    """The synthetic run's report for ``hosts`` hosts, written to ``directory``."""
    run, rows = synthetic(hosts)
    page = directory / f"report-{hosts}.html"
    write_report(page, render_html(build(run, rows)))
    return page


def render_seconds(page: Path) -> float:
    """The page's own render figure for one load in a fresh chromium."""
    found = re.search(r'data-ms="([0-9.]+)"', dump_dom(page.as_uri()))
    if found is None:
        raise RuntimeError(f"{page.name} did not record its render time")
    return float(found[1]) / 1000


def measure(pages: dict[int, Path], rounds: int) -> dict[int, list[float]]:
    """Each page loaded once per round, the order rotated round by round."""
    times: dict[int, list[float]] = {hosts: [] for hosts in pages}
    order = list(pages)
    for turn in range(rounds):
        for hosts in order[turn % len(order) :] + order[: turn % len(order)]:
            times[hosts].append(render_seconds(pages[hosts]))
    return times


def print_report(pages: dict[int, Path], times: dict[int, list[float]], big: int) -> None:
    """Every round, the medians, the ratios and the verdict against the target."""
    print(f"{'hosts':>6} {'bytes':>10} {'median':>8} {'best':>8}  rounds (s)")
    for hosts, runs in times.items():
        rounds = " ".join(f"{value:.3f}" for value in runs)
        print(f"{hosts:>6} {pages[hosts].stat().st_size:>10} {statistics.median(runs):>8.3f} "
              f"{min(runs):>8.3f}  {rounds}")  # fmt: skip
    median_big = statistics.median(times[big])
    for hosts in SMALL:
        if hosts != big:
            ratio = median_big / statistics.median(times[hosts])
            print(f"ratio {big}/{hosts} hosts (medians): {ratio:.2f}")
    per_host = (median_big - statistics.median(times[1])) / (big - 1) * 1000
    verdict = "met" if median_big < TARGET_S else "NOT met"
    print(f"cost per host: {per_host:.3f} ms; target for {big} hosts < {TARGET_S} s: "
          f"{verdict} (median {median_big:.3f} s)")  # fmt: skip


def main() -> int:
    """Write the pages, alternate their loads, print the figures."""
    args = argparse.ArgumentParser(description="the HTML report's render time in chromium")
    args.add_argument("--rounds", type=int, default=5)
    args.add_argument("--hosts", type=int, default=1000)
    opts = args.parse_args()
    if opts.rounds < 1 or opts.hosts <= max(SMALL):
        args.error(f"--rounds must be >= 1 and --hosts > {max(SMALL)}")
    if shutil.which("chromium") is None:
        print("report_bench: needs Debian's chromium (scripts/setup installs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fleetbr-report-bench-") as tmp:
        pages = {hosts: write_page(Path(tmp), hosts) for hosts in (*SMALL, opts.hosts)}
        print_report(pages, measure(pages, opts.rounds), opts.hosts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
