"""Inventory loading: fleetbr's ``load_inventory`` with ruamel.yaml's libyaml parser (the lock's
``ruamel.yaml.clib``) against the same call with its pure-Python parser, side by side in one run.

Usage (repository root): ``.venv/bin/python -m bench.inventory_bench [--sizes 10,200,1000]
[--rounds 5]``. Per size one synthetic inventory (hosts.yaml with a lab-like host per entry, a
group, defaults) in a temp dir; per round both parsers load it, the order alternating. Prints
the CPU (``time.process_time``) medians, CPU per host and the ratio pure/libyaml. ruamel.yaml 0.19
no longer installs its C extension; every fleetbr command (and a distributed coordinator) loads
the inventory once, so this is start-up cost that grows with the fleet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import ruamel.yaml

from fleetbr.inventory import load_inventory

GROUPS = "lab:\n  data:\n    nic: eth0\n    site: east\n"
DEFAULTS = "username: root\nport: 22\nconnection_options: {}\n"


def write_inventory(directory: Path, hosts: int) -> Path:
    """An inventory of ``hosts`` hosts like the lab's (address, IPv6, MAC, group, data)."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = [
        f"hv{i:05d}:\n  hostname: 198.18.{i // 250}.{i % 250 + 1}\n  groups: [lab]\n"
        f"  data:\n    addr6: 2001:db8:1000::{i + 1:x}/64\n"
        f"    mac: 02:fb:00:00:{i // 256:02x}:{i % 256:02x}\n    rack: r{i % 40}\n"
        for i in range(hosts)
    ]
    (directory / "hosts.yaml").write_text("".join(entries), encoding="utf-8")
    (directory / "groups.yaml").write_text(GROUPS, encoding="utf-8")
    (directory / "defaults.yaml").write_text(DEFAULTS, encoding="utf-8")
    return directory


@contextmanager
def pure_parser() -> Iterator[None]:
    """Every ``ruamel.yaml.YAML(...)`` made inside uses the pure-Python parser."""
    original = ruamel.yaml.YAML.__init__

    def pure_init(self: ruamel.yaml.YAML, *args: object, **kwargs: object) -> None:
        kwargs["pure"] = True
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    ruamel.yaml.YAML.__init__ = pure_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        ruamel.yaml.YAML.__init__ = original  # type: ignore[method-assign]


def cpu_of(load: Callable[[], object]) -> float:
    """CPU seconds of one call."""
    start = time.process_time()
    load()
    return time.process_time() - start


def measure(directory: Path, rounds: int) -> dict[str, list[float]]:
    """Both parsers once per round, the order alternating; equal results checked once."""
    with pure_parser():
        expected = load_inventory(directory)
    if load_inventory(directory) != expected:
        raise RuntimeError("the two parsers loaded different inventories")
    times: dict[str, list[float]] = {"libyaml": [], "pure": []}
    for turn in range(rounds):
        for side in ("libyaml", "pure") if turn % 2 == 0 else ("pure", "libyaml"):
            with pure_parser() if side == "pure" else nullcontext():
                times[side].append(cpu_of(lambda: load_inventory(directory)))
    return times


def lines(hosts: int, times: dict[str, list[float]]) -> list[str]:
    """One line per side, then the ratio."""
    medians = {side: statistics.median(runs) for side, runs in times.items()}
    out = [
        f"{hosts:>6} {side:8} {value:8.3f} s {value / hosts * 1000:7.3f} ms/host"
        for side, value in medians.items()
    ]
    out.append(f"{hosts:>6} pure/libyaml {medians['pure'] / medians['libyaml']:.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the options, measure every size, print the figures."""
    args = argparse.ArgumentParser(description="load_inventory: libyaml vs pure-Python parser")
    args.add_argument("--sizes", default="10,200,1000", help="host counts (default 10,200,1000)")
    args.add_argument("--rounds", type=int, default=5, help="rounds per size (default 5)")
    opts = args.parse_args(argv)
    sizes = [int(size) for size in opts.sizes.split(",")]
    if opts.rounds < 1 or min(sizes) < 1:
        print("inventory_bench: --rounds >= 1 and sizes >= 1", file=sys.stderr)
        return 2
    if ruamel.yaml.YAML(typ="safe").Parser is ruamel.yaml.parser.Parser:
        print("inventory_bench: ruamel.yaml.clib is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        for hosts in sizes:
            directory = write_inventory(Path(tmp) / str(hosts), hosts)
            print("\n".join(lines(hosts, measure(directory, opts.rounds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
