"""The command line's argument parser (``fleetbr --help``): every command and option, no
behaviour. The handlers live in :mod:`fleetbr.cli` (and :mod:`fleetbr.cli_history`)."""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleetbr import __version__
from fleetbr.errors import UsageError
from fleetbr.validate import show

DEFAULT_FORKS = 50


AFTER = "after_"  # dest prefix of a global option given after the command


def build_parser() -> argparse.ArgumentParser:
    """The argument parser. Global options go before or after the command (Ansible style):
    :func:`parse_command_line` merges the two positions."""
    parser = argparse.ArgumentParser(
        prog="fleetbr",
        description="Convert hypervisors to bridged networking over SSH, with a dead-man timer.",
        epilog="Global options may also follow the command (fleetbr apply TASK -l rack-a); one "
        "given in both places must have the same value there.",
    )
    parser.add_argument("--version", action="version", version=f"fleetbr {__version__}")
    _add_global_options(parser, prefix="")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", action=_Subparsers
    )
    commands.add_parser("inventory", help="list selected hosts and their connection settings")
    facts = commands.add_parser("facts", help="gather network facts from the selected hosts")
    facts.add_argument(
        "--show", type=_facts_sections, metavar="SECTIONS",
        help="print these sections as tables per host (comma separated: links, bridges, "
        "addresses, routes, rules, daemons, backends, guests, sysctls, files, or all); "
        "with --json, only these sections",
    )  # fmt: skip
    _add_lab_parser(commands)
    _add_change_parsers(commands)
    _add_run_parser(commands)
    _add_history_parsers(commands)
    _add_drift_parsers(commands)
    _add_worker_parser(commands)
    demo = commands.add_parser("demo", help="lab + cutover of every host, one deliberately cut off")
    demo.add_argument("--hosts", type=_positive_int, default=6, help="lab hosts (default 6)")
    demo.add_argument(
        "--distro", action="store_true",
        help="one real systemd host per network backend, persist: auto, one rebooted after confirm",
    )  # fmt: skip
    demo.add_argument(
        "--vm", action="store_true",
        help="Proxmox VE's layout on a QEMU VM managed on a VLAN behind a router VM: a cutting "
        "variant rolled back, then the layout confirmed (docs/topologies.md)",
    )  # fmt: skip
    demo.add_argument(
        "--sites", type=_positive_int, metavar="N",
        help="split the lab into N sites: redis-server, PostgreSQL, a worker per site and the "
        "coordinator (docs/scale.md)",
    )  # fmt: skip
    demo.add_argument("--dir", type=Path, default=Path("lab"), help="lab directory (./lab)")
    demo.add_argument("--task", type=Path, help="tasks/bridge.yaml (--vm: tasks/proxmox.yaml)")
    demo.add_argument(
        "--cut-task", type=Path, help="tasks/cut-off.yaml (--vm: tasks/proxmox-cut.yaml)"
    )
    demo.add_argument(
        "--timeout", type=_positive_int,
        help="dead-man timeout (20s; --distro 60s; --vm: the task's, the cutting variant's kept)",
    )  # fmt: skip
    demo.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    return parser


