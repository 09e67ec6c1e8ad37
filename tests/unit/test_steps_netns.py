"""Run rendered plan steps for real in scratch network namespaces and check the resulting state.

Needs root and an isolated network namespace (run through ``scripts/in-netns`` or
``unshare -n -m --propagation private``). The steps run inside ``unshare -m`` with an overlay
over /etc whose upper layer is a temp dir, so managed files never reach this machine's /etc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetbr.facts.model import Address, Bridge, HostFacts, Link, Route
from fleetbr.plan import (
    Plan,
    plan_host,
    rollback_script,
    steps_script,
    verify_applied,
    verify_restored,
)
from fleetbr.plan.netfilter import SYSCTL_FILE, UDEV_FILE, sha256
from fleetbr.tasks import load_task, render_task

REPO = Path(__file__).resolve().parents[2]
OLD_SYSCTL = "# an older bridge.conf that fleetbr must put back\n"


def _isolated() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=False)
    return out.returncode == 0 and "192.0.2." not in out.stdout and "fd00::" not in out.stdout


pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not _isolated(), reason="needs root inside an isolated network namespace"),
]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a local command (test setup only), failing loudly."""
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {result.returncode}: {result.stderr}")
    return result


@dataclass
class Lab:
    """A host namespace with eth0, a gateway namespace, and a private /etc overlay."""

    host: str
    gw: str
    root: Path

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with sh inside the host namespace, /etc overlaid by the lab's layer."""
        path = self.root / "script.sh"
        path.write_text(script)
        wrapper = (
            'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc'
            ' && exec ip netns exec "$3" sh "$4"'
        )
        upper, work = self.root / "upper", self.root / "work"
        return sh(
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            wrapper,
            "sh",
            str(upper),
            str(work),
            self.host,
            str(path),
            check=False,
        )

    def ping(self, address: str) -> bool:
        """True if ``address`` answers one ping from the host namespace."""
        flag = "-6" if ":" in address else "-4"
        cmd = ("ip", "netns", "exec", self.host, "ping", flag, "-c1", "-W2", address)
        return sh(*cmd, check=False).returncode == 0


