"""A toy persistence backend, to show that a backend is its folder plus one registration line:
``toyd`` reads ``/etc/toy/BRIDGE.conf`` and ``toyctl`` applies it. Nothing in fleetbr names it;
tests/unit/test_backend_registry.py registers it and plans with it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleetbr.backends import Backend, BackendPlan, BridgeConfig, FileChange
from fleetbr.facts.model import HostFacts

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
