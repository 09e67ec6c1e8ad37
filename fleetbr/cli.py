"""Command line: ``fleetbr [-i INV] [-l LIMIT] [-f N] [--key K] [--known-hosts F] [--json] CMD``.

Exit codes: 0 every host succeeded; 1 some host failed; 2 usage, inventory or task error (nothing
was contacted); 3 ``check``: drift found (every host checked, none failed); 141 stdout was closed
early (``fleetbr --json facts | head``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetbr import __version__
from fleetbr.errors import FleetbrError, UsageError
from fleetbr.inventory import (
    HostSpec,
    apply_overrides,
    check_client_keys,
    load_inventory,
    select_hosts,
)
from fleetbr.output import Human, error, plain, print_json, render_results, warning
from fleetbr.validate import clip

if TYPE_CHECKING:
    from fleetbr.history.record import RunContext
    from fleetbr.history.store import Store
    from fleetbr.lab import Lab
    from fleetbr.resume import Prior

# Each command imports what only it needs inside its handler: every run pays the CLI's start-up,
# and `fleetbr facts` must stay close to a bare asyncssh script (docs/benchmarks.md).

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # 3: drift found (fleetbr.report.EXIT_DRIFT)
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE (128 + 13)
DEFAULT_FORKS = 50

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (global options first, Ansible style)."""
    parser = argparse.ArgumentParser(
        prog="fleetbr",
        description="Convert hypervisors to bridged networking over SSH, with a dead-man timer.",
    )
    parser.add_argument("--version", action="version", version=f"fleetbr {__version__}")
    parser.add_argument(
        "-i", "--inventory", type=Path,
        default=Path(os.environ.get("FLEETBR_INVENTORY", "inventory")),
        help="inventory directory (hosts.yaml, groups.yaml, defaults.yaml); default ./inventory "
        "or $FLEETBR_INVENTORY",
    )  # fmt: skip
    parser.add_argument("-l", "--limit", help="hosts: names, groups or globs, comma separated")
    parser.add_argument(
        "-f", "--forks", type=_positive_int, default=DEFAULT_FORKS,
        help=f"at most this many hosts at once (default {DEFAULT_FORKS})",
    )  # fmt: skip
    parser.add_argument("--key", help="SSH private key for every host (overrides the inventory)")
    parser.add_argument("--known-hosts", help="known_hosts file (overrides the inventory)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    _add_history_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("inventory", help="list selected hosts and their connection settings")
    commands.add_parser("facts", help="gather network facts from the selected hosts")
    _add_lab_parser(commands)
    _add_change_parsers(commands)
    _add_run_parser(commands)
    _add_history_parsers(commands)
    _add_drift_parsers(commands)
    demo = commands.add_parser("demo", help="lab + cutover of every host, one deliberately cut off")
    demo.add_argument("--hosts", type=_positive_int, default=6, help="lab hosts (default 6)")
    demo.add_argument(
        "--distro", action="store_true",
        help="one real systemd host per network backend, persist: auto, one rebooted after confirm",
    )  # fmt: skip
    demo.add_argument("--dir", type=Path, default=Path("lab"), help="lab directory (./lab)")
    demo.add_argument("--task", type=Path, default=Path("tasks/bridge.yaml"))
    demo.add_argument("--cut-task", type=Path, default=Path("tasks/cut-off.yaml"))
    demo.add_argument("--timeout", type=_positive_int, help="dead-man timeout (20s; --distro 60s)")
    demo.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    return parser


def _add_lab_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = commands.add_parser("lab", help="the built-in network-namespace lab of SSH hosts")
    lab_cmds = lab.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")
    up = lab_cmds.add_parser("up", help="bring up a lab")
    up.add_argument("--hosts", type=_positive_int, default=6, help="number of hosts (default 6)")
    up.add_argument("--nic", default="eth0", help="NIC name inside each host (default eth0)")
    up.add_argument(
        "--distro", help="boot real systemd hosts of this distro (debian12) instead of namespaces"
    )
    up.add_argument(
        "--backend",
        choices=("ifupdown", "networkd", "netplan", "networkmanager", "none", "mixed"),
        help="with --distro: what configures each host's NIC (default networkd; mixed: the four "
        "daemons in turn)",
    )  # fmt: skip
    up.add_argument(
        "--guests", type=int, default=0,
        help="with --distro: N tiny libvirt guests per host + one defined only (docs/guests.md)",
    )  # fmt: skip
    reboot = lab_cmds.add_parser("reboot", help="reboot a distro lab host from outside")
    reboot.add_argument("host", help="the host's name (hv01)")
    reboot.add_argument("--hard", action="store_true", help="a power cut: no clean shutdown")
    status, down = (lab_cmds.add_parser(name, help=f"lab {name}") for name in ("status", "down"))
    for sub in (up, status, down, reboot):
        sub.add_argument("--dir", type=Path, default=Path("lab"), help="lab directory (./lab)")


def _add_change_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = commands.add_parser("plan", help="dry run: show what TASK would change")
    plan.add_argument("task", type=Path, help="task file (YAML)")
    apply = commands.add_parser("apply", help="apply TASK under the dead-man timer")
    apply.add_argument("task", type=Path, nargs="?", help="task file (YAML)")
    _add_rollout_options(apply, canary_default=None)
    apply.add_argument(
        "--resume", nargs="?", const=0, type=_run_number, metavar="RUN",
        help="continue apply run RUN (default: the latest that left hosts unfinished) with its "
        "own task content, hosts, batches and thresholds (docs/history.md)",
    )  # fmt: skip
    commands.add_parser("status", help="fleetbr transactions recorded on the hosts")
    commands.add_parser(
        "rollback",
        help="roll back the armed (live or stale) transaction on the selected hosts now",
    )


def _add_rollout_options(
    parser: argparse._ActionsContainer, canary_default: int | None = 0
) -> None:
    from fleetbr.counts import batch_size_arg, max_failures_arg

    parser.add_argument("--canary", type=int, default=canary_default,
                        help="hosts in a first, lone batch")  # fmt: skip
    parser.add_argument(
        "--batch-size", type=batch_size_arg, metavar="N|P%",
        help="hosts per batch, or a percentage of the selected hosts, rounded up (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--max-failures", type=max_failures_arg, default=None, metavar="N|P%",
        help="stop starting new batches once more than this many hosts (or this percentage of the "
        "selected hosts, rounded up) failed (default: no limit; a canary that is not confirmed "
        "always stops the rollout)",
    )  # fmt: skip


def _add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run", help="run a command (or a local script) on the selected hosts",
        description="One CMD argument is a shell command line, used as is "
        "(run -- 'ip -br link | head'); several are words, each quoted: "
        "run -- printf '%s\\n' '$(x)' prints $(x). See docs/run.md.",
    )  # fmt: skip
    run.add_argument("--script", type=Path, help="send this local file to `sh -s` on stdin")
    run.add_argument(
        "--timeout", type=float, metavar="S",
        help="seconds (default: the inventory's command_timeout); then the host sends TERM, "
        "and KILL 5 s later, to everything the command started",
    )  # fmt: skip
    run.add_argument("--sudo", action="store_true", help="run through `sudo -n` (as root)")
    run.add_argument(
        "--stream", action="store_true",
        help="print lines as they arrive, prefixed with the host name (no grouping)",
    )  # fmt: skip
    run.add_argument(
        "--max-output", type=int, default=1024 * 1024, metavar="BYTES",
        help="bytes of stdout and of stderr kept per host (default 1 MiB; the rest is counted)",
    )  # fmt: skip
    deadman = run.add_argument_group(
        "under the dead-man timer (docs/run.md): CMD runs detached on the host; unless fleetbr "
        "confirms it over a fresh connection in time, the host runs UNDO by itself"
    )
    deadman.add_argument("--deadman", type=_positive_int, metavar="N",
                         help="dead-man timeout in seconds")  # fmt: skip
    deadman.add_argument("--undo", metavar="UNDO", help="shell command line that reverts CMD")
    deadman.add_argument(
        "--confirm-check", metavar="CMD2",
        help="shell command line on the host that must exit 0 to confirm",
    )  # fmt: skip
    _add_rollout_options(deadman)
    run.add_argument("argv", nargs="*", metavar="CMD", help="-- CMD [ARG...]")


