"""Up-front checks of the SSH files a run will read: private keys and a ``--known-hosts`` file.

A missing or wrong file is the operator's error, found once before any host is contacted (exit 2,
one line naming the path), not something every host retries and reports on its own. An encrypted
key is decrypted here, once per run (:func:`unlock_keys`).
"""

from __future__ import annotations

import functools
import getpass
import os
import stat
from collections.abc import Sequence
from typing import Any

from fleetbr.errors import UsageError
from fleetbr.secrets import Secret
from fleetbr.sshagent import agent_holds

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
    reason = _import_problem(data)
    if not reason or _needs_passphrase(reason):  # encrypted: a valid key as far as we can tell
        return ""
    return f"not an SSH private key ({reason})"


@functools.lru_cache(maxsize=64)
def _import_problem(data: bytes) -> str:
    """asyncssh's reason for not importing ``data`` without a passphrase, or "" when it does.

    One parse per key content and process: every host of a fleet usually names the same key,
    and both the up-front check and :func:`unlock_keys` ask about it for each host.
    """
    import asyncssh  # noqa: PLC0415 - only runs that contact hosts pay for the import

    try:
        asyncssh.import_private_key(data)
    except asyncssh.KeyImportError as exc:
        return str(exc) or type(exc).__name__
    return ""


def _needs_passphrase(reason: str) -> bool:
    return "passphrase" in reason.lower()


# Keys decrypted this run, by path and content: asyncssh is handed the key itself, so a
# passphrase is asked (or read) once per run and the KDF runs once, not once per host.
_UNLOCKED: dict[tuple[str, bytes], Any] = {}


def unlock_keys(
    paths: Sequence[str], passphrase: Secret | None, where: str, *, ask: bool = True
) -> None:
    """Decrypt every encrypted key among ``paths`` now, before any host is contacted.

    Its passphrase comes from ``passphrase`` (the inventory), else an ssh-agent holding the key
    (``PATH.pub`` names it) needs none, else it is asked on the terminal (when ``ask``). No
    terminal, or a wrong passphrase, is a :class:`UsageError` naming ``where`` and the path.
    """
    for path in paths:
        data = _key_bytes(path)
        if data is None or (path, data) in _UNLOCKED or not _encrypted(data):
            continue
        if passphrase is None and agent_holds(path + ".pub"):
            continue
        secret = passphrase.reveal() if passphrase is not None else _ask(path, where, ask)
        _UNLOCKED[(path, data)] = _decrypt(data, secret, path, where)


def unlocked(path: str) -> Any:
    """The key at ``path`` decrypted by :func:`unlock_keys` (an asyncssh key), or ``path``."""
    data = _key_bytes(path)
    return _UNLOCKED.get((path, data), path) if data is not None else path


def _key_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read(MAX_KEY_BYTES + 1)
    except OSError:
        return None


def _encrypted(data: bytes) -> bool:
    return _needs_passphrase(_import_problem(data))


def _decrypt(data: bytes, passphrase: str, path: str, where: str) -> Any:
    import asyncssh  # noqa: PLC0415

    try:
        return asyncssh.import_private_key(data, passphrase)
    except (asyncssh.KeyImportError, ValueError) as exc:
        # asyncssh's reasons name the format, never the passphrase
        reason = str(exc) if "bcrypt" in str(exc) else "wrong passphrase"
        raise UsageError(f"{where}: {path}: cannot decrypt: {reason}") from None


def _ask(path: str, where: str, ask: bool) -> str:
    """The passphrase of ``path`` typed on the controlling terminal (never echoed)."""
    if not ask or not _has_terminal():
        raise UsageError(
            f"{where}: {path} is encrypted and there is no terminal to ask its passphrase on "
            "(set passphrase: {env: VAR} or {command: CMD} in the inventory, or ssh-add it)"
        )
    try:
        return getpass.getpass(f"Passphrase for {path}: ")
    except (EOFError, KeyboardInterrupt):
        raise UsageError(f"{where}: {path}: no passphrase given") from None


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True
