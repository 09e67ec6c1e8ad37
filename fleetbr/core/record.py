"""What watches a run, for every front door alike: the history rows, the live progress and the
metrics file (:class:`fleetbr.history.record.RunContext`), from the request alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetbr.core.request import RunRequest
from fleetbr.history.record import RunContext, run_options, start_recording
from fleetbr.inventory import HostSpec


def run_context(request: RunRequest, hosts: Sequence[HostSpec]) -> RunContext:
    """The context around one run of ``request`` on ``hosts`` (use it as a context manager)."""
    names = [spec.name for spec in hosts]
    recorder = start_recording(
        request.history.path, command=request.recorded_name, hosts=names,
        options=run_options(request, len(hosts)), selection=request.selection.limit,
        task=recorded_file(request), resumed_from=request.history.resumed_from,
    )  # fmt: skip
    metrics = request.metrics
    return RunContext(request.recorded_name, names, recorder=recorder, as_json=metrics.quiet,
                      metrics_file=metrics.file, labels=metrics.labels)  # fmt: skip


def recorded_file(request: RunRequest) -> Path | None:
    """The file the history records for the run (the task, ``run --script``'s script)."""
    return None if request.change is None else request.change.recorded_file
