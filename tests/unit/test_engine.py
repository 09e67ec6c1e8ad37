"""The run engine without SSH: a toy change kind registered with one line runs plan, apply and
check end to end through the assembler (fake runner; plan and check on faked facts, apply as the
real transaction on scripted hosts of the in-memory transport); every run is recorded with its
origin; bad input stops before any host; an API apply resumes."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

import fleetbr
import fleetbr.api as api
from fleetbr.core import kinds, runner
from fleetbr.core.assemble import execute, prepare
from fleetbr.core.request import ChangeRef, HistoryOptions, RolloutOptions, RunRequest, Selection
from fleetbr.core.runner import LocalRunner
from fleetbr.errors import UsageError
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.history.sqlite import SqliteStore
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.pacing import WindowPacer
from fleetbr.report import AggregatedResult, Status
from fleetbr.runner import HostJob, run_hosts
from fleetbr.transport import Session, use_transport
from tests.unit.fakehost import FakeHost, MemoryTransport, Reply, ending
from tests.unit.toykind.kind import ToyKind

FACTS = Path(__file__).resolve().parents[1] / "data" / "facts" / "armed.txt"
TASK = Path(__file__).resolve().parents[2] / "tasks" / "bridge.yaml"


def hosts(n: int) -> list[HostSpec]:
    return [HostSpec(f"h{i:02d}", f"203.0.113.{10 + i}", 22, "root", None, (), {"nic": "eth0"},
                     SSHOptions()) for i in range(n)]  # fmt: skip


class FakeRunner(LocalRunner):
    """Runs jobs in this process like the local runner, and remembers what it ran."""

    calls: ClassVar[list[tuple[str, list[str]]]] = []

    async def run(
        self, command: str, hosts: Sequence[HostSpec], job: HostJob, *, forks: int
    ) -> AggregatedResult:
        FakeRunner.calls.append((command, [spec.name for spec in hosts]))
        return await run_hosts(command, hosts, job, forks=forks)

    def pacer(self, forks: int) -> WindowPacer:
        return WindowPacer(forks)


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The toy kind and the fake runner, registered (one line each); facts and transactions
    faked: nothing is contacted."""
    kinds.register("toy", ToyKind)
    runner.register("fake", FakeRunner)
    FakeRunner.calls = []
    facts = parse_facts(FACTS.read_text())

    async def gather(conn: Session) -> HostFacts:
        return facts

    monkeypatch.setattr("fleetbr.core.assemble.gather", gather)
    yield
    kinds._registry.pop("toy", None)
    runner.RUNNERS.pop("fake", None)


@asynccontextmanager
async def no_connection(spec: HostSpec) -> AsyncIterator[Any]:
    yield None


def toy_request(command: str, history: Path, source: Any = "flag", **kw: Any) -> RunRequest:
    return RunRequest(command, Selection(hosts=tuple(hosts(3))), ChangeRef("toy", source),
                      history=HistoryOptions(path=history), origin="api", runner="fake",
                      **kw)  # fmt: skip


def recorded(history: Path) -> list[tuple[str, str, dict[str, str]]]:
    store = SqliteStore(history, create=False)
    try:
        runs = sorted(store.runs(), key=lambda run: run.id)
        return [
            (run.command, str(run.options.get("origin")),
             {row.host: row.status for row in store.hosts_of(run.id)})
            for run in runs
        ]  # fmt: skip
    finally:
        store.close()


def test_a_toy_kind_runs_plan_apply_and_check_through_the_engine(toy: Any, tmp_path: Path) -> None:
    """The apply runs the real transaction of each host's toy change on scripted hosts (the
    in-memory transport): each host confirms only the change rendered for it (the checksums of
    its staged scripts, which name its marker, must match)."""
    rendered = {spec.name: ToyKind().render("flag", spec, "toy") for spec in hosts(3)}
    scripted = {name: ending("confirmed", change) for name, change in rendered.items()}
    history = tmp_path / "h.sqlite3"
    from fleetbr.core.assemble import execute_async

    planned = asyncio.run(execute_async(toy_request("plan", history), connect=no_connection))
    assert planned.exit_code == 0 and planned.result["h01"].message == "mark flag-h01"
    with use_transport(MemoryTransport(scripted)):
        done = execute(toy_request("apply", history, rollout=RolloutOptions(canary=1)))
    assert done.exit_code == 0 and done.run_id > planned.run_id > 0
    assert done.result.counts() == {"confirmed": 3}
    for name, host in scripted.items():
        assert host.labels() == ["facts", "stage", "arm+apply", "facts", "disarm"]
        [stage] = [call.script for call in host.calls if call.label == "stage"]
        assert f"flag-{name}" in stage and all(
            f"flag-{other}" not in stage for other in scripted if other != name
        )
        assert host.left() == {}
    drift = asyncio.run(execute_async(toy_request("check", history), connect=no_connection))
    assert drift.result.counts() == {"drifted": 3} and drift.exit_code == 3
    assert FakeRunner.calls == [
        ("plan", ["h00", "h01", "h02"]), ("apply", ["h00"]), ("apply", ["h01", "h02"]),
        ("check", ["h00", "h01", "h02"]),
    ], "every job went through the request's runner, the canary alone"  # fmt: skip
    assert recorded(history) == [
        ("plan", "api", dict.fromkeys(["h00", "h01", "h02"], "planned")),
        ("apply", "api", dict.fromkeys(["h00", "h01", "h02"], "confirmed")),
        ("check", "api", dict.fromkeys(["h00", "h01", "h02"], "drifted")),
    ]


