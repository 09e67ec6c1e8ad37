"""The ``fleetbr run`` job for one host (:func:`adhoc_job`, which the engine's kind-less ``run``
command runs), and how its outcome becomes a :class:`HostResult`."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetbr.adhoc.spec import KILL_AFTER, RunSpec
from fleetbr.errors import CommandTimeout
from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult, Status
from fleetbr.transport import Captured, CommandOutput, OutputSink, Transport, open_session

if TYPE_CHECKING:
    from fleetbr.adhoc.present import StreamPrinter
    from fleetbr.runner import HostJob

TIMEOUT_SIGNAL = "ALRM"  # how run_exec.sh.j2 says "timeout ended the command"
STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class AdhocRun:
    """What plain ``fleetbr run`` sends to every host: the spec, and (``--stream``) the printer
    its output goes to as it comes."""

    spec: RunSpec
    printer: StreamPrinter | None = None


def adhoc_job(run: AdhocRun) -> HostJob:
    """The job for one host: run the spec, its output to the printer if there is one."""
    printer = run.printer

    async def job(host: HostSpec) -> HostResult:
        try:
            return await run_job(host, run.spec, printer.sink(host.name) if printer else None)
        finally:
            if printer is not None:
                printer.finish(host.name)

    return job


async def run_job(
    host: HostSpec,
    run: RunSpec,
    on_output: OutputSink | None = None,
    *,
    transport: Transport | None = None,
) -> HostResult:
    """Connect (over ``transport``, default: the current one), run ``run`` through its wrapper,
    and report what happened."""
    async with open_session(host, transport=transport) as conn:
        output = await conn.run_command(
            run.exec_line(host),
            stdin=run.payload,
            timeout=run.deadline_for(host),
            limit=run.max_output,
            on_output=on_output,
        )
    return host_result(host.name, output, run.timeout_for(host))


def host_result(name: str, output: CommandOutput, timeout: float) -> HostResult:
    """Status and message of one host's command; its output and exit as ``data``."""
    status, message = _outcome(output, timeout)
    signal = output.exit_signal if output.exit_signal != TIMEOUT_SIGNAL else None
    data = {"exit_status": output.exit_status, "signal": signal}
    data.update(output_fields(output.stdout, output.stderr))
    return HostResult(name, status, message, data=data)


def _outcome(output: CommandOutput, timeout: float) -> tuple[Status, str]:
    if isinstance(output.error, CommandTimeout):
        return Status.TIMED_OUT, (
            f"{output.error}: the host stopped answering; the command may still run there"
        )
    if output.error is not None:
        return Status.UNREACHABLE, str(output.error)
    if output.exit_signal == TIMEOUT_SIGNAL:
        return Status.TIMED_OUT, (
            f"timed out after {timeout:g}s: the host sent TERM to the command's process group "
            f"(KILL {KILL_AFTER:g}s later)"
        )
    if output.exit_signal is not None:
        return Status.FAILED, f"the command's shell was killed by signal {output.exit_signal}"
    if output.exit_status == 0:
        return Status.OK, "exit 0"
    return Status.FAILED, f"exit {output.exit_status}"


def output_fields(stdout: Captured, stderr: Captured) -> dict[str, Any]:
    """The JSON fields of both streams: text, exact bytes when they are not UTF-8, sizes."""
    fields: dict[str, Any] = {}
    for name, captured in zip(STREAMS, (stdout, stderr), strict=True):
        data = bytes(captured.data)
        try:
            fields[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            fields[name] = data.decode("utf-8", "replace")
            fields[f"{name}_base64"] = base64.b64encode(data).decode("ascii")
        fields[f"{name}_bytes"] = captured.size
        fields[f"{name}_truncated"] = captured.truncated
    return fields


def captured_bytes(data: dict[str, Any], name: str) -> bytes:
    """The exact bytes of stream ``name`` kept in a result's ``data`` (empty if none)."""
    encoded = data.get(f"{name}_base64")
    if encoded is not None:
        return base64.b64decode(encoded)
    text = data.get(name)
    return text.encode("utf-8") if isinstance(text, str) else b""
