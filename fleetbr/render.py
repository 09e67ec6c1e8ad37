"""Render the remote-side shell scripts from the jinja2 templates in ``fleetbr/templates``.

The lab renders its own templates (``fleetbr/lab/templates``) through the same settings:
``environment_of("fleetbr.lab")`` (fleetbr/lab/render.py).

Every value interpolated into shell goes through the ``q`` filter (POSIX single-quote quoting).
Undefined variables are errors, never empty strings.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from fleetbr.backends import registry

# The persistence backends' shell: ``backends/FILE`` is shared (fleetbr/backends/templates),
# ``backend/NAME/FILE`` is in the templates folder of the backend registered as NAME.
_SHARED = Path(__file__).resolve().parent / "backends" / "templates"


class BackendLoader(jinja2.BaseLoader):
    """Templates of the persistence backends, found through their registry."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        """The text, path and up-to-date check of ``template``."""
        prefix, _, rest = template.partition("/")
        owner: object = None
        if prefix == "backends" and "/" not in rest:
            path = _SHARED / rest
        elif prefix == "backend" and rest.count("/") == 1:
            name, _, file = rest.partition("/")
            owner = registry.find(name)
            if owner is None:
                raise jinja2.TemplateNotFound(template)
            path = owner.templates / file
        else:
            raise jinja2.TemplateNotFound(template)
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        mtime = path.stat().st_mtime

        def uptodate() -> bool:
            same = owner is None or registry.find(template.split("/")[1]) is owner
            return same and path.is_file() and path.stat().st_mtime == mtime

        return path.read_text(encoding="utf-8"), str(path), uptodate


def backend_shell(name: str) -> Any:
    """The module of backend ``name``'s shell template (its macros: fleetbr.backends.base)."""
    return environment().get_template(f"backend/{name}/shell.sh.j2").module


def backend_facts(name: str) -> Any:
    """The module of backend ``name``'s facts template (its macros: fleetbr.backends.base)."""
    return environment().get_template(f"backend/{name}/facts.sh.j2").module


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
        loader=jinja2.ChoiceLoader([jinja2.PackageLoader(package, "templates"), BackendLoader()]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - shell, not HTML; values are quoted with |q
    )
    env.filters["q"] = shell_quote
    env.globals["backend_shell"] = backend_shell
    env.globals["backend_facts"] = backend_facts
    return env


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a file name in fleetbr/templates) with ``context``."""
    return environment().get_template(template).render(**context)
