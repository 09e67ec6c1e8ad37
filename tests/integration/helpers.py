"""The one module of shared helpers for integration tests (netns tier, distro and guest tiers
alike): inventories derived from the lab's, the CLI runner, task files, host inspection without
SSH, waiting with a deadline, the checks that a host is bridged or back at its snapshot, a slowed
binary, and the paused apply.

Test modules import from here (and from their package's own helpers module), never from another
test module.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

import fleetbr.api as api
from fleetbr.changes.bridge.change import apply_host
from fleetbr.changes.bridge.task import BridgeTask, load_task, render_task
from fleetbr.errors import LabError
from fleetbr.inventory import HostSpec, load_inventory
from fleetbr.lab import Lab, LabHost, host_exec, host_state, reset_host, switch_exec
from fleetbr.lab.system import alive, netns_pids
from fleetbr.report import AggregatedResult, Status
from tests.integration.barrier import Gate

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 14  # shortest the lab's 3 s connect timeout allows (see protocol.min_timeout)
POLL = 0.1  # wait_for's interval: each poll may start a process in the host


# --- inventories, the CLI, task files ----------------------------------------------------------


def derived_inventory(
    lab: Lab, dest: Path, edit: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
) -> Path:
    """Copy the lab's inventory to ``dest``; ``edit(hosts, defaults)`` may change it in place."""
    shutil.copytree(lab.inventory_dir, dest)
    hosts = yaml.safe_load((dest / "hosts.yaml").read_text())
    defaults = yaml.safe_load((dest / "defaults.yaml").read_text())
    if edit is not None:
        edit(hosts, defaults)
    (dest / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (dest / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return dest


def specs(inventory: Path) -> dict[str, HostSpec]:
    """The hosts of an inventory directory."""
    return load_inventory(inventory)


def fleetbr(*args: str, timeout: float = 300) -> tuple[int, Any, str]:
    """Run the real CLI in a subprocess with --json; returns (exit code, parsed stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "--json", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    try:
        document = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        document = done.stdout
    return done.returncode, document, done.stderr


def api_status(lab: Lab, host: str) -> AggregatedResult:
    """``fleetbr status`` of one lab host through fleetbr.api, in this process (recording no
    history): for a test that reads a host's state back and is not about the CLI, without a CLI
    start-up (about 0.5 s of CPU each)."""
    return api.status(api.load_inventory(lab.inventory_dir, limit=host), history=False)


def task_file(tmp_path: Path, base: str = "bridge.yaml", **changes: Any) -> Path:
    """tasks/<base> with a short dead-man timeout and ``changes`` merged into ``bridge``."""
    doc = yaml.safe_load((REPO / "tasks" / base).read_text())
    doc["deadman"]["timeout"] = changes.pop("timeout", TIMEOUT)
    doc["bridge"].update(changes)
    path = tmp_path / f"{base.removesuffix('.yaml')}-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rendered(lab: Lab, path: Path, host: str) -> BridgeTask:
    """The task at ``path`` rendered for ``host`` of the lab inventory."""
    return render_task(load_task(path), specs(lab.inventory_dir)[host].context())


# --- a host seen from inside, without SSH ------------------------------------------------------


def sh(lab: Lab, host: str, script: str, check: bool = True) -> str:
    """Run ``script`` inside the host's namespaces (no SSH); its stdout."""
    return host_exec(lab, host, ["sh", "-c", script], check=check).stdout


def _outside(lab: Lab, host: str) -> str | None:
    """Where a netns host's own files are seen from outside (its namespace holder's root: the
    mount namespace ``sh`` enters), so a read starts no process; None for other hosts (and a
    dead holder: ``sh`` says so)."""
    member = lab.host(host)
    if member.backend or member.vm or not alive(member.holder_pid):
        return None
    return f"/proc/{member.holder_pid}/root"


def journal(lab: Lab, host: str) -> list[list[str]]:
    """The host's fleetbr journal, split into words."""
    path = "/var/lib/fleetbr/journal"
    root = _outside(lab, host)
    if root is None:
        text = sh(lab, host, f"cat {path} 2>/dev/null || :")
    else:
        try:
            text = Path(root + path).read_text()
        except OSError:
            text = ""
    return [line.split() for line in text.splitlines()]


def events(lab: Lab, host: str) -> list[str]:
    """The journal's event names, in order."""
    return [words[2] for words in journal(lab, host)]


def armed(lab: Lab, host: str) -> bool:
    """A transaction is armed on the host."""
    marker = "/var/lib/fleetbr/armed"
    root = _outside(lab, host)
    if root is not None:
        return os.path.lexists(root + marker)
    return sh(lab, host, f"[ -L {marker} ] || [ -e {marker} ] && echo yes || :").strip() == "yes"


def armed_txid(lab: Lab, host: str) -> str:
    """The transaction id the host's armed marker names."""
    marker = "/var/lib/fleetbr/armed"
    root = _outside(lab, host)
    if root is None:
        return sh(lab, host, f"readlink {marker}").strip()
    try:
        return os.readlink(root + marker).strip()
    except OSError as error:
        raise LabError(f"{host}: readlink {marker}: {error.strerror}") from None


def enslaved(lab: Lab, host: str) -> bool:
    """The host's NIC is a port of br0."""
    nic = lab.host(host).nic
    return "master br0" in sh(lab, host, f"ip -o link show dev {nic}")


def host_processes(lab: Lab, host: str) -> dict[int, list[str]]:
    """pid -> argv of every process in the host's network namespace (gone ones skipped)."""
    found = {}
    for pid in netns_pids(lab.host(host).netns):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        found[pid] = raw.decode(errors="replace").split("\0")[:-1]
    return found


def fleetbr_processes(lab: Lab, host: str) -> list[str]:
    """Command lines of every process in the host's netns except the lab's own (holder, sshd):
    a leftover timer, its ``sleep``, an apply or a rollback."""
    holder = lab.host(host).holder_pid
    return [
        f"{pid} {' '.join(argv)}"
        for pid, argv in host_processes(lab, host).items()
        if pid != holder and not (argv and argv[0].startswith("sshd"))
    ]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = POLL) -> None:
    """Poll ``predicate`` every ``every`` s until true; fail the test after ``timeout`` seconds
    (a deadline the code under test promises, not a guess at how fast this machine is)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


# --- end states: bridged, or back at the snapshot ----------------------------------------------


def assert_bridged(lab: Lab, host: str) -> None:
    """The host carries br0 over its NIC with the NIC's MAC, addresses and default routes."""
    h = lab.host(host)
    state = host_state(lab, host)
    links = {link["ifname"]: link for link in state["links"]}
    assert links[h.nic]["master"] == "br0"
    assert links["br0"]["address"] == links[h.nic]["address"]
    info = links["br0"]["linkinfo"]["info_data"]
    assert info["stp_state"] == 0 and info["forward_delay"] == 400
    out = sh(lab, host, "ip -o addr show dev br0; ip route; ip -6 route")
    assert h.addr4 in out and h.addr6 in out
    assert f"default via {lab.gateway4} dev br0" in out
    assert f"default via {lab.gateway6} dev br0" in out
    sysctls = sh(lab, host, "cat /proc/sys/net/bridge/bridge-nf-call-iptables "
                 "/proc/sys/net/bridge/bridge-nf-call-ip6tables "
                 "/proc/sys/net/bridge/bridge-nf-call-arptables").split()  # fmt: skip
    assert sysctls == ["0", "0", "0"]
    assert "net.bridge.bridge-nf-call-iptables = 0" in sh(
        lab, host, "cat /etc/sysctl.d/bridge.conf"
    )
    assert 'KERNEL=="br_netfilter"' in sh(lab, host, "cat /etc/udev/rules.d/99-bridge.rules")


def assert_at_snapshot(lab: Lab, host: str, pristine: dict[str, Any]) -> None:
    """The host is exactly back at its post-``up`` state, not armed, and reachable over SSH."""
    assert host_state(lab, host) == pristine[host]
    assert not armed(lab, host)
    wait_for(lambda: not fleetbr_processes(lab, host), 5, "fleetbr processes to exit")
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, "facts")
    assert code == 0, err
    assert doc[host]["facts"]["hostname"] == host