def _add_drift_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``check``, ``watch`` and ``schedule`` (docs/drift.md)."""
    check = commands.add_parser(
        "check", help="read-only: is every host still what TASK made it? (exit 0 in sync, "
        "3 drift found, 1 could not check)",
    )  # fmt: skip
    check.add_argument("task", type=Path, help="task file (YAML)")
    watch = commands.add_parser(
        "watch", help="check (or repair) every --every, in the foreground, until SIGTERM",
    )  # fmt: skip
    watch.add_argument("task", type=Path, help="task file (YAML)")
    _add_schedule_options(watch)
    schedule = commands.add_parser("schedule", help="a systemd timer that checks or repairs")
    sched = schedule.add_subparsers(dest="schedule_command", required=True, metavar="SUBCOMMAND")
    install = sched.add_parser("install", help="write and enable a timer + service")
    install.add_argument("task", type=Path, help="task file (YAML)")
    _add_schedule_options(install)
    install.add_argument("--name", help="schedule name (default: TASK's name and check/repair)")
    install.add_argument("--metrics-file", type=Path, help="passed on to the scheduled command")
    remove = sched.add_parser("remove", help="stop, disable and delete a schedule's units")
    remove.add_argument("name", help="schedule name (see schedule list)")
    listing = sched.add_parser("list", help="the schedules fleetbr installed")
    for sub in (install, remove, listing):
        sub.add_argument(
            "--user",
            action="store_true",
            help="user units (~/.config/systemd/user); the default when not root",
        )
        sub.add_argument("--root", type=Path,
                         help="operate on the system units under this root directory (offline, "
                         "like systemctl --root)")  # fmt: skip


def _add_schedule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--every", required=True, metavar="DURATION",
                        help="period: Ns, Nm, Nh or 1d (e.g. 15m)")  # fmt: skip
    parser.add_argument("--repair", action="store_true",
                        help="apply instead of check: drifted hosts are repaired under the "
                        "dead-man timer")  # fmt: skip


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def selected_hosts(args: argparse.Namespace, *, connecting: bool = True) -> list[HostSpec]:
    """Load the inventory, apply -l and the CLI overrides; check the keys of hosts to contact."""
    hosts = select_hosts(load_inventory(args.inventory), args.limit)
    if connecting:
        check_client_keys(args.inventory, hosts, args.key)
    return apply_overrides(hosts, key=args.key, known_hosts=args.known_hosts)


def cmd_inventory(args: argparse.Namespace) -> int:
    """``fleetbr inventory``."""
    hosts = selected_hosts(args, connecting=False)
    if args.json:
        print_json({spec.name: spec.public_view() for spec in hosts})
        return EXIT_OK
    out = Human()
    for spec in hosts:
        out.line(spec.name, style="bold")
        for key, value in spec.public_view().items():
            out.line(f"  {key}: {value}")
    out.line(f"{len(hosts)} host(s)")
    return EXIT_OK


def cmd_facts(args: argparse.Namespace) -> int:
    """``fleetbr facts``."""
    from fleetbr.facts.gather import facts_job
    from fleetbr.runner import run_hosts

    hosts = selected_hosts(args)
    aggregated = asyncio.run(run_hosts("facts", hosts, facts_job, forks=args.forks))
    render_results(aggregated, as_json=args.json)
    return aggregated.exit_code


def cmd_lab(args: argparse.Namespace) -> int:
    """``fleetbr lab up|status|down|reboot``."""
    from fleetbr import lab

    out = Human()
    if args.lab_command == "reboot":
        from fleetbr.lab import distro

        distro.reboot(lab.load(args.dir.resolve()), args.host, hard=args.hard)
        out.line(f"lab reboot: {args.host} is back")
        return EXIT_OK
    if args.lab_command == "up":
        built = _lab_up(args)
        if args.json:
            print_json(
                {
                    h.name: {"address": h.addr4, "address6": h.addr6}
                    | ({"backend": h.backend} if h.backend else {})
                    for h in built.hosts
                }
            )
        else:
            out.line(f"lab up: {len(built.hosts)} hosts in {built.dir}")
            out.line(f"  fleetbr -i {built.inventory_dir} facts")
        return EXIT_OK
    if args.lab_command == "down":
        lab.down(args.dir.resolve())
        out.line(f"lab down: {args.dir}")
        return EXIT_OK
    rows = lab.status(args.dir.resolve())
    healthy = all(row.sshd_alive and row.ssh_port_open for row in rows)
    if args.json:
        print_json({row.name: vars(row) for row in rows})
    else:
        for row in rows:
            out.line(f"{row.name}: {vars(row)}")
    return EXIT_OK if healthy else EXIT_FAILED


def _lab_up(args: argparse.Namespace) -> Lab:
    from fleetbr import lab

    if args.distro is None:
        if args.backend is not None:
            raise UsageError("lab up: --backend needs --distro (network-namespace hosts have none)")
        if args.guests:
            raise UsageError("lab up: --guests needs --distro (libvirt runs on distro hosts)")
        return lab.up(args.dir.resolve(), hosts=args.hosts, nic=args.nic)
    from fleetbr.lab import distro

    backend = args.backend or "networkd"
    return distro.up(
        args.dir.resolve(),
        hosts=args.hosts,
        backend=backend,
        distro=args.distro,
        nic=args.nic,
        guests=args.guests,
    )


def cmd_change(args: argparse.Namespace) -> int:
    """``fleetbr plan|apply|status|rollback``."""
    from fleetbr.rollout import Interruption, render_all, run_change_command

    prior = None
    if args.command == "apply" and args.resume is not None:
        prior, hosts = _prepare_resume(args)
    else:
        if args.command == "apply" and args.task is None:
            raise UsageError("apply: TASK is required (or --resume [RUN])")
        hosts = selected_hosts(args)
    tasks = render_all(args.task, hosts) if args.command in ("plan", "apply") else None
    interrupt = Interruption()
    with _run_context(args, hosts, resumed_from=prior.run_id if prior else None) as context:
        aggregated = run_change_command(args, hosts, tasks=tasks, observer=context.observer,
                                        interrupt=interrupt, prior=prior)  # fmt: skip
        code = EXIT_INTERRUPTED if interrupt.requested else aggregated.exit_code
        context.done(code, interrupted=interrupt.requested)
        context.stop_display()
        render_results(aggregated, as_json=args.json)
    _resume_hint(args, context, aggregated)
    return code


def cmd_check(args: argparse.Namespace) -> int:
    """``fleetbr check``."""
    from fleetbr.drift import render_tasks, run_check

    hosts = selected_hosts(args)
    tasks = render_tasks(args.task, hosts)
    aggregated = asyncio.run(run_check(hosts, tasks, forks=args.forks))
    render_results(aggregated, as_json=args.json)
    return aggregated.exit_code


def cmd_watch(args: argparse.Namespace) -> int:
    """``fleetbr watch``."""
    from fleetbr.watch import watch_from_args

    return watch_from_args(args, selected_hosts(args))


def cmd_schedule(args: argparse.Namespace) -> int:
    """``fleetbr schedule install|list|remove``."""
    from fleetbr.schedule import Cli, schedule_command

    return schedule_command(args, Cli(selected_hosts, build_parser, DEFAULT_FORKS))


def cmd_run(args: argparse.Namespace) -> int:
    """``fleetbr run``."""
    from fleetbr.adhoc.main import run_adhoc, spec_from_args

    spec = spec_from_args(args)
    if args.deadman is not None or args.undo is not None or args.confirm_check is not None:
        from fleetbr.adhoc.deadman import command_change, run_deadman

        command_change(args, spec)  # a usage error before anything is recorded
        hosts = selected_hosts(args)
        with _run_context(args, hosts) as context:
            code = run_deadman(args, spec, hosts, observer=context.observer)
            context.done(code, interrupted=code == EXIT_INTERRUPTED)
        return code
    hosts = selected_hosts(args)
    with _run_context(args, hosts) as context:
        code = run_adhoc(spec, hosts, forks=args.forks, as_json=args.json, stream=args.stream,
                         observer=context.observer)  # fmt: skip
        context.done(code)
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    """``fleetbr demo``."""
    if args.distro:
        from fleetbr.demo_distro import run_distro_demo

        return run_distro_demo(args.dir.resolve(), task=args.task, timeout=args.timeout or 60,
                               keep=args.keep, as_json=args.json)  # fmt: skip
    from fleetbr.demo import run_demo

    return run_demo(
        args.dir.resolve(), hosts=args.hosts, task=args.task, cut_task=args.cut_task,
        timeout=args.timeout or 20, keep=args.keep,
    )  # fmt: skip


# -- run history, resume, progress and metrics (docs/history.md) ---------------------------------

EXIT_INTERRUPTED = 130  # a first Ctrl-C: every host reported, some never started


def _add_history_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--history", type=Path, metavar="PATH",
        help="run history database (default $FLEETBR_HISTORY, else "
        "$XDG_STATE_HOME/fleetbr/history.sqlite3 or ~/.local/state/fleetbr/history.sqlite3)",
    )  # fmt: skip
    parser.add_argument("--no-history", action="store_true", help="record nothing in the history")
    parser.add_argument(
        "--metrics-file", type=Path, metavar="PATH",
        help="write Prometheus text-format metrics of the run to PATH (atomic rename; for "
        "node_exporter's textfile collector)",
    )  # fmt: skip


def _add_history_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser("history", help="runs recorded in the run history")
    history.add_argument(
        "-l", "--host", dest="history_hosts", metavar="HOST",
        help="only these hosts' rows (names or globs, comma separated)",
    )  # fmt: skip
    history.add_argument(
        "--since", metavar="WHEN",
        help="only runs since WHEN: 30m, 2h, 7d, 2024-05-01, 2024-05-01T12:00",
    )  # fmt: skip
    history.add_argument(
        "--command", dest="history_command", metavar="C",
        help="only runs of this command (apply, plan, status, rollback, run)",
    )  # fmt: skip
    history.add_argument(
        "--last", type=_positive_int, default=50, metavar="N",
        help="at most N runs or rows, newest first (default 50)",
    )  # fmt: skip
    show = commands.add_parser("show", help="one run of the history, host by host")
    show.add_argument("run", metavar="RUN", help="run number (see `fleetbr history`) or 'last'")
    for sub in (history, show):  # --json after the command too; SUPPRESS keeps a global --json
        sub.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="one JSON document on stdout")  # fmt: skip


def _run_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run number (see `fleetbr history`)")
    return int(text)


def _history_path(args: argparse.Namespace) -> Path | None:
    from fleetbr.history.record import history_path

    return history_path(args.history, args.no_history)


def _run_context(args: argparse.Namespace, hosts: Sequence[HostSpec], *,
                 resumed_from: int | None = None) -> RunContext:  # fmt: skip
    """History, live progress and metrics around one run (see fleetbr.history.record)."""
    from fleetbr.history.record import RunContext, run_options, start_recording

    task = getattr(args, "task", None) or getattr(args, "script", None)
    recorder = start_recording(
        _history_path(args), command=args.command, hosts=[h.name for h in hosts],
        options=run_options(args, len(hosts)), selection=args.limit, task=task,
        resumed_from=resumed_from,
    )  # fmt: skip
    quiet = args.json or getattr(args, "stream", False)  # --stream prints lines as they come
    return RunContext(args.command, [h.name for h in hosts], recorder=recorder,
                      as_json=quiet, metrics_file=args.metrics_file)  # fmt: skip


def _prepare_resume(args: argparse.Namespace) -> tuple[Prior, list[HostSpec]]:
    from fleetbr.resume import prepare_resume

    return prepare_resume(args, _history_path(args), lambda: selected_hosts(args))


def _resume_hint(
    args: argparse.Namespace, context: RunContext, aggregated: Mapping[str, Any]
) -> None:
    """After an apply that left hosts unfinished, say how to continue it (stderr)."""
    recorder = context.recorder
    if args.command != "apply" or recorder is None or recorder.failed or not recorder.run_id:
        return
    if any(result.status.value == "skipped" for result in aggregated.values()):
        warning(f"run {recorder.run_id} left hosts not attempted; continue it with "
                f"`fleetbr apply --resume {recorder.run_id}` (docs/history.md)")  # fmt: skip


def cmd_history(args: argparse.Namespace) -> int:
    """``fleetbr history``."""
    from fleetbr.history.present import show_history

    with _open_history(args) as store:
        if store is not None:
            show_history(
                store, hosts=args.history_hosts or args.limit, since=args.since,
                command=args.history_command, last=args.last, as_json=args.json,
            )  # fmt: skip
        elif args.json:
            print_json({"runs": []})
        else:
            Human().line(f"no runs recorded yet in {_history_path(args)}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``fleetbr show RUN``."""
    from fleetbr.history.present import run_number, show_run

    with _open_history(args) as store:
        if store is None:
            raise UsageError("no run history yet")
        show_run(store, run_number(args.run, store), as_json=args.json)
    return EXIT_OK


