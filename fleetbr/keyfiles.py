"""Up-front checks of the SSH files a run will read: private keys and a ``--known-hosts`` file.

A missing or wrong file is the operator's error, found once before any host is contacted (exit 2,
one line naming the path), not something every host retries and reports on its own.
"""

from __future__ import annotations

import os
import stat

MAX_KEY_BYTES = 1 << 20  # far above any private key; a bigger file is not one


def unreadable(path: str) -> str:
    """Why ``path`` cannot be read as a regular file, or "" when it can."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return _open_problem(path)


def unopenable(path: str) -> str:
    """Why ``path`` cannot be opened for reading, or "" when it can (a FIFO would block)."""
    if stat.S_ISFIFO(_mode(path)):
        return "a FIFO, not a file"
    return _open_problem(path)


def _open_problem(path: str) -> str:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return ""


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def key_file_problem(path: str) -> str:
    """Why ``path`` cannot be used as an SSH private key, or "" when it can.

    An encrypted key is accepted here: its passphrase is checked when a host is contacted.
    """
    problem = unreadable(path)
    if problem:
        return problem
    with open(path, "rb") as file:
        data = file.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        return f"not an SSH private key (larger than {MAX_KEY_BYTES} bytes)"
    import asyncssh  # noqa: PLC0415 - only runs that contact hosts pay for the import

    try:
        asyncssh.import_private_key(data)
    except asyncssh.KeyImportError as exc:
        reason = str(exc)
        if "passphrase" in reason.lower():  # encrypted: a valid key as far as we can tell
            return ""
        return f"not an SSH private key ({reason})"
    return ""