def bridged_host(lab: Lab, fresh_host: Callable[[str], Any], host: str, task: Path) -> HostSpec:
    """``host`` reset, then converted by ``task`` and confirmed."""
    fresh_host(host)
    spec = specs(lab.inventory_dir)[host]
    result = asyncio.run(apply_host(spec, rendered(lab, task, host), task.name))
    assert result.status == Status.CONFIRMED, result.message
    return spec


# --- a slowed binary on one host ----------------------------------------------------------------


@contextmanager
def slow_command(
    lab: Lab, host: str, command: str, pattern: str, seconds: float, release: Path | None = None
) -> Iterator[None]:
    """While active, ``command`` on ``host`` sleeps ``seconds`` first whenever its arguments
    contain ``pattern``, then runs as usual. With ``release`` (a path in the host's lab dir,
    ``lab.host(host).dir``), it waits only until that file exists, ``seconds`` at most."""
    member = lab.host(host)
    real = sh(lab, host, f'readlink -f "$(command -v {shlex.quote(command)})"').strip()
    copy = member.dir / f"real-{command}"
    wrapper = member.dir / f"slow-{command}"
    shutil.copy2(real, copy)
    hold = f"sleep {seconds}"
    if release is not None:
        until = f"until [ -e {shlex.quote(member.inside(release.name))} ]; do sleep 0.05; done"
        hold = f"timeout {seconds} sh -c {shlex.quote(until)}"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *{shlex.quote(pattern)}*) {hold} ;; esac\n'
        f'exec {shlex.quote(member.inside(copy.name))} "$@"\n'
    )
    wrapper.chmod(0o755)
    sh(lab, host, f"mount --bind {shlex.quote(member.inside(wrapper.name))} {shlex.quote(real)}")
    try:
        yield
    finally:
        sh(lab, host, f"umount {shlex.quote(real)}")


