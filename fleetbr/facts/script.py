"""Render the facts script (``fleetbr/templates/facts.sh.j2``) sent to every host."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from fleetbr import validate
from fleetbr.backends import registry
from fleetbr.errors import ValidationError
from fleetbr.facts.libvirt import LIBVIRT_MAX_BYTES
from fleetbr.facts.model import (
    CONTENT_MAX_BYTES,
    MANAGED_FILES,
    MANAGED_MAX_BYTES,
    PIN_DIR,
    PIN_MAX_BYTES,
    STATE_DIR,
)
from fleetbr.render import render

TEMPLATE = "facts.sh.j2"
_TOUCHED_RE = re.compile(r"^[a-z]+( [A-Za-z0-9_.:/%@-]+)+$")


def facts_script(
    probe_targets: Sequence[str] = (),
    *,
    state_dir: str = STATE_DIR,
    managed_files: Sequence[str] = MANAGED_FILES,
    touched: Sequence[str] = (),
    pin_dir: str = PIN_DIR,
) -> str:
    """The facts script; ``probe_targets`` are IPs to ping once each (in parallel) from the host.

    ``state_dir``, ``managed_files`` and ``pin_dir`` exist so tests can point the script at
    temporary paths.
    ``touched`` (from :func:`fleetbr.plan.scope.touched_lines`) is printed as a ``touched``
    section: the copy staged with a transaction makes its snapshot name what it may change.
    """
    targets = [validate.ip_address(t, "probe target") for t in probe_targets]
    for path in (state_dir, pin_dir, *managed_files):
        if not path.startswith("/"):
            raise ValidationError(f"facts script: {path!r} is not an absolute path")
    for line in touched:
        if not _TOUCHED_RE.match(line):
            raise ValidationError(f"facts script: touched line {line!r} is malformed")
    backends = tuple(
        (str(path), tuple(b.facts_args().items()))
        for b in registry.backends()
        for path in [b.facts_template()]
        if path
    )
    return _render(
        tuple(targets),
        state_dir=state_dir,
        managed_files=tuple(managed_files),
        touched=tuple(touched),
        pin_dir=pin_dir,
        backends=backends,
    )


# Every host of a run gets the same script (apply: the same per probe set): render it once.
@functools.lru_cache(maxsize=256)
def _render(
    targets: tuple[str, ...],
    *,
    state_dir: str,
    managed_files: tuple[str, ...],
    touched: tuple[str, ...],
    pin_dir: str,
    backends: tuple[tuple[str, tuple[tuple[str, str | None], ...]], ...],
) -> str:
    return render(
        TEMPLATE,
        probe_targets=list(targets),
        state_dir=state_dir,
        managed_files=list(managed_files),
        touched=list(touched),
        pin_dir=pin_dir,
        pin_max=PIN_MAX_BYTES,
        managed_max=MANAGED_MAX_BYTES,
        libvirt_max=LIBVIRT_MAX_BYTES,
        content_max=CONTENT_MAX_BYTES,
        facts_backends=[dict(args) for _, args in backends],
    )
