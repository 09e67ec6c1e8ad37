"""Render the facts script (``fleetbr/templates/facts.sh.j2``) sent to every host."""

from __future__ import annotations

from collections.abc import Sequence

from fleetbr import validate
from fleetbr.errors import ValidationError
from fleetbr.facts.model import MANAGED_FILES, STATE_DIR
from fleetbr.render import render

TEMPLATE = "facts.sh.j2"


def facts_script(
    probe_targets: Sequence[str] = (),
    *,
    state_dir: str = STATE_DIR,
    managed_files: Sequence[str] = MANAGED_FILES,
) -> str:
    """The facts script; ``probe_targets`` are IPs to ping once each (in parallel) from the host.

    ``state_dir`` and ``managed_files`` exist so tests can point the script at temporary paths.
    """
    targets = [validate.ip_address(t, "probe target") for t in probe_targets]
    for path in (state_dir, *managed_files):
        if not path.startswith("/"):
            raise ValidationError(f"facts script: {path!r} is not an absolute path")
    return render(
        TEMPLATE,
        probe_targets=targets,
        state_dir=state_dir,
        managed_files=list(managed_files),
    )
