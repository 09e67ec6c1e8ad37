"""Files fleetbr writes on the controller, often as root (``schedule install --metrics-file``):
neither a link planted by another user nor a directory another user can write makes root write
where it should not (issue 20, item 3; docs/security.md).

The planted links belong to ``nobody`` (uid 65534), as if that user had made them; fleetbr runs
as root here, which is exactly the case that matters.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetbr import metrics
from fleetbr.history.sqlite import SqliteStore
from fleetbr.history.store import HistoryError
from fleetbr.metrics import write_atomically

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plants links owned by another user")

NOBODY = 65534


def victim(tmp_path: Path) -> Path:
    """A root-only file elsewhere, which a planted link points at."""
    secret = tmp_path / "private" / "shadow"
    secret.parent.mkdir(mode=0o700)
    secret.write_text("root only\n")
    secret.chmod(0o600)
    return secret


def plant(link: Path, target: Path) -> None:
    """A symlink at ``link`` to ``target``, owned by another user."""
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)


def untouched(secret: Path) -> bool:
    return secret.read_text() == "root only\n" and stat.S_IMODE(secret.stat().st_mode) == 0o600


def collector_dir(tmp_path: Path) -> Path:
    """A textfile collector directory another user can write."""
    directory = tmp_path / "textfile"
    directory.mkdir()
    directory.chmod(0o777)
    return directory


def test_metrics_never_write_through_a_link_at_the_old_predictable_name(tmp_path: Path) -> None:
    secret, directory = victim(tmp_path), collector_dir(tmp_path)
    plant(directory / f"fleetbr.prom.tmp.{os.getpid()}", secret)
    write_atomically(directory / "fleetbr.prom", "fleetbr_up 1\n")
    assert untouched(secret)
    written = directory / "fleetbr.prom"
    assert written.read_text() == "fleetbr_up 1\n" and not written.is_symlink()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644


def test_metrics_temp_file_is_created_new_never_opened_through_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, directory = victim(tmp_path), collector_dir(tmp_path)
    monkeypatch.setattr(metrics, "_temp_name", lambda path: f"{path.name}.tmp.guessed")
    plant(directory / "fleetbr.prom.tmp.guessed", secret)
    with pytest.raises(OSError):
        write_atomically(directory / "fleetbr.prom", "fleetbr_up 1\n")
    assert untouched(secret)
    assert (directory / "fleetbr.prom.tmp.guessed").is_symlink()  # not removed: not ours


def test_metrics_replace_a_link_at_the_path_itself_instead_of_following_it(
    tmp_path: Path,
) -> None:
    secret, directory = victim(tmp_path), collector_dir(tmp_path)
    plant(directory / "fleetbr.prom", secret)
    write_atomically(directory / "fleetbr.prom", "fleetbr_up 1\n")
    assert untouched(secret)
    assert not (directory / "fleetbr.prom").is_symlink()


def test_a_dangling_link_at_the_history_path_is_refused_and_nothing_created(
    tmp_path: Path,
) -> None:
    target = tmp_path / "elsewhere" / "created-by-root"
    target.parent.mkdir()
    plant(tmp_path / "history.sqlite3", target)
    with pytest.raises(HistoryError, match="symlink"):
        SqliteStore(tmp_path / "history.sqlite3")
    assert not target.exists()


def test_a_link_at_the_history_path_to_a_file_is_refused(tmp_path: Path) -> None:
    secret = victim(tmp_path)
    plant(tmp_path / "history.sqlite3", secret)
    with pytest.raises(HistoryError, match="symlink"):
        SqliteStore(tmp_path / "history.sqlite3")
    assert untouched(secret)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775, 0o757])
def test_a_history_in_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(HistoryError, match="writable by other users"):
        SqliteStore(directory / "history.sqlite3")
    assert list(directory.iterdir()) == []


def test_a_history_in_a_directory_another_user_owns_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o755)
    os.chown(directory, NOBODY, NOBODY)
    with pytest.raises(HistoryError, match="owned by another user"):
        SqliteStore(directory / "history.sqlite3")


def test_a_history_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "history.sqlite3").close()
    os.chown(tmp_path / "history.sqlite3", NOBODY, NOBODY)
    with pytest.raises(HistoryError, match="owned by another user"):
        SqliteStore(tmp_path / "history.sqlite3")


def test_a_private_history_directory_works_and_the_file_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o755)
    SqliteStore(directory / "history.sqlite3").close()
    assert stat.S_IMODE((directory / "history.sqlite3").stat().st_mode) == 0o600
