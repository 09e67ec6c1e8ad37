"""The examples of docs/backends.md, generated, never hand-typed: boots one distro lab host per
backend, gathers its facts and runs fleetbr's own planner and backend renderers on them with
``tasks/bridge.yaml`` set to ``persist: auto``. Prints Markdown: per backend the NIC's file as
the lab wrote it, every file fleetbr writes (path, mode, content), and the shell lines of the
apply and of the rollback's backend steps. Changes nothing on the hosts.

Usage (repository root, as root): ``scripts/in-netns .venv/bin/python -m bench.backend_examples``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

from bench.common import REPO
from fleetbr.backends import plan_backend
from fleetbr.changes.bridge.task import load_task, render_task
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec, load_inventory, select_hosts
from fleetbr.lab import Lab, down, host_exec
from fleetbr.lab.distro import up
from fleetbr.plan.persist import bridge_config, choose_backend
from fleetbr.plan.planner import plan_host
from fleetbr.plan.shell import step_command
from fleetbr.render import render
from fleetbr.transport.ssh import open_connection

BACKENDS = ["ifupdown", "networkd", "netplan", "networkmanager"]


async def _facts(spec: HostSpec) -> HostFacts:
    async with open_connection(spec) as conn:
        return await gather(conn)


def _block(text: str, lang: str = "") -> str:
    return f"```{lang}\n{text.rstrip()}\n```"


def _lang(path: str) -> str:
    return "yaml" if path.endswith(".yaml") else "ini" if "." in path.rsplit("/", 1)[-1] else ""


def section(lab: Lab, spec: HostSpec, facts: HostFacts) -> str:
    """The Markdown of one backend."""
    host = lab.host(spec.name)
    task = dataclasses.replace(
        render_task(load_task(REPO / "tasks" / "bridge.yaml"), spec.context()), persist="auto"
    )
    plan = plan_host(task, facts, min_timeout=20)
    if plan.refusal:
        return f"### {host.backend}\n\nrefused: {plan.refusal}\n"
    backend = choose_backend(task, facts)
    rendered = plan_backend(backend, bridge_config(task, plan.expected), facts)
    out = [f"### {backend}: generated on {spec.name}\n"]
    for source in (f.path for f in facts.manager(host.nic).files if f.path.startswith("/etc/")):
        text = host_exec(lab, host, ["cat", source]).stdout
        out += [f"Before: `{source}` (as the lab wrote it)\n", _block(text, _lang(source)), ""]
    for change in rendered.files:
        what = "removed" if change.content is None else f"written, mode {change.mode}"
        out += [f"After: `{change.path}` ({what})\n"]
        if change.content is not None:
            out += [_block(change.content, _lang(change.path)), ""]
    for path in rendered.guarded:
        out += [f"Guarded (backed up at stage, restored by a rollback): `{path}`\n"]
    kinds = ("backend_apply", "backend_release", "backend_reapply")
    ordered = [*plan.steps, *plan.rollback]
    lines = [f"# {s.kind}\n{step_command(s)}" for s in ordered if s.kind in kinds]
    out += ["Shell lines (apply; rollback: release, re-apply):\n", _block("\n".join(lines), "sh")]
    return "\n".join(out) + "\n"


def main() -> int:
    """Boot the lab, print the Markdown, take the lab down."""
    with tempfile.TemporaryDirectory(prefix="fleetbr-examples-") as tmp:
        lab = up(Path(tmp) / "lab", len(BACKENDS), BACKENDS, prefix="fbrex")
        try:
            specs = select_hosts(load_inventory(lab.inventory_dir), None)
            for spec in specs:
                print(section(lab, spec, asyncio.run(_facts(spec))))
            print("### The boot guard unit\n")
            unit = render("boot_guard.service.j2", state_dir="/var/lib/fleetbr")
            print(_block(unit, "ini"))
        finally:
            down(lab.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
