"""Pure checks of a host's facts against a plan's expected state (``verify_applied``).

The comparison itself is :mod:`fleetbr.plan.diff` (shared with ``plan`` and ``check``); the
restore check (a host back at its snapshot) lives in :mod:`fleetbr.plan.restore`.
"""

from __future__ import annotations

from fleetbr.facts.model import HostFacts
from fleetbr.plan.diff import compare, route_matches
from fleetbr.plan.model import BridgePlan

__all__ = ["route_matches", "verify_applied"]


def verify_applied(plan: BridgePlan, facts: HostFacts) -> list[str]:
    """Human-readable differences between ``facts`` and the plan's expected state ([] = match)."""
    return [difference.text for difference in compare(plan.expected, facts)]
