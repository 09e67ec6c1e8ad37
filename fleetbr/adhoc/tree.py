"""``fleetbr run --tree DIR``: one directory per host, one file per stream (docs/run.md, "One
file per host and stream: --tree").

``DIR/HOST/stdout`` and ``stderr`` hold the kept bytes exactly as received, ``rc`` the exit
status, ``status`` fleetbr's one-line verdict. :func:`check_tree` runs before anything is
contacted; :func:`write_tree` after the run, refusing to follow symbolic links or overwrite files.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetbr.adhoc.job import STREAMS, captured_bytes
from fleetbr.adhoc.text import one_line
from fleetbr.errors import FleetbrError, UsageError
from fleetbr.report import AggregatedResult, HostResult
from fleetbr.validate import show

DIR_MODE, FILE_MODE = 0o700, 0o600
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
FILES = (*STREAMS, "rc", "status")
# Characters a host name may not bring into a file name as they are: a separator, the escape
# character itself, NUL and other controls (percent-encoded, so every name stays distinct).
_ENCODED = {"/", "%", *map(chr, range(0x20)), "\x7f"}


class TreeError(FleetbrError):
    """The tree could not be written (the run itself is over; its report still follows)."""


def check_tree(path: Path) -> Path:
    """``path`` if ``--tree`` may write there: an empty directory, or a path that can be
    created (its nearest existing parent a directory); UsageError otherwise."""
    where = f"run: --tree {show(str(path))}"
    if path.is_dir():
        try:
            empty = next(path.iterdir(), None) is None
        except OSError as exc:
            raise UsageError(f"{where}: cannot read it: {exc.strerror}") from None
        if not empty:
            raise UsageError(f"{where} is not empty (give a new or an empty directory)")
        return path
    if path.exists() or path.is_symlink():
        raise UsageError(f"{where} exists and is not a directory")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise UsageError(f"{where}: {show(str(parent))} is not a directory")
    return path


def file_name(host: str) -> str:
    """The directory name of ``host`` under the tree: the name itself, with ``/``, ``%`` and
    control characters percent-encoded; ``.`` and ``..`` encoded whole. Never a path that
    leaves the tree, and two hosts never share one."""
    name = "".join(f"%{ord(c):02X}" if c in _ENCODED else c for c in host)
    if name in (".", ".."):
        return name.replace(".", "%2E")
    return name or "%"  # an empty name; no other name becomes a lone "%"


def tree_files(result: HostResult) -> dict[str, bytes]:
    """The files of one host: the exact bytes kept of each stream, the exit status (empty when
    the command has none: not run, timed out, connection lost) and the verdict on one line."""
    exit_status = result.data.get("exit_status")
    files = {stream: captured_bytes(result.data, stream) for stream in STREAMS}
    files["rc"] = b"" if exit_status is None else f"{exit_status}\n".encode()
    files["status"] = (one_line(f"{result.status.value}: {result.message}") + "\n").encode()
    return files


def write_tree(root: Path, aggregated: AggregatedResult) -> None:
    """Write every host's files under ``root`` (created 0700 if missing; files 0600, host
    directories 0700). TreeError if it cannot (a host directory that appeared meanwhile, a
    full disk, ...): what was written stays."""
    try:
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        top = os.open(root, _DIRECTORY)  # the operator's path: a symlink to a directory is fine
    except OSError as exc:
        raise _tree_error(root, exc) from None
    try:
        for result in aggregated.values():
            name = file_name(result.host)
            try:
                _write_host(top, name, tree_files(result))
            except OSError as exc:
                raise _tree_error(root / name, exc) from None
    finally:
        os.close(top)


def _tree_error(path: Path, exc: OSError) -> TreeError:
    return TreeError(f"run: --tree: cannot write {show(str(path))}: {exc.strerror}")


def _write_host(top: int, name: str, files: dict[str, bytes]) -> None:
    os.mkdir(name, DIR_MODE, dir_fd=top)
    host = os.open(name, _DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
    try:
        for file, data in files.items():
            fd = os.open(file, _NEW_FILE, FILE_MODE, dir_fd=host)
            with open(fd, "wb") as out:
                out.write(data)
    finally:
        os.close(host)
