"""Render the remote-side shell scripts from the jinja2 templates in ``fleetbr/templates``.

The lab renders its own templates (``fleetbr/lab/templates``) through the same settings:
``environment_of("fleetbr.lab")`` (fleetbr/lab/render.py).

Every value interpolated into shell goes through the ``q`` filter (POSIX single-quote quoting).
Undefined variables are errors, never empty strings.
"""

from __future__ import annotations

import shlex
from functools import cache
from typing import Any

import jinja2


def shell_quote(value: object) -> str:
    """Quote ``value`` for POSIX sh (the ``q`` filter)."""
    return shlex.quote(str(value))


def environment() -> jinja2.Environment:
    """The shared jinja2 environment for remote scripts."""
    return environment_of("fleetbr")


@cache
def environment_of(package: str) -> jinja2.Environment:
    """The jinja2 environment for the templates in ``package``'s ``templates`` folder."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - shell, not HTML; values are quoted with |q
    )
    env.filters["q"] = shell_quote
    return env


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a file name in fleetbr/templates) with ``context``."""
    return environment().get_template(template).render(**context)
