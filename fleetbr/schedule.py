"""``fleetbr schedule install|list|remove``: a systemd timer + service on the controller that runs
``fleetbr check`` (or ``apply`` with ``--repair``) every period (docs/drift.md).

Units go to /etc/systemd/system (root), ~/.config/systemd/user (``--user``, the default for
other users) or ROOT/etc/systemd/system (``--root``, offline, like ``systemctl --root``).
Enabling is the symlink ``systemctl enable`` would make (timers.target.wants), so it works with
no systemd running; when systemd does run (and no ``--root``), the manager is reloaded and the
timer started. Nothing else on the machine is touched.

Quoting (systemd.syntax(7), systemd.service(5)): every ExecStart word is double-quoted, with
``\\`` and ``"`` backslash-escaped, control characters as ``\\xNN`` and ``%`` doubled (specifiers
are expanded after unquoting). The command line starts with ``:``, so systemd expands no ``$``
in it. systemd refuses quotes, backslashes and control characters in the executable's path
itself: such a path is refused here, as is text that is not UTF-8.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetbr.core.assemble import render_change
from fleetbr.core.request import ChangeRef
from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.output import Human, plain, print_json, warning
from fleetbr.render import render
from fleetbr.watch import duration_text, parse_every

PREFIX = "fleetbr-"
MARKER = "# fleetbr-schedule "
WANTS = "timers.target.wants"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SYSTEMCTL_TIMEOUT = 30


@dataclass(frozen=True)
class Schedule:
    """One installed schedule, as its timer's marker line records it."""

    name: str
    mode: str  # check | repair
    every: int  # seconds
    calendar: str
    task: str
    inventory: str
    limit: str | None
    command: list[str]


# --- quoting and the calendar ---------------------------------------------------------------


def _utf8(word: str) -> str:
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{plain(word)!r} is not UTF-8 text; systemd units must be") from None
    return word


def systemd_word(word: str) -> str:
    """``word`` as one double-quoted ExecStart argument that systemd turns back into ``word``."""
    out = []
    for char in _utf8(word):
        if char in '\\"':
            out.append("\\" + char)
        elif char == "%":
            out.append("%%")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def exec_line(argv: list[str]) -> str:
    """The ExecStart value for ``argv``: ``:`` (no ``$`` expansion), every word quoted."""
    executable = argv[0]
    if not executable.startswith("/") or any(
        c in "\\\"'" or ord(c) < 0x20 or ord(c) == 0x7F for c in executable
    ):
        raise UsageError(
            f"the Python running fleetbr ({plain(executable)!r}) is not a path systemd can run "
            "(absolute, without quotes, backslashes or control characters)"
        )
    return " ".join([systemd_word(":" + executable), *(systemd_word(w) for w in argv[1:])])