def _ip_json(ns: str, *args: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(sh("ip", "-n", ns, "-j", *args).stdout or "[]")
    return data


def _links(ns: str) -> tuple[tuple[Link, ...], tuple[Bridge, ...]]:
    raw = _ip_json(ns, "-d", "link", "show")
    links = tuple(
        Link(
            name=d["ifname"],
            kind=d.get("linkinfo", {}).get("info_kind", d.get("link_type", "ether")),
            mac=d.get("address"),
            mtu=d["mtu"],
            state=d["operstate"],
            admin_up="UP" in d["flags"],
            master=d.get("master"),
        )
        for d in raw
    )
    bridges = tuple(
        Bridge(
            name=d["ifname"],
            stp=d["linkinfo"]["info_data"]["stp_state"] != 0,
            forward_delay=d["linkinfo"]["info_data"]["forward_delay"] // 100,
            ports=tuple(link.name for link in links if link.master == d["ifname"]),
        )
        for d in raw
        if d.get("linkinfo", {}).get("info_kind") == "bridge"
    )
    return links, bridges


def _addresses(ns: str) -> tuple[Address, ...]:
    return tuple(
        Address(
            d["ifname"],
            4 if a["family"] == "inet" else 6,
            f"{a['local']}/{a['prefixlen']}",
            a["scope"],
        )
        for d in _ip_json(ns, "addr", "show")
        for a in d.get("addr_info", [])
    )


def _routes(ns: str) -> tuple[Route, ...]:
    out: list[Route] = []
    for family in (4, 6):
        for r in _ip_json(ns, f"-{family}", "route", "show", "table", "main"):
            out.append(
                Route(
                    family,
                    r["dst"],
                    r["dev"],
                    r.get("gateway"),
                    r.get("metric"),
                    r.get("protocol", "boot"),
                )
            )
    return tuple(out)


def read_facts(lab: Lab) -> HostFacts:
    """A minimal facts reader for the lab host (the real one lives in fleetbr.facts)."""
    links, bridges = _links(lab.host)
    probe = (
        "for k in iptables ip6tables arptables; do cat /proc/sys/net/bridge/bridge-nf-call-$k; "
        f"done; for f in {SYSCTL_FILE} {UDEV_FILE}; do "
        'if [ -e "$f" ]; then sha256sum "$f" | cut -d" " -f1; else echo none; fi; done\n'
    )
    lines = lab.run(probe).stdout.split()
    assert len(lines) == 5, lines
    nf: dict[str, int | None] = {
        f"call-{k}": int(v)
        for k, v in zip(("iptables", "ip6tables", "arptables"), lines[:3], strict=True)
    }
    pairs = zip((SYSCTL_FILE, UDEV_FILE), lines[3:], strict=True)
    files = {p: (None if h == "none" else h) for p, h in pairs}
    return HostFacts(
        hostname=lab.host,
        kernel=os.uname().release,
        pid1_systemd=False,
        links=links,
        addresses=_addresses(lab.host),
        routes=_routes(lab.host),
        bridges=bridges,
        bridge_nf=nf,
        docker=(),
        backends=(),
        libvirt=False,
        has_modules=False,
        has_sysctl=shutil.which("sysctl") is not None,
        managed_files=files,
    )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """eth0 in a host namespace, its veth peer in a gateway namespace; v4+v6 default routes."""
    tag = f"{os.getpid()}-{tmp_path.name}"[-20:]
    this = Lab(f"fbr-h-{tag}", f"fbr-g-{tag}", tmp_path)
    for sub in ("upper/sysctl.d", "work", "backups"):
        (tmp_path / sub).mkdir(parents=True)
    # sysctl.d/bridge.conf exists before (restore path); the udev rule does not (remove path).
    (tmp_path / "upper/sysctl.d/bridge.conf").write_text(OLD_SYSCTL)
    (this.backups / "%etc%sysctl.d%bridge.conf").write_text(OLD_SYSCTL)
    h, g = this.host, this.gw
    setup = [
        ("ip", "netns", "add", h),
        ("ip", "netns", "add", g),
        ("ip", "-n", h, "link", "add", "eth0", "type", "veth", "peer", "name", "gw0", "netns", g),
        ("ip", "-n", g, "addr", "add", "198.51.100.1/24", "dev", "gw0"),
        ("ip", "-n", g, "-6", "addr", "add", "2001:db8:100::1/64", "dev", "gw0", "nodad"),
        ("ip", "-n", h, "addr", "add", "198.51.100.10/24", "dev", "eth0"),
        ("ip", "-n", h, "-6", "addr", "add", "2001:db8:100::10/64", "dev", "eth0", "nodad"),
        ("ip", "-n", h, "-6", "addr", "add", "2001:db8:100::11/64", "dev", "eth0", "nodad"),
    ]
    setup += [("ip", "-n", ns, "link", "set", dev, "up") for ns in (h, g) for dev in ("lo",)]
    setup += [
        ("ip", "-n", g, "link", "set", "gw0", "up"),
        ("ip", "-n", h, "link", "set", "eth0", "up"),
    ]
    setup += [
        ("ip", "-n", h, "route", "add", "default", "via", "198.51.100.1", "dev", "eth0"),
        (
            "ip",
            "-n",
            h,
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "198.51.100.1",
            "dev",
            "eth0",
            "metric",
            "50",
        ),
        ("ip", "-n", h, "-6", "route", "add", "default", "via", "2001:db8:100::1", "dev", "eth0"),
    ]
    try:
        for cmd in setup:
            sh(*cmd)
        yield this
    finally:
        sh("ip", "netns", "del", h, check=False)
        sh("ip", "netns", "del", g, check=False)


def make_plan(lab: Lab, facts: HostFacts, task_file: str = "tasks/bridge.yaml") -> Plan:
    """Plan a task file for the lab host."""
    host = {
        "name": lab.host,
        "hostname": lab.host,
        "port": 22,
        "groups": [],
        "data": {"nic": "eth0"},
    }
    task = render_task(load_task(REPO / task_file), host)
    plan = plan_host(task, facts, min_timeout=20, backup_dir=str(lab.backups))
    assert plan.refusal is None, plan.refusal
    return plan


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr


def test_apply_reaches_expected_state_and_rollback_restores(lab: Lab) -> None:
    before = read_facts(lab)
    plan = make_plan(lab, before)
    assert_ok(lab.run(steps_script(plan.steps)))
    after = read_facts(lab)
    assert verify_applied(plan, after) == []
    assert verify_restored(before, after, plan) != []
    assert lab.ping("198.51.100.1")
    assert lab.ping("2001:db8:100::1")
    assert make_plan(lab, after).unchanged
    assert_ok(lab.run(rollback_script(plan.rollback)))
    restored = read_facts(lab)
    assert verify_restored(before, restored, plan) == []
    assert (lab.root / "upper/sysctl.d/bridge.conf").read_text() == OLD_SYSCTL
    assert restored.managed_files[UDEV_FILE] is None
    assert restored.managed_files[SYSCTL_FILE] == sha256(OLD_SYSCTL)
    assert lab.ping("198.51.100.1")
    assert lab.ping("2001:db8:100::1")


@pytest.mark.parametrize("k", range(1, 20))
def test_rollback_after_partial_apply_restores_exactly(lab: Lab, k: int) -> None:
    before = read_facts(lab)
    plan = make_plan(lab, before)
    if k >= len(plan.steps):
        pytest.skip(f"the plan has only {len(plan.steps)} steps")
    assert_ok(lab.run(steps_script(plan.steps[:k])))
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert verify_restored(before, read_facts(lab), plan) == []


def test_rollback_twice_is_idempotent(lab: Lab) -> None:
    before = read_facts(lab)
    plan = make_plan(lab, before)
    assert_ok(lab.run(steps_script(plan.steps)))
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert verify_restored(before, read_facts(lab), plan) == []


def test_cut_off_task_cuts_the_host_and_rollback_heals_it(lab: Lab) -> None:
    before = read_facts(lab)
    plan = make_plan(lab, before, "tasks/cut-off.yaml")
    assert_ok(lab.run(steps_script(plan.steps)))
    assert not lab.ping("198.51.100.1")
    assert verify_applied(plan, read_facts(lab)) == []  # applied as written: the task is wrong
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert verify_restored(before, read_facts(lab), plan) == []
    assert lab.ping("198.51.100.1")


def test_unbridge_mirrors_bridge_and_its_rollback_rebridges(lab: Lab) -> None:
    assert_ok(lab.run(steps_script(make_plan(lab, read_facts(lab)).steps)))
    bridged = read_facts(lab)
    plan = make_plan(lab, bridged, "tasks/unbridge.yaml")
    assert_ok(lab.run(steps_script(plan.steps)))
    unbridged = read_facts(lab)
    assert verify_applied(plan, unbridged) == []
    assert lab.ping("198.51.100.1")
    assert lab.ping("2001:db8:100::1")
    assert make_plan(lab, unbridged, "tasks/unbridge.yaml").unchanged
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert verify_restored(bridged, read_facts(lab), plan) == []
    assert lab.ping("198.51.100.1")


def test_bridge_settings_change_in_place(lab: Lab, tmp_path: Path) -> None:
    """STP on with a longer delay and an explicit MAC, then back: the kernel's ordering rule."""
    before = read_facts(lab)
    assert_ok(lab.run(steps_script(make_plan(lab, before).steps)))
    bridged = read_facts(lab)
    text = (REPO / "tasks/bridge.yaml").read_text()
    text = text.replace("stp: false", "stp: true").replace("forward_delay: 4", "forward_delay: 2")
    text = text.replace("mac: nic", "mac: 02:00:00:00:00:42")
    task_file = tmp_path / "stp.yaml"
    task_file.write_text(text)
    plan = make_plan(lab, bridged, str(task_file))
    assert [s.kind for s in plan.steps] == ["bridge_set"]
    assert_ok(lab.run(steps_script(plan.steps)))
    assert verify_applied(plan, read_facts(lab)) == []
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert verify_restored(bridged, read_facts(lab), plan) == []
    assert read_facts(lab).bridges == bridged.bridges
