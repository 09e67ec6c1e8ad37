"""step_command: one quoted, syntactically valid sh line per step kind; file steps run for real."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetbr.errors import ValidationError
from fleetbr.facts.model import Route
from fleetbr.plan import Step, plan_host, rollback_script, step_command, steps_script
from fleetbr.plan import steps as mk
from fleetbr.plan.model import STEP_KINDS
from tests.unit.test_plan_support import bridged, facts, task
from tests.unit.test_topology_steps import TOPOLOGY_STEPS

ALL_STEPS: list[Step] = [
    mk.bridge_add("br0", "52:54:00:12:34:56", True, 15),
    mk.bridge_set("br0", (None, False, 0), ("52:54:00:12:34:56", True, 15)),
    mk.bridge_del("br0", "52:54:00:12:34:56", False, 4),
    mk.link_master("eth0", "br0"),
    mk.link_nomaster("eth0", "br0"),
    mk.link_up("br0", undo=True),
    mk.link_down("br0"),
    mk.addr_add("br0", "198.51.100.10/24"),
    mk.addr_del("eth0", "2001:db8:100::10/64"),
    mk.route_add(Route(6, "default", "br0", "2001:db8:100::1", 1024, "ra"), onlink=True),
    mk.route_del(Route(4, "203.0.113.0/24", "eth0", None, None, "static")),
    mk.sysctl_set("net.bridge.bridge-nf-call-iptables", 0, 1),
    mk.sysctl_load("/etc/sysctl.d/bridge.conf"),
    mk.file_write(
        "/etc/x.conf", "a 'quoted' $(reboot) `x`\n\nlast\n", existed=True, backup_dir=None
    ),
    mk.modprobe("br_netfilter", None),
]
ALL_STEPS.append(ALL_STEPS[-1].inverse)  # type: ignore[arg-type]  # module_unload
ALL_STEPS.append(ALL_STEPS[-3].inverse)  # type: ignore[arg-type]  # file_restore, kept last


def _backend_steps(backend: str, renderer: str | None = None) -> list[Step]:
    args: dict[str, str | None] = {"backend": backend, "bridge": "br0", "nic": "eth0.10"}
    if backend == "networkmanager":
        args |= {
            "bridge_uuid": "11111111-2222-4333-8444-555555555555",
            "port_uuid": "11111111-2222-4333-8444-666666666666",
            "old_uuid": "11111111-2222-4333-8444-777777777777",
        }
    if renderer:
        args["renderer"] = renderer
    reapply, release = mk.backend_marks(args)
    return [reapply, release, mk.backend_apply(args), reapply.inverse, release.inverse]  # type: ignore[list-item]


def _hold_steps() -> list[Step]:
    """networkd's hold of a new bond's slaves, its undo, and the apply that drops it."""
    args: dict[str, str | None] = {"backend": "networkd", "bridge": "br0", "nic": "bond0"}
    args |= {"links": "br0 bond0 eth0 eth1", "hold_links": "eth0 eth1"}
    hold = mk.backend_hold(args)
    assert hold.inverse is not None
    return [hold, hold.inverse, mk.backend_apply(args)]


BACKEND_STEPS: list[Step] = [
    *_hold_steps(),
    mk.file_remove("/etc/systemd/network/10-eth0.network", None),
    mk.file_guard("/etc/NetworkManager/system-connections/eth0.nmconnection", None),
    *_backend_steps("networkd"),
    *_backend_steps("netplan", "networkd"),
    *_backend_steps("netplan", "NetworkManager"),
    *_backend_steps("networkmanager"),
    *_backend_steps("ifupdown"),
]


def test_every_kind_is_covered() -> None:
    # run_staged (fleetbr run --deadman) is covered in tests/unit/test_plan_command.py
    # guest_update (libvirt guests) is covered in tests/unit/test_guests.py
    # bonds, VLAN devices and the bridge VLAN table in tests/unit/test_topology_steps.py
    kinds = {s.kind for s in ALL_STEPS + BACKEND_STEPS + TOPOLOGY_STEPS}
    assert kinds | {"run_staged", "guest_update"} == STEP_KINDS


@pytest.mark.parametrize("step", BACKEND_STEPS, ids=lambda s: f"{s.kind}-{s.args.get('backend')}")
def test_backend_steps_are_one_valid_sh_line(step: Step) -> None:
    command = step_command(step)
    assert "\n" not in command
    check = subprocess.run(["sh", "-n", "-c", f"if ! {command}; then exit 1; fi"], check=False)
    assert check.returncode == 0


def test_backend_arguments_are_validated() -> None:
    with pytest.raises(ValidationError):
        mk.backend_hold({"backend": "networkd", "bridge": "br0", "nic": "bond0",
                         "hold_links": "eth0 $(reboot)"})  # fmt: skip
    with pytest.raises(ValidationError):
        mk.backend_apply({"backend": "networkd", "bridge": "br0;reboot", "nic": "eth0"})
    with pytest.raises(ValidationError):
        mk.backend_apply({"backend": "systemd", "bridge": "br0", "nic": "eth0"})
    with pytest.raises(ValidationError):
        mk.backend_apply({"backend": "networkmanager", "bridge": "br0", "nic": "eth0",
                          "old_uuid": "$(reboot)"})  # fmt: skip


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: s.kind)
def test_one_line_and_valid_sh(step: Step) -> None:
    command = step_command(step)
    assert "\n" not in command
    check = subprocess.run(["sh", "-n", "-c", f"if ! {command}; then exit 1; fi"], check=False)
    assert check.returncode == 0
    if step.inverse is not None:
        assert "\n" not in step_command(step.inverse)


def test_exact_renderings() -> None:
    assert step_command(ALL_STEPS[3]) == "ip link set dev eth0 master br0"
    assert step_command(ALL_STEPS[7]) == "ip -4 addr replace 198.51.100.10/24 dev br0"
    assert step_command(ALL_STEPS[9]) == (
        "ip -6 route replace default via 2001:db8:100::1 dev br0 metric 1024 proto ra onlink"
    )
    assert step_command(ALL_STEPS[11]) == (
        "printf '%s\\n' 0 > /proc/sys/net/bridge/bridge-nf-call-iptables"
    )
    add = step_command(ALL_STEPS[0])
    assert "forward_delay 1500 stp_state 1" in add  # delay before stp: the kernel checks in order


def test_stp_off_is_switched_before_the_delay_drops() -> None:
    command = step_command(ALL_STEPS[1])
    assert command.index("stp_state 0") < command.index("forward_delay 0")
    assert "address" not in command  # no MAC to enforce


def test_default_backup_dir_is_the_transactions_variable() -> None:
    restore = step_command(ALL_STEPS[-1])
    assert '"${FLEETBR_BACKUP_DIR:?}"/%etc%x.conf' in restore


def test_hostile_values_never_reach_the_validators_output() -> None:
    with pytest.raises(Exception, match="interface name"):
        mk.link_master("eth0;reboot", "br0")
    with pytest.raises(Exception, match="path"):
        mk.sysctl_load("/etc/x; reboot")
    with pytest.raises(Exception, match="bridge-nf-call"):
        mk.sysctl_set("kernel.panic", 1, 0)
    with pytest.raises(Exception, match="end with a newline"):
        mk.file_write("/etc/x", "no newline", existed=False, backup_dir=None)


def run(command: str, env: dict[str, str] | None = None) -> int:
    return subprocess.run(["sh", "-c", command], env=env, check=False).returncode


def test_file_write_and_restore_for_real(tmp_path: Path) -> None:
    target = tmp_path / "etc/sysctl.d/bridge.conf"
    backups = tmp_path / "backups"
    backups.mkdir()
    content = "it's $(not) run\n`nor this`\n"
    new_file = mk.file_write(str(target), content, existed=False, backup_dir=str(backups))
    assert run(step_command(new_file)) == 0
    assert target.read_text() == content
    assert new_file.inverse is not None
    assert run(step_command(new_file.inverse)) == 0
    assert not target.exists()
    assert run(step_command(new_file.inverse)) == 0  # tolerant: already gone

    target.write_text("old\n")
    (backups / str(target).replace("/", "%")).write_text("old\n")
    replace = mk.file_write(str(target), content, existed=True, backup_dir=None)
    env = {"PATH": "/usr/bin:/bin", "FLEETBR_BACKUP_DIR": str(backups)}
    assert run(step_command(replace), env) == 0
    assert target.read_text() == content
    assert replace.inverse is not None
    assert run(step_command(replace.inverse), env) == 0
    assert target.read_text() == "old\n"
    assert run(step_command(replace.inverse), {"PATH": "/usr/bin:/bin"}) != 0  # no backup dir


def test_scripts_stop_or_keep_going(tmp_path: Path) -> None:
    # Restoring a backup that was never staged fails (and touches nothing outside tmp_path).
    write = mk.file_write(str(tmp_path / "f"), "x\n", existed=True, backup_dir=str(tmp_path))
    fail = write.inverse
    assert fail is not None
    ok = mk.sysctl_load("/nonexistent/fleetbr.conf")
    stop = subprocess.run(
        ["sh", "-c", steps_script([fail, ok])], capture_output=True, text=True, check=False
    )
    assert stop.returncode == 1
    assert f"fleetbr: step 1 failed: restore the previous {tmp_path}/f" in stop.stderr
    keep = subprocess.run(
        ["sh", "-c", rollback_script([fail, fail])], capture_output=True, text=True, check=False
    )
    assert keep.returncode == 1
    assert "step 2 failed" in keep.stderr


def test_a_restore_of_a_file_that_is_its_backup_writes_nothing(tmp_path: Path) -> None:
    """A write that failed left the file as its backup: the restore leaves it (it holds on a
    full disk and on a file that cannot be replaced); a written file is put back."""
    target, backups = tmp_path / "f", tmp_path / "b"
    backups.mkdir()
    target.write_text("old\n")
    shutil.copy2(target, backups / str(target).replace("/", "%"))
    write = mk.file_write(str(target), "new\n", existed=True, backup_dir=str(backups))
    assert write.inverse is not None
    restore = ["sh", "-c", step_command(write.inverse)]
    inode = target.stat().st_ino
    assert subprocess.run(restore, check=False).returncode == 0
    assert (target.stat().st_ino, target.read_text()) == (inode, "old\n")
    target.chmod(0o600)  # same bytes, another mode: put back
    assert subprocess.run(restore, check=False).returncode == 0
    assert target.stat().st_ino != inode and target.stat().st_mode & 0o777 == 0o644
    target.write_text("new\n")
    assert subprocess.run(restore, check=False).returncode == 0
    assert target.read_text() == "old\n"


def test_a_real_plan_renders_completely() -> None:
    unbridge = task("bridge: {state: absent}")
    for p in (
        plan_host(task(), facts(), min_timeout=20),
        plan_host(unbridge, bridged(facts()), min_timeout=20),
    ):
        script = steps_script(p.steps) + rollback_script(p.rollback)
        assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0


def test_an_ipv6_address_goes_back_with_the_duplicate_detection_it_had() -> None:
    """A moved address is usable at once on the bridge (nodad); put back on the NIC it gets the
    flag it had: a daemon's address (no nodad) is detected again, as at boot."""
    daemon = mk.addr_del("eth0", "2001:db8:100::a/64", nodad=False)
    lab = mk.addr_del("eth0", "2001:db8:100::a/64", nodad=True)
    assert daemon.inverse is not None and lab.inverse is not None
    assert step_command(daemon.inverse) == "ip -6 addr replace 2001:db8:100::a/64 dev eth0"
    assert step_command(lab.inverse).endswith(" dev eth0 nodad")
    moved = mk.addr_add("br0", "2001:db8:100::a/64")
    assert step_command(moved).endswith(" dev br0 nodad")


