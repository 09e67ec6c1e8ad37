"""Make one command slow on one lab host: a wrapper bind-mounted over the real binary inside the
host's own mount namespace, so only that host (and nothing on this machine) is affected."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from fleetbr.lab import Lab
from tests.integration.txhelpers import sh


@contextmanager
def slow_command(lab: Lab, host: str, command: str, pattern: str, seconds: float) -> Iterator[None]:
    """While active, ``command`` on ``host`` sleeps ``seconds`` first whenever its arguments
    contain ``pattern``, then runs as usual."""
    member = lab.host(host)
    real = sh(lab, host, f'readlink -f "$(command -v {shlex.quote(command)})"').strip()
    copy = member.dir / f"real-{command}"
    wrapper = member.dir / f"slow-{command}"
    shutil.copy2(real, copy)
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *{shlex.quote(pattern)}*) sleep {seconds} ;; esac\n'
        f'exec {shlex.quote(member.inside(copy.name))} "$@"\n'
    )
    wrapper.chmod(0o755)
    sh(lab, host, f"mount --bind {shlex.quote(member.inside(wrapper.name))} {shlex.quote(real)}")
    try:
        yield
    finally:
        sh(lab, host, f"umount {shlex.quote(real)}")
