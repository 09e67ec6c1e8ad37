"""``apply --diff``: every host's planned before/after view, shown before anything changes.

A read-only plan pass (one facts round trip per host, not recorded in the history, no live
progress) gives each host's view; it is printed (not with ``--json``), then the apply runs as
without ``--diff`` and each host's result carries its view (``data["diff"]``, mode ``apply``)
for ``--json``. The view is the plan made on the facts of the pass: the transaction plans again
on its own facts, an instant later (docs/diff.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetbr.core.assemble import RunOutcome, execute
from fleetbr.core.request import HistoryOptions, MetricsOptions, RunRequest
from fleetbr.diffview.show import print_diffs
from fleetbr.errors import UsageError
from fleetbr.report import AggregatedResult

Report = Callable[[AggregatedResult], None]


def apply_with_diff(request: RunRequest, report: Report, *, as_json: bool) -> RunOutcome:
    """Show the planned views, then apply; ``report`` gets the results with their views."""
    if request.history.resume is not None:
        raise UsageError("apply --diff cannot be combined with --resume")
    preview = request.replace(
        command="plan", history=HistoryOptions(), metrics=MetricsOptions(quiet=True), diff=True
    )
    shown = execute(preview)
    if shown.interrupted:  # never apply after a Ctrl-C
        return shown
    planned = shown.result
    views = _views(planned)
    if not as_json:
        print_diffs(planned)

    def with_views(aggregated: AggregatedResult) -> None:
        for host, view in views.items():
            if host in aggregated:
                aggregated[host].data.setdefault("diff", view)
        report(aggregated)

    return execute(request, report=with_views)


def _views(planned: AggregatedResult) -> dict[str, dict[str, Any]]:
    """host -> its view, as the apply shows it (mode ``apply``)."""
    for result in planned.values():
        view = result.data.get("diff")
        if isinstance(view, dict):
            view["mode"] = "apply"
    return {
        host: result.data["diff"]
        for host, result in planned.items()
        if isinstance(result.data.get("diff"), dict)
    }