def _add_global_options(parser: argparse._ActionsContainer, *, prefix: str) -> None:
    """The global options, every default SUPPRESS: absent means not given (defaults come in
    :func:`parse_command_line`), so a subcommand never overwrites a value given before it."""

    def add(*flags: str, dest: str, **kwargs: Any) -> None:
        if kwargs.get("action") != "store_true":
            kwargs.setdefault("metavar", dest.upper())
        parser.add_argument(*flags, dest=prefix + dest, default=argparse.SUPPRESS, **kwargs)

    add("-i", "--inventory", dest="inventory", type=Path,
        help="inventory directory (hosts.yaml, groups.yaml, defaults.yaml); default ./inventory "
        "or $FLEETBR_INVENTORY")  # fmt: skip
    add("-l", "--limit", dest="limit",
        help="hosts: names, groups or globs (on either), comma separated; !TERM excludes, "
        "&TERM intersects (Ansible style); @failed:RUN (or @failed:last) the hosts that did not "
        "succeed in that run of the history")  # fmt: skip
    add("-f", "--forks", dest="forks", type=_positive_int,
        help=f"at most this many hosts at once (default {DEFAULT_FORKS})")  # fmt: skip
    add("--key", dest="key", help="SSH private key for every host (overrides the inventory)")
    add("--known-hosts", dest="known_hosts", help="known_hosts file (overrides the inventory)")
    add("--json", dest="json", action="store_true", help="one JSON document on stdout")
    add("-v", "--verbose", dest="verbose", action="store_true", help="debug logging on stderr")
    add("--history", dest="history", metavar="PATH|URL",
        help="run history: an SQLite file or a postgresql:// URL (default $FLEETBR_HISTORY, "
        "else $XDG_STATE_HOME/fleetbr/history.sqlite3 or ~/.local/state/fleetbr/"
        "history.sqlite3)")  # fmt: skip
    add("--no-history", dest="no_history", action="store_true",
        help="record nothing in the history")  # fmt: skip
    add("--metrics-file", dest="metrics_file", type=Path, metavar="PATH",
        help="write Prometheus text-format metrics of the run to PATH (atomic rename; for "
        "node_exporter's textfile collector)")  # fmt: skip


GLOBAL_FLAGS = {
    "inventory": "-i/--inventory", "limit": "-l/--limit", "forks": "-f/--forks", "key": "--key",
    "known_hosts": "--known-hosts", "json": "--json", "verbose": "-v/--verbose",
    "history": "--history", "no_history": "--no-history", "metrics_file": "--metrics-file",
}  # fmt: skip


def global_defaults() -> dict[str, object]:
    """Each global option's value when it is given nowhere."""
    defaults: dict[str, object] = dict.fromkeys(GLOBAL_FLAGS)
    defaults |= {"json": False, "verbose": False, "no_history": False, "forks": DEFAULT_FORKS}
    defaults["inventory"] = Path(os.environ.get("FLEETBR_INVENTORY", "inventory"))
    return defaults


