"""What ``fleetbr run`` sends to a host: :class:`RunSpec`, and the rule for a command line.

The operator's command line (or script) is the *stdin* of ``sh -s`` on the host; the exec request
is fleetbr's own wrapper (``templates/run_exec.sh.j2``) with two validated numbers in it. Nothing
the operator typed is ever spliced into fleetbr's text.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.render import render

DEFAULT_MAX_OUTPUT = 1024 * 1024  # bytes kept per stream per host; the rest is counted, not kept
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 86400.0
KILL_AFTER = 5.0  # seconds between the host-side TERM and KILL of a timed-out command
BACKSTOP = 10.0  # extra seconds the controller waits beyond the host-side timeout and KILL


def command_line(argv: Sequence[str]) -> str:
    """The shell command line for ``run -- CMD [ARG...]``.

    One argument is a shell command line, used as is (``run -- 'ip -br link | head'``). Several
    arguments are words: each is quoted, so ``run -- printf '%s\\n' '$(reboot)'`` prints
    ``$(reboot)`` (``shlex.join``).
    """
    if not argv or not "".join(argv).strip():
        raise UsageError("run: no command given (fleetbr run -- CMD [ARG...], or --script FILE)")
    return argv[0] if len(argv) == 1 else shlex.join(argv)


def check_timeout(value: float) -> float:
    """``value`` if it is a usable --timeout (seconds)."""
    if not math.isfinite(value) or not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
        raise UsageError(f"run: --timeout {value:g} is outside {MIN_TIMEOUT:g}..{MAX_TIMEOUT:g}s")
    return value


class RunOptions(NamedTuple):
    """``--sudo``, ``--timeout`` and ``--max-output``, in :class:`RunSpec`'s field order."""

    sudo: bool = False
    timeout: float | None = None
    max_output: int = DEFAULT_MAX_OUTPUT


@dataclass(frozen=True)
class RunSpec:
    """One ad-hoc command for every selected host.

    ``payload`` is what ``sh -s`` reads on the host. ``timeout`` None means each host's
    ``command_timeout``; ``sudo`` forces ``sudo -n`` (a host whose inventory says ``sudo: true``
    uses it anyway, as for every fleetbr script).
    """

    payload: bytes
    label: str
    sudo: bool = False
    timeout: float | None = None
    max_output: int = DEFAULT_MAX_OUTPUT

    @classmethod
    def from_argv(cls, argv: Sequence[str], options: RunOptions) -> RunSpec:
        """``run -- CMD [ARG...]``: the command line of :func:`command_line`, as sh input."""
        line = command_line(argv)
        # argv came from the OS through surrogateescape: send back the exact bytes typed
        return cls(os.fsencode(line) + b"\n", line, *options)

    @classmethod
    def from_script(cls, path: Path, options: RunOptions) -> RunSpec:
        """``run --script FILE``: the file's bytes, as they are, as sh input."""
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"run: cannot read script {path}: {exc.strerror}") from None
        return cls(payload, f"script {path}", *options)

    def __post_init__(self) -> None:
        if self.timeout is not None:
            check_timeout(self.timeout)
        if self.max_output < 0:
            raise UsageError(f"run: --max-output {self.max_output} is negative")

    def timeout_for(self, host: HostSpec) -> float:
        """The host-side time limit on ``host``."""
        return self.timeout if self.timeout is not None else host.ssh.command_timeout

    def deadline_for(self, host: HostSpec) -> float:
        """How long the controller waits for the command's end before giving up on the host."""
        return self.timeout_for(host) + KILL_AFTER + BACKSTOP

    def exec_line(self, host: HostSpec) -> str:
        """The exec request for ``host`` (fleetbr's wrapper; see ``run_exec.sh.j2``)."""
        return exec_line(self.sudo or host.ssh.sudo, self.timeout_for(host), KILL_AFTER)


@cache  # one rendering per (sudo, timeout) for the whole fleet, not one per host
def exec_line(sudo: bool, timeout: float, kill_after: float) -> str:
    """The wrapper of ``run_exec.sh.j2`` as one exec request."""
    return render(
        "run_exec.sh.j2",
        sudo=sudo,
        timeout=_seconds(timeout),
        kill_after=_seconds(kill_after),
        grace=max(1, math.ceil(kill_after * 100)),
    ).strip()


def _seconds(value: float) -> str:
    """``value`` as coreutils ``timeout`` reads it: plain decimal, never 0 (which disables it)."""
    return f"{max(value, 0.001):.3f}"
