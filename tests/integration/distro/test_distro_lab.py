"""The distro tier of the lab: real Debian hosts booted by systemd-nspawn, each NIC configured by
its network backend, reachable over SSH with checked host keys; reboots from inside and from
outside (soft and hard); `lab down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fleetbr.errors import LabError
from fleetbr.lab import Lab, LabHost, down, host_exec, load, status
from fleetbr.lab.distro import backends_for, reboot, up
from fleetbr.lab.distro.supervisor import (
    CGROUP_ROOTS,
    cgroup,
    init_pid,
    prune_stale_cgroups,
    running,
    wait_up,
)
from fleetbr.lab.system import kill, netns_pids
from tests.integration.distro.conftest import BACKENDS
from tests.integration.helpers import fleetbr, sh
from tests.isolation import require_distro_cache

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[3]


def boot_id(lab: Lab, host: str) -> str:
    """The host's boot id (nspawn gives every boot of a container its own)."""
    return sh(lab, host, "cat /proc/sys/kernel/random/boot_id").strip()


def ssh(lab: Lab, address: str, command: str) -> subprocess.CompletedProcess[str]:
    """OpenSSH as root to ``address``, trusting only the lab's known_hosts."""
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(lab.key_path), "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "StrictHostKeyChecking=yes",
         "-o", "ConnectTimeout=5", f"root@{address}", command],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_every_host_boots_systemd_with_its_backend(distro_lab: Lab) -> None:
    command = "systemctl is-system-running --wait; hostname; cat /etc/machine-id"
    code, doc, err = fleetbr("-i", str(distro_lab.inventory_dir), "run", "--", command)
    assert code == 0, (doc, err)
    machine_ids = set()
    for host in distro_lab.hosts:
        state, name, machine_id = doc[host.name]["stdout"].split()
        failed = sh(distro_lab, host.name, "systemctl --failed --no-legend --plain; "
                    "systemctl status --failed --no-pager -n 20 || :")  # fmt: skip
        assert (state, name) == ("running", host.name), failed
        machine_ids.add(machine_id)
    assert len(machine_ids) == len(distro_lab.hosts)
    # each container in a cgroup of its own (sharing one, systemd units failed with 219/CGROUP)
    for host in distro_lab.hosts:
        groups = Path(f"/proc/{init_pid(host)}/cgroup").read_text()
        assert f"/{cgroup(distro_lab, host)}/payload" in groups, groups
    assert [h.backend for h in distro_lab.hosts] == BACKENDS
    over_v6 = ssh(distro_lab, distro_lab.hosts[-1].ip6, "hostname")
    assert over_v6.stdout.strip() == distro_lab.hosts[-1].name, over_v6.stderr


def test_each_backend_configured_the_nic_from_its_own_files(distro_lab: Lab) -> None:
    """The daemon that configured eth0 is the one that runs; nothing else does."""
    daemons = {"ifupdown": "networking", "networkd": "systemd-networkd",
               "netplan": "systemd-networkd", "networkmanager": "NetworkManager",
               "none": "lab-static-net"}  # fmt: skip
    for host in distro_lab.hosts:
        active = sh(distro_lab, host.name, "systemctl is-active networking systemd-networkd "
                    "NetworkManager lab-static-net || :").split()  # fmt: skip
        names = ["networking", "systemd-networkd", "NetworkManager", "lab-static-net"]
        running = {name for name, state in zip(names, active, strict=True) if state == "active"}
        assert running == {daemons[host.backend]}, host.name
        addrs = sh(distro_lab, host.name, f"ip -br addr show dev {host.nic}").split()[2:]
        assert host.addr4 in addrs and host.addr6 in addrs, host.name
        routes = sh(distro_lab, host.name, "ip route show default; ip -6 route show default")
        assert distro_lab.gateway4 in routes and distro_lab.gateway6 in routes


def test_inventory_and_status(distro_lab: Lab) -> None:
    code, doc, err = fleetbr("-i", str(distro_lab.inventory_dir), "-l", "networkmanager",
                             "inventory")  # fmt: skip
    assert code == 0, err
    assert list(doc) == ["hv06"]
    assert all(row.sshd_alive and row.ssh_port_open for row in status(distro_lab.dir))
    assert load(distro_lab.dir).host("hv03").backend == "ifupdown"


def wait_rebooted(host: LabHost, old_init: int | None) -> None:
    wait_up(host, time.monotonic() + 90, after=old_init)


def test_reboot_from_inside_comes_back_by_itself(distro_lab: Lab) -> None:
    host = distro_lab.host("hv03")
    before, old_init = boot_id(distro_lab, "hv03"), init_pid(host)
    ssh(distro_lab, host.ip4, "systemctl reboot")
    wait_rebooted(host, old_init)
    assert boot_id(distro_lab, "hv03") != before
    assert host.addr4 in sh(distro_lab, "hv03", "ip -br addr show dev eth0")
    console = (host.dir / "console.log").read_text()
    assert "fleetbr-lab: nspawn exited 133" in console


@pytest.mark.parametrize(("name", "hard"), [("hv04", False), ("hv05", True)])
def test_lab_reboot_from_outside(distro_lab: Lab, name: str, hard: bool) -> None:
    """Soft: a clean reboot. Hard: a power cut (what was written survives, as on a disk)."""
    before = boot_id(distro_lab, name)
    sh(distro_lab, name, "echo kept > /var/tmp/written-before-reboot")
    code, _, err = fleetbr("lab", "reboot", name, "--dir", str(distro_lab.dir),
                           *(["--hard"] if hard else []))  # fmt: skip
    assert code == 0, err
    assert boot_id(distro_lab, name) != before
    assert sh(distro_lab, name, "cat /var/tmp/written-before-reboot").strip() == "kept"
    console = (distro_lab.host(name).dir / "console.log").read_text()
    assert ("nspawn exited 137" in console) == hard
    code, doc, err = fleetbr("-i", str(distro_lab.inventory_dir), "-l", name, "facts")
    assert code == 0, (doc, err)


