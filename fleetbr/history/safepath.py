"""Where the run history may live: a rule that keeps root (``schedule install`` runs fleetbr as
root) from writing where another local user points it.

The history's directory must belong to this user (or root) and be writable by nobody else, sticky
bit or not (SQLite also creates ``-wal`` and ``-shm`` files beside the database, by name); the
history path must not be a symlink, dangling or not; an existing history must be a regular file
of this user. A new one is created ``0600``, new (``O_EXCL``) and never through a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fleetbr.errors import FleetbrError


class UnsafeHistoryPath(FleetbrError):
    """The history path breaks the rule; the message says how (one line)."""


def check_history_path(path: Path) -> None:
    """Raise UnsafeHistoryPath unless ``path`` and its directory follow the module's rule."""
    me = os.geteuid()
    directory = os.stat(path.parent)
    if directory.st_uid not in (me, 0):
        raise UnsafeHistoryPath(f"its directory {path.parent} is owned by another user")
    if directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeHistoryPath(
            f"its directory {path.parent} is writable by other users "
            f"(mode {stat.S_IMODE(directory.st_mode):04o})"
        )
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(found.st_mode):
        raise UnsafeHistoryPath("it is a symlink")
    if not stat.S_ISREG(found.st_mode):
        raise UnsafeHistoryPath("it is not a regular file")
    if found.st_uid != me:
        raise UnsafeHistoryPath("it is owned by another user")


def create_history_file(path: Path) -> None:
    """Create ``path`` new and private (``0600``) unless it exists; never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o600))
    except FileExistsError:
        check_history_path(path)  # made meanwhile: the same rule holds for it
