"""A toy persistence backend, to show that a backend is its folder plus one registration line:
``toyd`` reads ``/etc/toy/BRIDGE.conf`` and ``toyctl`` applies it; ``toyctl status`` prints
``NAME STATE`` per interface, its view (templates/facts.sh.j2 gathers it, :meth:`parse_view`
reads it). Nothing in fleetbr names it; tests/unit/test_backend_registry.py registers it, gathers
and parses its facts and plans with it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleetbr.backends import Backend, BackendPlan, BridgeConfig, FileChange
from fleetbr.facts.model import DaemonView, HostFacts
from fleetbr.facts.views import ViewContext

ETC = "/etc/toy"


def _conf(config: BridgeConfig, ports: tuple[str, ...]) -> str:
    lines = [f"bridge {config.name}", *(f"port {p}" for p in ports)]
    lines += [f"address {a}" for a in config.addresses]
    lines += [f"route {r.dst} via {r.gateway}" for r in config.routes if r.gateway]
    return "\n".join(lines) + "\n"


class ToyBackend(Backend):
    """toyd: one file per bridge; ``toyctl`` takes it over."""

    name = "toy"
    tool = "toyd"
    settled = ("up",)
    boot_shell = True
    templates = Path(__file__).resolve().parent / "templates"
    view_words = ("toy-state",)

    def parse_view(self, ctx: ViewContext) -> None:
        """``toy-state NAME STATE``: toyd configures NAME from its file, ``up`` or not."""
        for _, rest in ctx.words("toy-state"):
            name, _, state = rest.partition(" ")
            files = ctx.config([f"{ETC}/{name}.conf"])
            ctx.add(name, DaemonView(self.name, state, files, claims=state == "up"))

    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """The bridge's file, the NIC its port."""
        del facts
        files = (FileChange(f"{ETC}/{config.name}.conf", _conf(config, (config.nic,))),)
        args = {"backend": self.name, "bridge": config.name, "nic": config.nic}
        return BackendPlan(self.name, files, args, managers=())

    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """The bridge's file goes; the NIC's gets its addresses."""
        del facts
        plain = dataclasses.replace(config, name=config.nic)
        files = (
            FileChange(f"{ETC}/{config.name}.conf", None),
            FileChange(f"{ETC}/{config.nic}.conf", _conf(plain, ())),
        )
        args = {"backend": self.name, "bridge": config.name, "nic": config.nic}
        return BackendPlan(self.name, files, {**args, "direction": "unbridge"}, managers=())
