"""``fleetbr run -- true`` against a bare asyncssh script and parallel-ssh (OpenSSH), alternated
round by round on one lab.

Usage (repository root): ``scripts/in-netns .venv/bin/python -m bench.run_bench [--hosts N]
[--rounds R] [--profile]``. A fourth side, ``bare+wr``, is the bare script sending fleetbr's own
wrapper (``run_exec.sh.j2``) with ``true`` on stdin: the hosts' extra work without fleetbr on the
controller. parallel-ssh is Debian's ``pssh`` package: installed with apt-get if
missing (install it beforehand: scripts/in-netns has no network); without it that side is skipped
with a line saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import (
    PYTHON,
    Check,
    Run,
    alternate,
    lab_up,
    median_run,
    overhead,
    parser,
    profile_top,
    report,
    startup,
    write_targets,
)
from fleetbr.adhoc.spec import KILL_AFTER, exec_line

TARGET = 1.3  # as for facts: the same connections, one trivial command
DEFAULT_TIMEOUT = 120.0  # SSHOptions.command_timeout, what `fleetbr run` uses on the lab hosts


def fleetbr_cmd(inventory: Path, *command: str) -> list[str]:
    """The real CLI, as a user runs it."""
    return [PYTHON, "-m", "fleetbr", "-i", str(inventory), "--json", *command]


def bare_cmd(targets: Path, *extra: str) -> list[str]:
    """The bare asyncssh baseline."""
    return [PYTHON, "-m", "bench.bare_run", str(targets), *extra]


def pssh_cmd(binary: str, targets: Path, directory: Path) -> list[str]:
    """parallel-ssh with the same key, the same known_hosts (strict) and connect timeout."""
    hosts = json.loads(targets.read_text(encoding="utf-8"))
    host_file = directory / "pssh-hosts"
    host_file.write_text(
        "".join(f"{h['username']}@{h['hostname']}:{h['port']}\n" for h in hosts), encoding="utf-8"
    )
    first = hosts[0]
    options = {
        "IdentityFile": first["client_keys"][0],
        "IdentitiesOnly": "yes",
        "UserKnownHostsFile": first["known_hosts"],
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
        "BatchMode": "yes",
        "ConnectTimeout": str(int(first["connect_timeout"])),
    }
    argv = [binary, "-h", str(host_file), "-p", str(len(hosts)), "-t", "60", "-x", "-F /dev/null"]
    for key, value in options.items():
        argv += ["-O", f"{key}={value}"]
    return [*argv, "true"]


def check_fleetbr(run: Run, hosts: int) -> None:
    """Every host exited 0."""
    doc = json.loads(run.stdout)
    ok = [name for name, r in doc.items() if r["status"] == "ok" and r["exit_status"] == 0]
    if len(ok) != hosts:
        raise RuntimeError(f"fleetbr run: only {len(ok)}/{hosts} hosts ok")


def check_bare(run: Run, hosts: int) -> None:
    """Every host exited 0."""
    doc = json.loads(run.stdout)
    if sum(1 for status in doc.values() if status == 0) != hosts:
        raise RuntimeError(f"bare run: not every host exited 0: {doc}")


def check_pssh(run: Run, hosts: int) -> None:
    """parallel-ssh said SUCCESS for every host (and exited 0, checked by ``timed``)."""
    if run.stdout.count("[SUCCESS]") != hosts:
        raise RuntimeError(f"parallel-ssh: not every host succeeded: {run.stdout[-2000:]}")


def find_pssh() -> tuple[str | None, str]:
    """The parallel-ssh binary, installing Debian's pssh if missing; (None, why) without it."""
    found = shutil.which("parallel-ssh")
    if found:
        return found, ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "not installed, and apt-get cannot be run here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", "pssh"],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, "apt-get install pssh did not finish within 300 s"
    found = shutil.which("parallel-ssh")
    if found:
        return found, ""
    reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"apt-get install pssh failed ({reason}); install it outside scripts/in-netns"


def main() -> int:
    """Bring up a lab, alternate the sides, print the figures."""
    args = parser("fleetbr run -- true vs bare asyncssh vs parallel-ssh").parse_args()
    pssh, why = find_pssh()
    with lab_up(args.hosts, args.prefix) as built, tempfile.TemporaryDirectory() as tmp:
        targets = write_targets(built, Path(tmp) / "targets.json")
        wrapper = exec_line(sudo=False, timeout=DEFAULT_TIMEOUT, kill_after=KILL_AFTER)
        sides: dict[str, tuple[list[str], Check]] = {
            "fleetbr": (fleetbr_cmd(built.inventory_dir, "run", "--", "true"), check_fleetbr),
            "bare": (bare_cmd(targets), check_bare),
            "bare+wr": (bare_cmd(targets, "--exec", wrapper), check_bare),
        }
        if pssh is not None:
            sides["pssh"] = (pssh_cmd(pssh, targets, Path(tmp)), check_pssh)
        results = alternate(sides, args.rounds, args.hosts)
        costs = startup(fleetbr_cmd(built.inventory_dir, "inventory"),
                        bare_cmd(targets, "--no-connect"))  # fmt: skip
        report("run -- true", args.hosts, results, TARGET)
        overhead(args.hosts, results, costs)
        if pssh is None:
            print(f"  parallel-ssh: SKIPPED: {why}")
        else:
            wall, cpu = median_run(results["fleetbr"])
            pwall, pcpu = median_run(results["pssh"])
            print(f"  ratio fleetbr/parallel-ssh: wall {wall / pwall:.2f}, CPU {cpu / pcpu:.2f}")
        wall, cpu = median_run(results["fleetbr"])
        wwall, wcpu = median_run(results["bare+wr"])
        print(
            f"  ratio fleetbr/bare+wrapper (same host-side work): wall {wall / wwall:.2f}, "
            f"CPU {cpu / wcpu:.2f}"
        )
        if args.profile:
            profile_top(fleetbr_cmd(built.inventory_dir, "run", "--", "true")[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