# --- the paused apply ----------------------------------------------------------------------------


def stale_bridged_transaction(lab: Lab, host: str, tmp_path: Path) -> str:
    """Apply the bridge task, then SIGKILL the controller and every process fleetbr left on the
    host (the timer too): the host stays bridged under an armed transaction nobody will decide.
    Returns its txid."""
    gate = Gate(tmp_path / f"barrier-stale-{host}")  # never released: no confirm
    controller = subprocess.Popen(
        gate.argv("confirm", "-i", str(lab.inventory_dir), "-l", host, "apply",
                  str(task_file(tmp_path, timeout=120))),
        env=gate.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        gate.reached("confirm", timeout=120)
        wait_for(lambda: enslaved(lab, host) and "applied" in events(lab, host), 30, "apply")
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    for line in fleetbr_processes(lab, host):
        os.kill(int(line.split(" ", 1)[0]), signal.SIGKILL)
    wait_for(lambda: not fleetbr_processes(lab, host), 5, "fleetbr's processes to die")
    return armed_txid(lab, host)


# --- two non-root users on one host (the ``users`` fixture, conftest) ---------------------------

SUDO_HOST = "hv06"
SUDOER, NO_SUDOER = "ops", "nosudo"
SUDOERS_DROP_IN = "/etc/sudoers.d/fleetbr-test-ops"
# Every file the fixture or useradd/userdel may rewrite; restored byte for byte (or removed).
ACCOUNTS = ("passwd", "shadow", "group", "gshadow", "subuid", "subgid")
TOUCHED_FILES = (
    "/etc/hosts",
    *(f"/etc/{name}{suffix}" for name in ACCOUNTS for suffix in ("", "-")),
)


def _read_files(lab: Lab, paths: tuple[str, ...]) -> dict[str, str | None]:
    """Contents of ``paths`` inside SUDO_HOST (None: absent)."""
    saved: dict[str, str | None] = {}
    for path in paths:
        done = host_exec(lab, SUDO_HOST, ["cat", "--", path], check=False)
        saved[path] = done.stdout if done.returncode == 0 else None
    return saved


def _restore_files(lab: Lab, saved: dict[str, str | None]) -> None:
    for path, content in saved.items():
        if content is None:
            host_exec(lab, SUDO_HOST, ["rm", "-f", "--", path])
        else:
            host_exec(lab, SUDO_HOST, ["tee", "--", path], input=content)


def _add_user(lab: Lab, name: str) -> None:
    # "*" rather than useradd's locked "!": sshd without PAM refuses locked accounts, even to keys.
    host_exec(lab, SUDO_HOST, ["useradd", "-m", "-d", f"/var/lib/{name}-home", "-s", "/bin/sh",
                               "-p", "*", "--no-log-init", name])  # fmt: skip


@contextmanager
def sudo_users(lab: Lab) -> Iterator[None]:
    """While active, SUDO_HOST has user SUDOER (passwordless sudo) and NO_SUDOER (no sudoers
    entry); afterwards its account files are restored byte for byte and the host is reset."""
    saved = _read_files(lab, TOUCHED_FILES)
    try:
        for name in (SUDOER, NO_SUDOER):
            _add_user(lab, name)
        host_exec(lab, SUDO_HOST, ["sh", "-c", 'umask 337 && cat > "$1"', "sh", SUDOERS_DROP_IN],
                  input=f"{SUDOER} ALL=(ALL) NOPASSWD:ALL\n")  # fmt: skip
        host_exec(lab, SUDO_HOST, ["visudo", "-c", "-q", "-f", SUDOERS_DROP_IN])
        yield
    finally:
        host_exec(lab, SUDO_HOST, ["rm", "-f", "--", SUDOERS_DROP_IN])
        for name in (SUDOER, NO_SUDOER):
            host_exec(lab, SUDO_HOST, ["userdel", "-r", name], check=False)
            host_exec(lab, SUDO_HOST, ["rm", "-rf", "--", f"/var/lib/{name}-home"])
        _restore_files(lab, saved)
        reset_host(lab, SUDO_HOST)


def sudo_inventory(lab: Lab, dest: Path, user: str, sudo: bool) -> Path:
    """The lab inventory where SUDO_HOST logs in as ``user``, with ``sudo``."""

    def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        # nornir replaces the extras mapping as a whole: carry over the lab's keys and known_hosts
        extras = dict(defaults["connection_options"]["fleetbr"]["extras"], sudo=sudo)
        hosts[SUDO_HOST]["username"] = user
        hosts[SUDO_HOST]["connection_options"] = {"fleetbr": {"extras": extras}}

    return derived_inventory(lab, dest, edit)


# --- pristine lab hosts: a cheap fingerprint, compared before every test (conftest) ------------

# One shell per host: links, addresses, main routes, policy rules, the bridge-nf-call sysctls;
# with the files fleetbr writes (_FINGERPRINT_DIRS, read from outside through the holder's
# /proc/PID/root) enough to see anything a test or a leftover transaction changes. Few processes:
# this runs on every lab host before every lab test (one `ip` per family in batch mode instead of
# one per object, the sysctls read by the shell's `read`).
_FINGERPRINT = (
    "printf 'link show\\naddr show\\nroute show\\nrule show\\n' | ip -br -b -; "
    "printf 'route show\\nrule show\\n' | ip -6 -b -; "
    "for f in /proc/sys/net/bridge/bridge-nf-call-*; do "
    '[ -e "$f" ] && read -r v < "$f" && echo "$v"; done'
)
_FINGERPRINT_DIRS = (
    "/var/lib/fleetbr",
    "/run/fleetbr",
    "/etc/sysctl.d",
    "/etc/udev/rules.d",
    "/etc/modules-load.d",
)


def _host_files(host: LabHost) -> list[str]:
    """Every non-directory (files, symlinks: the armed marker) under _FINGERPRINT_DIRS as the
    host sees them, sorted; read through its holder's mount namespace, no process started."""
    if host.holder_pid is None:
        raise LabError(f"{host.name}: no namespace holder; rebuild the lab")
    root = f"/proc/{host.holder_pid}/root"
    found: list[str] = []
    for top in _FINGERPRINT_DIRS:
        for parent, dirs, names in os.walk(root + top):
            links = [d for d in dirs if os.path.islink(os.path.join(parent, d))]
            found += [os.path.join(parent, n)[len(root) :] for n in [*names, *links]]
    return sorted(found)


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def _netns_processes() -> dict[int, list[int]]:
    """network namespace inode -> pids in it, from one pass over /proc (no process started)."""
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                found.setdefault(os.stat(f"/proc/{entry.name}/ns/net").st_ino, []).append(
                    int(entry.name)
                )
            except OSError:
                continue
    return found


def _stray(lab: Lab, host: str, pids: list[int]) -> int:
    """How many processes in the host are neither its namespace holder nor an sshd (its
    listener, a connection's child, a session's privileged or user half)."""
    member = lab.host(host)
    count = 0
    for pid in pids:
        if pid == member.holder_pid:
            continue
        try:
            # comm, not argv[0]: a connection's child re-executes sshd (argv[0] /usr/sbin/sshd)
            # and only later retitles itself; wait_sshd's own probe leaves one for a moment
            comm = Path(f"/proc/{pid}/comm").read_text()
        except OSError:
            continue
        count += not comm.startswith("sshd")  # sshd, sshd-session (OpenSSH 9.8+)
    return count


def host_fingerprint(lab: Lab, host: str, processes: dict[int, list[int]], switch: str) -> str:
    """A cheap comparable summary of one netns lab host: its network and fleetbr state, its
    switch port, whether its sshd listens, how many stray processes (a timer, an apply) run in
    it. ``processes`` is :func:`_netns_processes`, ``switch`` the switch's ``ip -br link``."""
    member = lab.host(host)
    pids = processes.get(_netns_inode(member.netns) or -1, [])
    port = [ln for ln in switch.splitlines() if ln.split()[0].split("@")[0] == member.switch_port]
    inside = sh(lab, host, _FINGERPRINT, check=False)
    files = "".join(f"{path}\n" for path in _host_files(member))
    return f"{inside}{files}{port} sshd={member.sshd_pid in pids} stray={_stray(lab, host, pids)}"


def lab_fingerprints(lab: Lab, names: list[str] | None = None) -> dict[str, str]:
    """The fingerprint of every netns lab host (or only of those ``names``), by name."""
    names = [h.name for h in lab.hosts] if names is None else names
    processes = _netns_processes()
    switch = switch_exec(lab, ["ip", "-br", "link"]).stdout
    with ThreadPoolExecutor(len(names)) as pool:
        prints = pool.map(lambda name: host_fingerprint(lab, name, processes, switch), names)
        return dict(zip(names, prints, strict=True))


def pristine_hosts(lab: Lab, want: dict[str, str]) -> list[str]:
    """Reset every lab host whose fingerprint differs from ``want`` (taken right after ``up``);
    the names reset. Fails the test if a reset host still differs."""
    have = lab_fingerprints(lab)
    dirty = [name for name, print_ in want.items() if have[name] != print_]
    if not dirty:
        return []
    with ThreadPoolExecutor(len(dirty)) as pool:
        list(pool.map(lambda name: reset_host(lab, name), dirty))
    have = lab_fingerprints(lab, dirty)  # only the reset ones: nothing else ran meanwhile
    still = [
        f"{name}: {line}"
        for name in dirty
        for line in difflib.unified_diff(want[name].splitlines(), have[name].splitlines(), n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert not still, "lab hosts not pristine even after reset_host:\n" + "\n".join(still)
    return dirty
