"""Render the lab's own templates (``fleetbr/lab/templates``: sshd config, holder, distro rootfs,
provisioning): the same environment as the product's scripts (``fleetbr.render``), another
folder, so the product package carries no lab shell."""

from __future__ import annotations

from typing import Any

from fleetbr.render import environment_of


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a file name in fleetbr/lab/templates) with ``context``."""
    return environment_of("fleetbr.lab").get_template(template).render(**context)