def test_a_powered_off_host_stays_off_until_lab_reboot(distro_lab: Lab) -> None:
    host = distro_lab.host("hv04")
    old = init_pid(host)
    host_exec(distro_lab, host, ["systemctl", "poweroff"], check=False)
    deadline = time.monotonic() + 60
    while running(host) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(host) and init_pid(host) is None
    reboot(distro_lab, host)
    assert init_pid(host) not in (None, old)
    assert running(host)


def test_usage_errors(distro_lab: Lab) -> None:
    code, _, err = fleetbr("lab", "up", "--backend", "networkd", "--dir", "/nonexistent")
    assert code == 2 and "--backend needs --distro" in err
    code, _, err = fleetbr("lab", "reboot", "hv99", "--dir", str(distro_lab.dir))
    assert code == 2 and "no host 'hv99'" in err  # a usage error (issue 15, defect 11)
    with pytest.raises(LabError, match="unknown backend 'systemd'"):
        backends_for("systemd", 2)
    with pytest.raises(LabError, match="3 backends given for 2 hosts"):
        backends_for(["none", "none", "none"], 2)
    assert backends_for("mixed", 5) == [
        "ifupdown", "networkd", "netplan", "networkmanager", "ifupdown"
    ]  # fmt: skip


# --- lab down, in a namespace of its own ------------------------------------------------------


def _fingerprint(lab: Lab) -> dict[str, Any]:
    """What identifies the lab's processes, namespaces and mounts."""
    inits = [pid for pid in (init_pid(h) for h in lab.hosts) if pid]
    return {
        "pidns": sorted({os.readlink(f"/proc/{pid}/ns/pid") for pid in inits}),
        "cgroups": [cgroup(lab, h) for h in lab.hosts],
        "netns": sorted(
            os.readlink(f"/proc/{pid}/ns/net")
            for pid in [*inits, *(h.supervisor_pid or 0 for h in lab.hosts)]
            if pid
        ),
    }


def _leftovers(lab_dir: Path, print_: dict[str, Any]) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            pidns = os.readlink(proc / "ns/pid")
            netns = os.readlink(proc / "ns/net")
            mounts = (proc / "mountinfo").read_text()
        except OSError:
            continue
        if pidns in print_["pidns"] or netns in print_["netns"]:
            found.append(f"process {proc.name} of the lab")
        if str(lab_dir) in mounts:
            found.append(f"a mount of the lab dir seen by process {proc.name}")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"namespace {line}" for line in netns.splitlines()]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"link {line.split()[1]}" for line in links.splitlines() if "lo:" not in line]
    for root in CGROUP_ROOTS:
        for name in ("payload", "supervisor", *print_["cgroups"]):
            if Path(root, name).exists():
                found.append(f"cgroup {root}/{name}")
    if lab_dir.exists():
        found.append(f"{lab_dir} still exists")
    return found


def scenario_cycle(lab_dir: Path) -> list[str]:
    """Up two hosts (one with a daemon), reboot one hard, down; report what is left."""
    lab = up(lab_dir, 2, ["none", "networkmanager"], prefix="fbrdc")
    reboot(lab, "hv02", hard=True)
    fingerprint = _fingerprint(lab)
    assert all(any(Path(r, c).is_dir() for r in CGROUP_ROOTS) for c in fingerprint["cgroups"])
    down(lab_dir)
    return _leftovers(lab_dir, fingerprint)


def scenario_crash(lab_dir: Path) -> list[str]:
    """A lab whose processes were killed as scripts/in-netns does after a crashed run: its
    cgroups stay until the next `up` prunes them."""
    lab = up(lab_dir, 1, ["none"], prefix="fbrdk")
    groups = [Path(r, cgroup(lab, h)) for r in CGROUP_ROOTS for h in lab.hosts]
    kill([pid for h in lab.hosts for ns in h.namespaces() for pid in netns_pids(ns)])
    left = [g for g in groups if g.is_dir()]
    prune_stale_cgroups(min_age=0)
    down(lab_dir)
    problems = [f"{g} survived the prune" for g in groups if g.is_dir()]
    return problems if left else ["the crash left no cgroup to prune"]


def run_scenario(name: str, lab_dir: Path) -> list[str]:
    """Run scenario ``name`` of this file in a network namespace of its own; what it reports."""
    require_distro_cache()  # the scenario's own `up` would try to build it: no mirror here
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [str(REPO / "scripts/in-netns"), sys.executable, __file__, name, str(lab_dir)],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: list[str] = json.loads(proc.stdout)
    return result


def test_up_prunes_the_cgroups_of_a_crashed_lab(tmp_path: Path) -> None:
    assert run_scenario("crash", tmp_path / "crashed") == []


def test_down_leaves_no_process_mount_namespace_or_link(tmp_path: Path) -> None:
    nspawn_run = sorted(os.listdir("/run/systemd/nspawn")) if os.path.isdir(
        "/run/systemd/nspawn") else None  # fmt: skip
    assert run_scenario("cycle", tmp_path / "small") == []
    now = sorted(os.listdir("/run/systemd/nspawn")) if os.path.isdir(
        "/run/systemd/nspawn") else None  # fmt: skip
    assert now == nspawn_run, "nspawn wrote into this machine's /run"


if __name__ == "__main__":
    SCENARIOS = {"cycle": scenario_cycle, "crash": scenario_crash}
    print(json.dumps(SCENARIOS[sys.argv[1]](Path(sys.argv[2]))))