@contextmanager
def _open_history(args: argparse.Namespace) -> Iterator[Store | None]:
    """The history for reading (None: none recorded yet); unreadable: HistoryError (exit 1)."""
    import sqlite3

    from fleetbr.history.store import HistoryError, Store

    path = _history_path(args)
    if path is None:
        raise UsageError("--no-history: there is no history to read")
    if not path.exists():
        yield None
        return
    store = Store(path, create=False)
    try:
        yield store
    except sqlite3.Error as exc:
        raise HistoryError(f"{path}: {exc}") from None
    finally:
        store.close()


HANDLERS: dict[str, Handler] = {
    "demo": cmd_demo,
    "inventory": cmd_inventory,
    "facts": cmd_facts,
    "lab": cmd_lab,
    "plan": cmd_change,
    "apply": cmd_change,
    "status": cmd_change,
    "rollback": cmd_change,
    "run": cmd_run,
    "history": cmd_history,
    "show": cmd_show,
    "check": cmd_check,
    "watch": cmd_watch,
    "schedule": cmd_schedule,
}


class OneLineFormatter(logging.Formatter):
    """Log records as single plain lines; tracebacks only with ``-v`` (the report has the error)."""

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        """One line, control characters escaped; with ``-v``, the traceback follows as is."""
        line = plain(record.getMessage())
        head = f"{self.formatTime(record)} {record.name} {record.levelname} {line}"
        if record.exc_info and record.exc_info[1] is not None:
            if self.tracebacks:
                return head + "\n" + self.formatException(record.exc_info)
            exc = record.exc_info[1]
            head += plain(f": {type(exc).__name__}: {clip(str(exc))} (-v shows the traceback)")
        return head


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(tracebacks=args.verbose))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        handlers=[handler])  # fmt: skip
    try:
        code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as the Python docs recommend; point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        with suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return HANDLERS[args.command](args)
    except UsageError as exc:
        error(exc)
        return EXIT_USAGE
    except FleetbrError as exc:
        error(exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        error(
            "interrupted: hosts already armed roll back by themselves when their timers fire; "
            "`fleetbr status` shows where each host stands; `fleetbr apply --resume` continues "
            "an interrupted apply"
        )
        return EXIT_INTERRUPTED
