"""``fleetbr run --tree DIR``: the checks before the run, the files after it, hostile host names
and bytes. No SSH."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetbr.adhoc.tree import FILES, TreeError, check_tree, file_name, write_tree
from fleetbr.errors import UsageError
from fleetbr.report import HostResult, Status
from tests.unit.adhoc_results import aggregate, ran

HOSTILE = ["..", ".", "", "../../etc", "a/b", "/abs", "%2E%2E", "%", "a\nb", "\x00", "tab\t"]


def test_a_new_or_empty_directory_is_accepted_and_nothing_is_created(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b"
    assert check_tree(new) == new and not (tmp_path / "a").exists()
    (tmp_path / "empty").mkdir()
    assert check_tree(tmp_path / "empty") == tmp_path / "empty"


def test_anything_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "hv01").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {
        "full": "is not empty",
        "file": "exists and is not a directory",
        "file/below": "is not a directory",
        "dangling": "exists and is not a directory",
    }
    for name, message in cases.items():
        with pytest.raises(UsageError, match=message):
            check_tree(tmp_path / name)
    assert sorted(os.listdir(tmp_path / "full")) == ["hv01"]


def test_host_names_become_one_distinct_component_each() -> None:
    names = [file_name(host) for host in HOSTILE]
    assert len(set(names)) == len(HOSTILE)
    for name in names:
        assert name not in ("", ".", "..") and "/" not in name and "\0" not in name
        assert name.isprintable()
    assert file_name("hv01.example.org") == "hv01.example.org"
    assert (file_name(".."), file_name("a/b"), file_name("%")) == ("%2E%2E", "a%2Fb", "%25")


def test_files_hold_the_exact_bytes_and_modes(tmp_path: Path) -> None:
    raw = b"\xff\x00\x1b[2J\r\nno newline at the end"
    results = aggregate(
        ran("hv01", raw, b"warn\n", status=3),
        HostResult("hv02", Status.UNREACHABLE, "connect refused\nagain"),
    )
    root = tmp_path / "new" / "tree"
    write_tree(root, results)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert sorted(os.listdir(root)) == ["hv01", "hv02"]
    hv01, hv02 = root / "hv01", root / "hv02"
    assert sorted(os.listdir(hv01)) == sorted(FILES)
    assert (hv01 / "stdout").read_bytes() == raw
    assert (hv01 / "stderr").read_bytes() == b"warn\n"
    assert (hv01 / "rc").read_bytes() == b"3\n"
    assert (hv01 / "status").read_bytes() == b"failed: exit 3\n"
    assert (hv02 / "stdout").read_bytes() == b"" and (hv02 / "rc").read_bytes() == b""
    assert (hv02 / "status").read_bytes() == b"unreachable: connect refused\\nagain\n"
    for host in (hv01, hv02):
        assert stat.S_IMODE(host.stat().st_mode) == 0o700
        for name in FILES:
            assert stat.S_IMODE((host / name).stat().st_mode) == 0o600


def test_hostile_names_stay_inside_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write_tree(root, aggregate(*(ran(host, host.encode() + b"\n") for host in HOSTILE)))
    assert sorted(os.listdir(tmp_path)) == ["tree"]
    assert sorted(os.listdir(root)) == sorted(file_name(host) for host in HOSTILE)
    for host in HOSTILE:
        assert (root / file_name(host) / "stdout").read_bytes() == host.encode() + b"\n"


def test_symlinks_and_existing_hosts_are_never_followed_or_overwritten(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    root = tmp_path / "tree"
    root.mkdir()
    (root / "hv02").symlink_to(victim)  # planted after the check, before the write
    with pytest.raises(TreeError, match=r"cannot write .*hv02.*: File exists"):
        write_tree(root, aggregate(ran("hv01", b"a\n"), ran("hv02", b"b\n")))
    assert os.listdir(victim) == []
    assert (root / "hv01" / "stdout").read_bytes() == b"a\n", "what was written stays"


def test_a_root_that_cannot_be_made_is_a_tree_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TreeError, match="cannot write"):
        write_tree(tmp_path / "file" / "tree", aggregate(ran("hv01")))


def test_an_unreadable_directory_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refuse)  # as root, a mode cannot refuse it
    with pytest.raises(UsageError, match="cannot read it: Permission denied"):
        check_tree(tmp_path)
