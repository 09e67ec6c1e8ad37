"""The command line's argument parser (``fleetbr --help``): every command and option, no
behaviour. The handlers live in :mod:`fleetbr.cli` (and :mod:`fleetbr.cli_history`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fleetbr import __version__

DEFAULT_FORKS = 50


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
    install.add_argument("--name", help="schedule name (default: TASK's name, the selection "
                         "and check/repair)")  # fmt: skip
    install.add_argument("--force", action="store_true",
                         help="replace another schedule of the same name")  # fmt: skip
    install.add_argument("--metrics-file", type=Path, default=argparse.SUPPRESS,
                         help="passed on to the scheduled command")  # fmt: skip
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