def parse_command_line(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; a global option may come before or after the command.

    Given in both places with different values it is a UsageError (``-l canary apply T -l all``
    must not quietly pick one); otherwise the value given, wherever it was, else the default.
    """
    args = build_parser().parse_args(argv)
    found = vars(args)
    for dest, default in global_defaults().items():
        before, after = found.pop(dest, None), found.pop(AFTER + dest, None)
        if before is not None and after is not None and before != after:
            raise UsageError(
                f"{GLOBAL_FLAGS[dest]} is given before and after the command with different "
                f"values ({show(str(before))}, {show(str(after))}): give it once"
            )
        given = after if after is not None else before
        found[dest] = default if given is None else given
    return args


@functools.cache  # argparse copies a parent's actions into each child: one is enough
def _after_command() -> argparse.ArgumentParser:
    """A parent parser with the global options as a command takes them (dests ``after_*``)."""
    after = argparse.ArgumentParser(add_help=False)
    _add_global_options(after.add_argument_group("global options"), prefix=AFTER)
    return after


class _Subparsers(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Every command's parser also takes the global options, after the command."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A command's parser; one with subcommands of its own passes ``parents=[]`` and its
        subcommands take the global options instead (one place each, so none is overwritten)."""
        kwargs.setdefault("parents", [_after_command()])
        parser: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        return parser


def _add_lab_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = commands.add_parser(
        "lab", help="the built-in network-namespace lab of SSH hosts", parents=[]
    )
    lab_cmds = lab.add_subparsers(
        dest="lab_command", required=True, metavar="LAB_COMMAND", action=_Subparsers
    )
    up = lab_cmds.add_parser("up", help="bring up a lab")
    up.add_argument("--hosts", type=_positive_int, help="number of hosts (default 6; --vm 2)")
    up.add_argument("--nic", default="eth0", help="NIC name inside each host (default eth0)")
    up.add_argument(
        "--vm", action="store_true",
        help="boot QEMU VMs with Debian's kernel (bonds, VLANs; slow: docs/lab.md, VM tier)",
    )  # fmt: skip
    up.add_argument("--nics", type=_positive_int, help="with --vm: NICs per VM (default 2)")
    up.add_argument(
        "--router", action="store_true",
        help="with --vm (ifupdown2 hosts): a router VM, the hosts managed on VLAN 10 behind it "
        "(docs/lab.md, the router)",
    )  # fmt: skip
    up.add_argument(
        "--distro", help="boot real systemd hosts of this distro (debian12) instead of namespaces"
    )
    up.add_argument(
        "--backend",
        choices=("ifupdown", "networkd", "netplan", "networkmanager", "none", "ifupdown2", "mixed"),
        help="with --distro: what configures each host's NIC (default networkd; mixed: the four "
        "daemons in turn)",
    )  # fmt: skip
    up.add_argument(
        "--guests", type=int, default=0,
        help="with --distro: N tiny libvirt guests per host + one defined only (docs/guests.md)",
    )  # fmt: skip
    up.add_argument(
        "--dhcp", action="store_true",
        help="with --distro (networkd, netplan or NetworkManager hosts): a DHCP server on the "
        "switch gives each NIC its addresses as fixed leases (docs/lab.md, DHCP)",
    )  # fmt: skip
    up.add_argument(
        "--topology",
        choices=("single", "bond", "vlan", "vlan-aware", "dhcp", "multi", "mixed"),
        help="hosts in the before state of this uplink topology and a matching task in "
        "LAB/tasks/ (bond, vlan, vlan-aware, mixed need --vm; dhcp --distro: docs/lab.md)",
    )  # fmt: skip
    reboot = lab_cmds.add_parser("reboot", help="reboot a distro or VM lab host from outside")
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
    for parser in (plan, apply):
        _add_diff_option(parser)
    _add_rollout_options(apply, canary_default=None)
    _add_executor_option(apply)
    _add_list_hosts(apply)
    apply.add_argument(
        "--resume", nargs="?", const=0, type=_run_number, metavar="RUN",
        help="continue apply run RUN (default: the latest that left hosts unfinished) with its "
        "own task content, hosts, batches and thresholds (docs/history.md)",
    )  # fmt: skip
    apply.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="at the end, write the run's HTML report (docs/report.md)",
    )
    commands.add_parser("status", help="fleetbr transactions recorded on the hosts")
    commands.add_parser(
        "rollback",
        help="roll back the armed (live or stale) transaction on the selected hosts now",
    )


def _add_diff_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--diff", action="store_true",
        help="show each host's change as before/after: runtime network and unified diffs of "
        "the files written (docs/diff.md)",
    )  # fmt: skip


def _add_rollout_options(
    parser: argparse._ActionsContainer, canary_default: int | None = 0
) -> None:
    from fleetbr.counts import batch_size_arg, max_failures_arg

    parser.add_argument("--canary", type=int, default=canary_default,
                        help="hosts in a first, lone batch")  # fmt: skip
    parser.add_argument(
        "--batch-size", type=batch_size_arg, metavar="N|P%",
        help="hosts per batch, or a percentage of the selected hosts, rounded up (default: all); "
        "a comma list (1,10%%,50%%) gives the batches after the canary these sizes in turn, the "
        "last repeating",
    )  # fmt: skip
    parser.add_argument(
        "--max-failures", type=max_failures_arg, default=None, metavar="N|P%",
        help="stop starting new batches once more than this many hosts (or this percentage of the "
        "selected hosts, rounded up) failed (default: no limit; a canary that is not confirmed "
        "always stops the rollout)",
    )  # fmt: skip


