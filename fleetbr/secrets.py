"""Secrets of the inventory (``password``, a key's ``passphrase``): a value or where to get it.

An inventory value may be a string, ``{env: VAR}`` (the controller's environment) or
``{command: "pass show x"}`` (a command run on the controller, split like a shell word list but
never through a shell; its stdout's first line). A source is read at most once per process, when
a run first needs it: the front doors call :func:`resolve` before any host is contacted, so a
missing variable or a failing command is one :class:`~fleetbr.errors.UsageError` line (exit 2).

A :class:`Secret` prints as ``********`` (str, repr, f-strings); only :meth:`Secret.reveal` gives
the value, and only the SSH transport calls it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from fleetbr.errors import UsageError, ValidationError
from fleetbr.validate import clip, show

MASK = "********"
COMMAND_TIMEOUT = 120.0  # a password manager may wait for its own pinentry
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SHAPE = "expected a string, {env: VAR} or {command: CMD}"


@dataclass(frozen=True)
class SecretSource:
    """Where a secret comes from: ``kind`` is ``env`` (``ref`` a variable name) or ``command``
    (``ref`` the command line, split with :func:`shlex.split`, run without a shell)."""

    kind: str
    ref: str

    def describe(self) -> str:
        """``{env: VAR}`` or ``{command: ...}`` as in the inventory (names no secret)."""
        return f"{{{self.kind}: {clip(self.ref, 60)}}}"


class Secret:
    """A password or passphrase, literal or from a :class:`SecretSource`; never printed."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str | None = None, source: SecretSource | None = None) -> None:
        if (value is None) == (source is None):
            raise ValueError("a Secret has either a value or a source")
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The value (read from its source on first use)."""
        if self._value is None:
            assert self.source is not None
            self._value = read_source(self.source)
        return self._value

    def __repr__(self) -> str:
        where = f" from {self.source.describe()}" if self.source is not None else ""
        return f"Secret({MASK}{where})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return (self.source, self._value) == (other.source, other._value)

    def __hash__(self) -> int:
        return hash((self.source, self._value))


def parse_secret(value: object, field: str) -> Secret | None:
    """An inventory value as a :class:`Secret` (``None`` stays ``None``); a bad shape is a
    :class:`ValidationError` naming ``field``, never quoting a string value."""
    if value is None:
        return None
    if isinstance(value, str):
        if any(not c.isprintable() and c != " " for c in value):
            raise ValidationError(f"{field}: contains control characters")
        return Secret(value)
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field}: {_SHAPE} (quote a number in YAML)")
    if len(value) != 1 or next(iter(value)) not in ("env", "command"):
        keys = ", ".join(sorted(clip(str(k), 20) for k in value)) or "none"
        raise ValidationError(f"{field}: {_SHAPE}, got a mapping with key(s) {keys}")
    kind, ref = next(iter(value.items()))
    if not isinstance(ref, str):
        raise ValidationError(f"{field}: {kind}: expected a string, got {show(ref)}")
    if kind == "env" and not _ENV_NAME.match(ref):
        raise ValidationError(f"{field}: env: {show(ref)} is not an environment variable name")
    if kind == "command":
        _command_words(ref, field)
    return Secret(source=SecretSource(kind, ref))


def _command_words(command: str, field: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ValidationError(f"{field}: command: {exc} in {show(command)}") from None
    if not words:
        raise ValidationError(f"{field}: command: empty")
    return words


_READ: dict[SecretSource, str] = {}


def read_source(source: SecretSource) -> str:
    """The secret ``source`` holds, read once per process; :class:`UsageError` when it cannot."""
    if source not in _READ:
        reader = _from_env if source.kind == "env" else _from_command
        _READ[source] = reader(source)
    return _READ[source]


def forget() -> None:
    """Forget every secret read from a source (a long-lived process starting a new run)."""
    _READ.clear()


def _from_env(source: SecretSource) -> str:
    value = os.environ.get(source.ref)
    if not value:
        state = "is empty" if value == "" else "is not set"
        raise UsageError(f"secret {source.describe()}: the environment variable {state}")
    return value


def _from_command(source: SecretSource) -> str:
    words = _command_words(source.ref, "secret")
    try:
        done = subprocess.run(
            words, stdin=subprocess.DEVNULL, capture_output=True, timeout=COMMAND_TIMEOUT,
            check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise UsageError(f"secret {source.describe()}: {words[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"secret {source.describe()}: no answer within {COMMAND_TIMEOUT:g}s"
        ) from None
    except OSError as exc:
        raise UsageError(f"secret {source.describe()}: cannot run: {exc.strerror}") from None
    if done.returncode != 0:
        # Its stderr is not shown: a secret tool's messages may quote what it read.
        raise UsageError(f"secret {source.describe()}: the command exited {done.returncode}")
    line = done.stdout.decode("utf-8", "replace").split("\n", 1)[0].rstrip("\r")
    if not line:
        raise UsageError(f"secret {source.describe()}: the command printed an empty first line")
    return line


def resolve(secrets: list[Secret | None]) -> None:
    """Read every source among ``secrets`` now (before any host is contacted)."""
    for secret in secrets:
        if secret is not None:
            secret.reveal()