def test_bad_input_stops_before_any_host_and_records_nothing(toy: Any, tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite3"
    with pytest.raises(UsageError, match="toy: the marker must be a non-empty string"):
        execute(toy_request("apply", history, source=""))
    with pytest.raises(UsageError, match="no change kind 'nope' \\(known: .*bridge.*command"):
        execute(toy_request("apply", history).replace(change=ChangeRef("nope")))
    with pytest.raises(UsageError, match="no runner 'gone'"):
        execute(toy_request("check", history).replace(runner="gone"))
    with pytest.raises(UsageError, match="check: not supported by the command change kind"):
        prepare(toy_request("check", history).replace(change=ChangeRef("command")))
    assert FakeRunner.calls == [] and not history.exists()


def test_the_built_in_kinds_are_found_without_installing() -> None:
    assert {"bridge", "command"} <= set(kinds.names())
    assert kinds.get("bridge").commands == {"plan", "apply", "check"}


def fleet(*outcomes: str) -> dict[str, FakeHost]:
    """Scripted hosts h00, h01, h02 on which the bridge task's transaction ends as ``outcomes``
    say (:func:`tests.unit.fakehost.ending`; not ``confirmed``: the scripted facts never show
    the bridge, so a real bridge change would not confirm)."""
    kind = kinds.get("bridge")
    task = kind.load(TASK)
    return {spec.name: ending(outcome, kind.render(task, spec, TASK.name))
            for spec, outcome in zip(hosts(3), outcomes, strict=True)}  # fmt: skip


def contacted(scripted: dict[str, FakeHost]) -> list[str]:
    return [name for name, host in sorted(scripted.items()) if host.connects]


def test_an_api_apply_is_recorded_and_resumed(tmp_path: Path) -> None:
    """The first host rolls back, --max-failures 0 stops the rest; `resume=0` continues the
    run: the same task, the run's own batch size and threshold, only the hosts not done (h00
    again: a refusal is no failure; h01 rolls back; 0 failures allowed: h02 is not attempted).
    Real transactions on scripted hosts (the in-memory transport)."""
    history, group = tmp_path / "h.sqlite3", hosts(3)
    scripted = fleet("rolled_back", "rolled_back", "rolled_back")
    with use_transport(MemoryTransport(scripted)):
        first = api.apply(group, TASK, batch_size=1, max_failures=0, history=history)
    assert first.counts() == {"rolled_back": 1, "skipped": 2} and contacted(scripted) == ["h00"]
    scripted = fleet("refused", "rolled_back", "rolled_back")
    with use_transport(MemoryTransport(scripted)):
        with pytest.raises(UsageError, match="leave them out"):
            api.apply(group, None, resume=0, max_failures=1, history=history)
        assert contacted(scripted) == []
        second = api.apply(group, None, resume=0, history=history)
    assert second.counts() == {"refused": 1, "rolled_back": 1, "skipped": 1}
    assert contacted(scripted) == ["h00", "h01"]
    assert "more than --max-failures 0" in second["h02"].message
    assert all(host.left() == {} for host in scripted.values() if host.connects)
    store = SqliteStore(history, create=False)
    try:
        newest = store.runs(limit=1)[0]
        assert newest.resumed_from == 1 and newest.options["origin"] == "api"
        assert newest.options["max_failures_hosts"] == 0 and newest.task_path == str(TASK)
    finally:
        store.close()


ENGINE = ["core", "changes", "resume.py", "rollout.py", "history/record.py", "api.py", "watch.py",
          "nornir"]  # fmt: skip


def test_nothing_below_the_cli_imports_argparse() -> None:
    """The CLI turns its Namespace into a RunRequest once (fleetbr/cli_request.py)."""
    package = Path(fleetbr.__file__).parent
    files = [package / name for name in ENGINE if name.endswith(".py")]
    for folder in (name for name in ENGINE if not name.endswith(".py")):
        files += sorted((package / folder).rglob("*.py"))
    assert len(files) > len(ENGINE)
    importers = [
        str(path.relative_to(package)) for path in files
        if any(isinstance(node, ast.Import | ast.ImportFrom)
               and "argparse" in {getattr(node, "module", None), *(a.name for a in node.names)}
               for node in ast.walk(ast.parse(path.read_text())))
    ]  # fmt: skip
    assert importers == []


def test_the_cli_builds_one_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetbr.cli_args import parse_command_line
    from fleetbr.cli_request import request_from_args

    monkeypatch.delenv("FLEETBR_SCHEDULE", raising=False)

    words = ["-i", str(tmp_path), "-l", "rack-a", "--history", str(tmp_path / "h"), "apply",
             "t.yaml", "--canary", "1", "--max-failures", "10%"]  # fmt: skip
    args = parse_command_line(words)
    request = request_from_args(args)
    assert (request.command, request.origin, request.selection.limit) == ("apply", "cli", "rack-a")
    assert request.change == ChangeRef("bridge", Path("t.yaml"), recorded_file=Path("t.yaml"))
    assert request.rollout.canary == 1 and str(request.rollout.max_failures) != "None"
    assert request.history == HistoryOptions(path=tmp_path / "h")
    resumed = request_from_args(parse_command_line(["apply", "--resume", "4"]))
    assert resumed.change is None and resumed.history.resume == 4
    monkeypatch.setenv("FLEETBR_SCHEDULE", "nightly")
    scheduled = request_from_args(args)
    assert scheduled.origin == "schedule" and scheduled.metrics.labels["schedule"] == "nightly"


def test_a_plain_run_is_an_engine_command_without_a_kind(tmp_path: Path) -> None:
    """Plain ``fleetbr run`` (no --deadman): the engine's kind-less ``run`` command, each host's
    command over the transport through the request's runner, recorded like any run."""
    from fleetbr.adhoc.job import AdhocRun
    from fleetbr.adhoc.spec import RunOptions, RunSpec
    from fleetbr.core.assemble import ADHOC

    runner.register("fake", FakeRunner)
    FakeRunner.calls = []
    scripted = {spec.name: FakeHost().on("command", Reply(f"{spec.name}\n")) for spec in hosts(2)}
    scripted["h01"] = FakeHost().on("command", Reply("", stderr="no\n", exit_status=3))
    history = tmp_path / "h.sqlite3"
    adhoc = ChangeRef(ADHOC, AdhocRun(RunSpec.from_argv(["hostname"], RunOptions())))
    request = RunRequest("run", Selection(hosts=tuple(hosts(2))), adhoc, origin="api",
                         runner="fake", history=HistoryOptions(path=history))  # fmt: skip
    try:
        with use_transport(MemoryTransport(scripted)):
            done = execute(request)
    finally:
        runner.RUNNERS.pop("fake", None)
    assert FakeRunner.calls == [("run", ["h00", "h01"])]
    assert (done.result["h00"].status, done.result["h01"].status) == (Status.OK, Status.FAILED)
    assert done.result["h00"].data["stdout"] == "h00\n" and done.exit_code == 1
    assert [c.label for host in scripted.values() for c in host.calls] == ["command"] * 2
    assert recorded(history) == [("run", "api", {"h00": "ok", "h01": "failed"})]
    with pytest.raises(UsageError, match="run: no command given"):
        execute(request.replace(change=None))


def test_the_transaction_and_the_engine_import_no_change_kind() -> None:
    """A kind is one folder (fleetbr/changes/<kind>/) the transaction and the assembler reach
    only through the Change and ChangeKind protocols and the registry."""
    package = Path(fleetbr.__file__).parent
    files = sorted((package / "transaction").rglob("*.py")) + sorted(
        (package / "core").glob("*.py")
    )
    importers = [
        str(path.relative_to(package)) for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fleetbr.changes"))
        or (isinstance(node, ast.Import) and any(a.name.startswith("fleetbr.changes")
                                                for a in node.names))
    ]  # fmt: skip
    assert len(files) > 5 and importers == []


def test_per_host_changes_replace_the_rendering_and_must_cover_every_host(
    toy: Any, tmp_path: Path
) -> None:
    request = toy_request("apply", tmp_path / "h.sqlite3", source="")  # "" would not render
    kind = kinds.get("toy")
    mine = {spec.name: kind.render(kind.load("x"), spec, "mine") for spec in hosts(3)}
    prepared = prepare(request, changes=mine)
    assert prepared.changes == mine and prepared.kind is not None
    assert prepared.kind.name == "toy"
    with pytest.raises(UsageError, match="apply: no change given for host 'h02'"):
        prepare(request, changes={name: mine[name] for name in ("h00", "h01")})
