"""Benchmarks: fleetbr against bare asyncssh scripts, side by side (see docs/benchmarks.md).

Run from the repository root as modules, inside a throw-away network namespace:
``scripts/in-netns .venv/bin/python -m bench.facts_bench``.
"""