def calendar(every: int) -> str:
    """The OnCalendar= expression firing every ``every`` seconds (Persistent= needs a calendar
    timer, and a calendar repeats within each minute, hour or day, so the period must divide
    it)."""
    if every == 86400:
        return "*-*-* 00:00:00"
    if every % 3600 == 0 and 24 % (every // 3600) == 0:
        return f"*-*-* 00/{every // 3600}:00:00"
    if every % 60 == 0 and 60 % (every // 60) == 0:
        return f"*-*-* *:00/{every // 60}:00"
    if every < 60 and 60 % every == 0:
        return f"*-*-* *:*:00/{every}"
    raise UsageError(
        f"--every {duration_text(every)} cannot be a systemd calendar timer (needed for "
        "Persistent=): use a number of seconds or minutes that divides 60, of hours that divides "
        "24, or 1d"
    )


# --- where units live -------------------------------------------------------------------------


def unit_dir(*, user: bool, root: Path | None) -> Path:
    """The directory the schedule's units go to."""
    if user:
        if root is not None:
            raise UsageError("--root is for system units; it cannot be combined with --user")
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "systemd" / "user"
    return (root or Path("/")) / "etc" / "systemd" / "system"


def _user_mode(args: argparse.Namespace) -> bool:
    return bool(args.user) or (args.root is None and os.geteuid() != 0)


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise UsageError(
            f"schedule name {plain(name)!r}: 1-64 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit"
        )
    return name


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-._")


def default_name(task: Path, limit: str | None, repair: bool) -> str:
    """``TASK-SELECTION-check`` (or ``-repair``): one schedule per task, selection and mode. A
    selection a unit name cannot spell as it is (``rack-*``, ``a,b``) or a long one gets a short
    hash of its exact text, so two selections never share a name."""
    stem = _slug(task.stem) or "task"
    selection = limit if limit is not None else "all"
    slug = _slug(selection)
    if slug != selection or len(slug) > 30:
        digest = hashlib.sha256(selection.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        slug = f"{slug[:20]}-{digest}".lstrip("-")
    return f"{stem[:24]}-{slug}-{'repair' if repair else 'check'}"


def _units(name: str) -> tuple[str, str]:
    return f"{PREFIX}{name}.service", f"{PREFIX}{name}.timer"


# --- the command the service runs -------------------------------------------------------------


def _absolute(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(os.fspath(path)))


@dataclass(frozen=True)
class Cli:
    """What the schedule needs from the command line it belongs to (fleetbr.cli)."""

    hosts: Callable[[argparse.Namespace], list[HostSpec]]  # the selected hosts, validated
    parser: Callable[[], argparse.ArgumentParser]  # to check the scheduled command parses
    default_forks: int


def command_argv(args: argparse.Namespace, cli: Cli) -> list[str]:
    """``fleetbr -i ABS_INV [-l ...] [--metrics-file ABS] check|apply ABS_TASK`` as the service
    runs it (``--metrics-file`` given before or after ``schedule install``)."""
    argv = [_absolute(sys.executable), "-m", "fleetbr", "-i", _absolute(args.inventory)]
    if args.limit is not None:
        argv += ["-l", args.limit]
    if args.forks != cli.default_forks:
        argv += ["-f", str(args.forks)]
    for flag, value in (("--key", args.key), ("--known-hosts", args.known_hosts),
                        ("--metrics-file", args.metrics_file)):  # fmt: skip
        if value:
            argv += [flag, _absolute(value)]
    argv += ["apply" if args.repair else "check", _absolute(args.task)]
    _parses(argv[3:], cli)
    return argv


def _parses(words: list[str], cli: Cli) -> None:
    """The scheduled command must be one this fleetbr accepts (e.g. --metrics-file)."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            cli.parser().parse_args(words)
    except SystemExit:
        detail = stderr.getvalue().strip().splitlines()
        raise UsageError(
            "this fleetbr would not accept the scheduled command: "
            + plain(detail[-1] if detail else " ".join(words))
        ) from None


# --- install / list / remove ------------------------------------------------------------------


def _marker_of(path: Path) -> dict[str, Any] | None:
    """The marker of a unit fleetbr wrote, or None (not fleetbr's, unreadable)."""
    try:
        with path.open(encoding="utf-8") as unit:
            for line in unit:
                if line.startswith(MARKER):
                    doc = json.loads(line[len(MARKER) :])
                    return doc if isinstance(doc, dict) else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.fleetbr-new")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)


def install(args: argparse.Namespace, cli: Cli) -> Schedule:
    """Write, enable and (with a running systemd) start the schedule's timer."""
    user = _user_mode(args)
    directory = unit_dir(user=user, root=args.root)
    name = _check_name(args.name or default_name(args.task, args.limit, args.repair))
    every = parse_every(args.every)
    # it must render for every selected host (exit 2), as the scheduled check renders it
    render_change(ChangeRef("bridge", args.task), cli.hosts(args), command="check")
    argv = command_argv(args, cli)
    schedule = Schedule(
        name=name, mode="repair" if args.repair else "check", every=every,
        calendar=calendar(every), task=_absolute(args.task),
        inventory=_absolute(args.inventory), limit=args.limit, command=argv,
    )  # fmt: skip
    service, timer = _units(name)
    for unit in (service, timer):
        if (directory / unit).exists() and _marker_of(directory / timer) is None:
            raise UsageError(f"{directory / unit} exists and is not a fleetbr schedule")
    _check_replace(directory / timer, schedule, force=args.force)
    texts = {
        service: render("schedule_service.j2", name=name, mode=schedule.mode,
                        system=not user, exec_line=exec_line(argv)),
        timer: render("schedule_timer.j2", name=name, mode=schedule.mode, every=every,
                      marker=json.dumps(asdict(schedule), ensure_ascii=True, sort_keys=True),
                      calendar=schedule.calendar, delay=min(every // 5, 300),
                      accuracy=min(max(1, every // 10), 60), service=service),
    }  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    for unit, text in texts.items():
        _write(directory / unit, text)
    wants = directory / WANTS
    wants.mkdir(exist_ok=True)
    link = wants / timer
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path("..") / timer)
    if _live(user, args.root):
        _systemctl(user, "daemon-reload")
        _systemctl(user, "restart", timer)
    return schedule


def _check_replace(timer: Path, schedule: Schedule, *, force: bool) -> None:
    """Installing the same schedule again is fine; over a different one needs ``--force``."""
    doc = _marker_of(timer)
    if doc is None or force:
        return
    try:
        existing: Schedule | None = Schedule(**doc)
    except TypeError:
        existing = None
    if existing == schedule:
        return
    what = (
        "an unreadable schedule" if existing is None else
        f"{existing.mode} of {existing.task} every {existing.every}s "
        f"(-l {existing.limit if existing.limit is not None else 'all'})"
    )  # fmt: skip
    raise UsageError(
        f"schedule {schedule.name} exists and is another one ({plain(what)}); --force replaces "
        "it, --name installs this one beside it"
    )


def schedules(directory: Path) -> list[tuple[Schedule, bool]]:
    """Every schedule fleetbr installed in ``directory``, with whether it is enabled."""
    found = []
    for path in sorted(directory.glob(f"{PREFIX}*.timer")):
        doc = _marker_of(path)
        if doc is None:
            continue
        try:
            schedule = Schedule(**doc)
        except TypeError:
            continue
        enabled = (directory / WANTS / path.name).is_symlink()
        found.append((schedule, enabled))
    return found


def remove(args: argparse.Namespace) -> list[Path]:
    """Stop (with a running systemd), disable and delete a schedule's units."""
    user = _user_mode(args)
    directory = unit_dir(user=user, root=args.root)
    name = _check_name(args.name)
    service, timer = _units(name)
    if _marker_of(directory / timer) is None:
        raise UsageError(f"no fleetbr schedule {name} in {directory}")
    live = _live(user, args.root)
    if live:
        _systemctl(user, "stop", timer)
    removed = []
    for path in (directory / WANTS / timer, directory / timer, directory / service):
        if path.is_symlink() or path.exists():
            path.unlink()
            removed.append(path)
    if live:
        _systemctl(user, "daemon-reload")
    return removed


def _live(user: bool, root: Path | None) -> bool:
    """A systemd manager to tell about the change: never with --root."""
    if root is not None:
        return False
    if user:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        return runtime is not None and Path(runtime, "systemd").is_dir()
    return Path("/run/systemd/system").is_dir()


def _systemctl(user: bool, *words: str) -> None:
    argv = ["systemctl", *(["--user"] if user else []), *words]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_SYSTEMCTL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        warning(f"{' '.join(argv)}: {exc}; the units are written, run it by hand")
        return
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        warning(f"{' '.join(argv)} failed: {detail[-1] if detail else done.returncode}")


# --- the CLI ----------------------------------------------------------------------------------


def _show(schedule: Schedule, enabled: bool) -> dict[str, Any]:
    return {**asdict(schedule), "enabled": enabled}


def schedule_command(args: argparse.Namespace, cli: Cli) -> int:
    """``fleetbr schedule install|list|remove``."""
    out = Human()
    if args.schedule_command == "install":
        schedule = install(args, cli)
        if args.json:
            print_json({schedule.name: _show(schedule, True)})
        else:
            every = duration_text(schedule.every)
            out.line(f"installed schedule {schedule.name}: {schedule.mode} every {every} "
                     f"(OnCalendar={schedule.calendar}), enabled")  # fmt: skip
            out.line(f"  runs: {shlex.join(schedule.command)}")
        return 0
    user = _user_mode(args)
    if args.schedule_command == "remove":
        removed = remove(args)
        if args.json:
            print_json({args.name: {"removed": [str(p) for p in removed]}})
        else:
            out.line(f"removed schedule {args.name}")
        return 0
    found = schedules(unit_dir(user=user, root=args.root))
    if args.json:
        print_json({s.name: _show(s, enabled) for s, enabled in found})
        return 0
    for schedule, enabled in found:
        state, every = "enabled" if enabled else "disabled", duration_text(schedule.every)
        out.line(f"{schedule.name}  {schedule.mode}  every {every}  {state}  "
                 f"{schedule.task}  (-i {schedule.inventory}"
                 f"{'' if schedule.limit is None else ' -l ' + schedule.limit})")  # fmt: skip
    if not found:
        out.line("no fleetbr schedules")
    return 0
