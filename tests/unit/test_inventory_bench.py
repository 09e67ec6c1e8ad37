"""bench/inventory_bench.py: its parser switch and a tiny run (figures: docs/benchmarks.md)."""

from __future__ import annotations

import re

import pytest
import ruamel.yaml

from bench import inventory_bench


def test_pure_parser_switches_every_yaml_made_inside_and_restores() -> None:
    with inventory_bench.pure_parser():
        assert ruamel.yaml.YAML(typ="safe").Parser is ruamel.yaml.parser.Parser
    assert ruamel.yaml.YAML(typ="safe").Parser is not ruamel.yaml.parser.Parser


def test_a_tiny_run_prints_both_sides_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert inventory_bench.main(["--sizes", "3,7", "--rounds", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6
    assert re.fullmatch(r" +7 libyaml +\d+\.\d{3} s +\d+\.\d{3} ms/host", out[3])
    assert re.fullmatch(r" +7 pure/libyaml \d+\.\d\dx", out[5])


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert inventory_bench.main(["--rounds", "0"]) == 2
    assert capsys.readouterr().err == "inventory_bench: --rounds >= 1 and sizes >= 1\n"