@pytest.mark.parametrize("cidr", ["198.51.100.10/24", "2001:db8:100::a/64"])
def test_an_address_goes_back_without_a_kernel_prefix_route_when_it_had_none(cidr: str) -> None:
    """A daemon's address (``noprefixroute``) put back keeps the flag, so the kernel adds no
    second prefix route beside the daemon's; a plain one gets the kernel's route as before."""
    daemon = mk.addr_del("eth0", cidr, noprefixroute=True)
    plain = mk.addr_del("eth0", cidr)
    assert daemon.inverse is not None and plain.inverse is not None
    assert step_command(daemon.inverse).endswith(" noprefixroute")
    assert "noprefixroute" not in step_command(plain.inverse)
    assert "noprefixroute" not in step_command(mk.addr_add("br0", cidr))


def test_the_rollback_puts_a_daemons_addresses_back_with_their_flag() -> None:
    """Planned from a host whose NIC addresses a daemon set (``noprefixroute``): every address
    the rollback puts back on the NIC carries the flag; the bridge's (the apply's) do not."""
    before = facts()
    daemon = dataclasses.replace(
        before,
        addresses=tuple(
            dataclasses.replace(a, noprefixroute=a.scope == "global") for a in before.addresses
        ),
    )
    plan = plan_host(task(), daemon, min_timeout=20)
    back = [s for s in plan.rollback if s.kind == "addr_add" and s.args["dev"] == "eth0"]
    assert len(back) == 2, plan.rollback
    assert all(step_command(s).endswith(" noprefixroute") for s in back)
    onto = [s for s in plan.steps if s.kind == "addr_add"]
    assert onto and not any("noprefixroute" in step_command(s) for s in onto)


def test_steps_of_an_older_fleetbr_without_the_flag_still_render() -> None:
    """A resumed run's steps were saved before ``noprefixroute`` existed: no flag, no error."""
    step = mk.addr_del("eth0", "2001:db8:100::a/64")
    assert step.inverse is not None
    args = {k: v for k, v in step.inverse.args.items() if k != "noprefixroute"}
    old = Step("addr_add", args, step.inverse.description)
    assert step_command(old) == "ip -6 addr replace 2001:db8:100::a/64 dev eth0 nodad"
