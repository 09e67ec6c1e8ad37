"""Gather facts from one host over an open connection (one round trip)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult, Status
from fleetbr.transport import Session, Transport, open_session


async def gather(conn: Session, probe_targets: Sequence[str] = ()) -> HostFacts:
    """Run the facts script on ``conn`` and parse its output."""
    result = await conn.run_script(facts_script(probe_targets), label="facts")
    return parse_facts(result.stdout)


async def facts_job(spec: HostSpec, *, transport: Transport | None = None) -> HostResult:
    """The ``fleetbr facts`` job for one host (over ``transport``, default: the current one)."""
    async with open_session(spec, transport=transport) as conn:
        facts = await gather(conn)
    return HostResult(spec.name, Status.OK, summarize(facts), data={"facts": facts.to_dict()})


def summarize(facts: HostFacts) -> str:
    """One line: kernel, bridges and default routes."""
    bridges = ", ".join(f"{b.name}[{' '.join(b.ports)}]" for b in facts.bridges) or "no bridge"
    routes = ", ".join(f"v{r.family} via {r.gateway} dev {r.dev}" for r in facts.default_routes())
    return f"{facts.hostname} kernel {facts.kernel}; {bridges}; {routes or 'no default route'}"