def _add_list_hosts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--list-hosts", action="store_true",
        help="print the hosts the command would run on, batch by batch (apply: canary first), "
        "and stop: no host is contacted, nothing is recorded",
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
    shown = run.add_mutually_exclusive_group()  # how the output is shown: one way at a time
    shown.add_argument(
        "--stream", action="store_true",
        help="print lines as they arrive, prefixed with the host name (no grouping)",
    )  # fmt: skip
    shown.add_argument(
        "-o", "--one-line", action="store_true",
        help="pdsh style, after the run: every output line as `HOST: LINE` (stderr lines "
        "`HOST:stderr: LINE`), for sort and grep; the summary on stderr",
    )  # fmt: skip
    shown.add_argument(
        "--tree", type=Path, metavar="DIR",
        help="write DIR/HOST/stdout, stderr, rc and status (raw bytes, files 0600); DIR must be "
        "new or empty",
    )  # fmt: skip
    shown.add_argument(
        "--diff", action="store_true",
        help="group identical outputs and show each group's unified diff against the largest",
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
    _add_list_hosts(run)
    run.add_argument("argv", nargs="*", metavar="CMD", help="-- CMD [ARG...]")


def _add_executor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor", choices=("local", "celery"), default=None,
        help="where the hosts' work runs: this process (local, the default) or the site workers "
        "on Celery (celery; default $FLEETBR_EXECUTOR; docs/scale.md)",
    )  # fmt: skip


def _add_worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "worker", help="run a Celery site worker: the hosts of SITE in this inventory "
        "(docs/scale.md)",
    )  # fmt: skip
    worker.add_argument("--site", required=True, help="the site whose queue it consumes")
    worker.add_argument("--concurrency", type=_positive_int, default=1,
                        help="chunks at once (processes; default 1)")  # fmt: skip


def _add_drift_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``check``, ``watch`` and ``schedule`` (docs/drift.md)."""
    check = commands.add_parser(
        "check", help="read-only: is every host still what TASK made it? (exit 0 in sync, "
        "3 drift found, 1 could not check)",
    )  # fmt: skip
    check.add_argument("task", type=Path, help="task file (YAML)")
    _add_executor_option(check)
    _add_list_hosts(check)
    _add_diff_option(check)
    watch = commands.add_parser(
        "watch", help="check (or repair) every --every, in the foreground, until SIGTERM",
    )  # fmt: skip
    watch.add_argument("task", type=Path, help="task file (YAML)")
    _add_schedule_options(watch)
    schedule = commands.add_parser(
        "schedule", help="a systemd timer that checks or repairs", parents=[]
    )
    sched = schedule.add_subparsers(
        dest="schedule_command", required=True, metavar="SUBCOMMAND", action=_Subparsers
    )
    install = sched.add_parser("install", help="write and enable a timer + service")
    install.add_argument("task", type=Path, help="task file (YAML)")
    _add_schedule_options(install)
    install.add_argument("--name", help="schedule name (default: TASK's name, the selection "
                         "and check/repair)")  # fmt: skip
    install.add_argument("--force", action="store_true",
                         help="replace another schedule of the same name")  # fmt: skip
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


def _facts_sections(text: str) -> tuple[str, ...]:
    from fleetbr.facts.show import parse_sections

    try:
        return parse_sections(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _add_history_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser("history", help="runs recorded in the run history")
    history.add_argument(
        "--host", dest="history_hosts", metavar="HOST",
        help="only these hosts' rows (as -l: names, globs, groups of the inventory, ! and &)",
    )  # fmt: skip
    history.add_argument(
        "--since", metavar="WHEN",
        help="only runs since WHEN: 30m, 2h, 7d, 2024-05-01, 2024-05-01T12:00",
    )  # fmt: skip
    history.add_argument(
        "--command", dest="history_command", metavar="C",
        help="only runs of this command (apply, check, plan, rollback, run, status; a watch "
        "period is a check or apply run)",
    )  # fmt: skip
    history.add_argument(
        "--last", type=_positive_int, default=50, metavar="N",
        help="at most N runs or rows, newest first (default 50)",
    )  # fmt: skip
    show = commands.add_parser("show", help="one run of the history, host by host")
    show.add_argument("run", metavar="RUN", help="run number (see `fleetbr history`) or 'last'")
    show.add_argument(
        "--html", type=Path, metavar="FILE", help="write the run as an HTML report (docs/report.md)"
    )


def _run_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run number (see `fleetbr history`)")
    return int(text)
