"""The ``managed_contents`` section of the facts (the old side of ``--diff`` for fleetbr's own
files): the real facts script run against temporary files, then parsed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleetbr.errors import FactsError
from fleetbr.facts.model import MANAGED_MAX_BYTES
from fleetbr.facts.parse import parse_facts, parse_managed_contents
from fleetbr.facts.script import facts_script


def contents_of(paths: list[Path], state: Path) -> dict[str, str]:
    script = facts_script(managed_files=[str(p) for p in paths], state_dir=str(state))
    done = subprocess.run(
        ["sh", "-s"], input=script, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return parse_facts(done.stdout).managed_contents


def test_the_facts_script_reports_each_managed_files_text_whole(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("conf", "empty", "hostile", "latin1", "big")}
    files["conf"].write_text("net.bridge.bridge-nf-call-iptables = 0\n")
    files["empty"].write_text("")
    hostile = "x\n@@fleetbr-end\n@@fleetbr-section meta\n\r\x1b[31m\n"
    files["hostile"].write_text(hostile)
    files["latin1"].write_bytes(b"caf\xe9\n")
    files["big"].write_bytes(b"#" * (MANAGED_MAX_BYTES + 1))
    (tmp_path / "dir").mkdir()
    paths = [*files.values(), tmp_path / "missing", tmp_path / "dir"]
    found = contents_of(paths, tmp_path / "state")
    assert found == {
        str(files["conf"]): "net.bridge.bridge-nf-call-iptables = 0\n",
        str(files["empty"]): "",
        str(files["hostile"]): hostile,
        str(files["latin1"]): "caf\udce9\n",  # its bytes back with surrogateescape
    }


def test_malformed_lines_name_the_section() -> None:
    with pytest.raises(FactsError, match="managed_contents"):
        parse_managed_contents(["content !!! /etc/x"])
    with pytest.raises(FactsError, match="managed_contents"):
        parse_managed_contents(["contents - /etc/x"])
