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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetbr.changes.bridge.task import load_task, render_task
from fleetbr.facts.model import PIN_DIR, HostFacts, Route
from fleetbr.facts.parse import parse_pins
from fleetbr.facts.parse_ip import parse_addresses, parse_bridges, parse_links
from fleetbr.facts.parse_routes import parse_routes, parse_rules
from fleetbr.plan import (
    BridgePlan,
    plan_host,
    rollback_script,
    step_command,
    steps_script,
    verify_applied,
    verify_restored,
)
from fleetbr.plan import steps as mk
from fleetbr.plan.netfilter import SYSCTL_FILE, UDEV_FILE, sha256

REPO = Path(__file__).resolve().parents[2]
OLD_SYSCTL = "# an older bridge.conf that fleetbr must put back\n"


# Root in an isolated network namespace: skipped elsewhere, a failed run under scripts/in-netns
# (tests/conftest.py decides for every ``lab`` test, tests/isolation.py checks).
pytestmark = [pytest.mark.lab]


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
        # /run is the lab's own dir too (fleetbr's bridge records); the netns file is opened
        # before /run is covered, then entered through that descriptor.
        wrapper = (
            'exec 3<"/run/netns/$3"'
            ' && mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc'
            ' && mount --bind "$5" /run'
            ' && exec nsenter --net=/proc/self/fd/3 sh "$4"'
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
            str(self.root / "run"),
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


def read_facts(lab: Lab) -> HostFacts:
    """The host's facts through fleetbr's own parsers, from ``ip -j`` run here (faster than the
    whole facts script, whose process scan is slow on a busy machine)."""
    links = _ip_json(lab.host, "-d", "link", "show")
    probe = (
        "for k in iptables ip6tables arptables; do cat /proc/sys/net/bridge/bridge-nf-call-$k; "
        f"done; for f in {SYSCTL_FILE} {UDEV_FILE}; do "
        'if [ -e "$f" ]; then sha256sum "$f" | cut -d" " -f1; else echo none; fi; done\n'
        f'for f in {PIN_DIR}/*.json; do [ -f "$f" ] || continue; '
        'echo "pin $(sha256sum <"$f" | cut -d" " -f1) ${f##*/} '
        '$(base64 "$f" | tr -d "\\n")"; done\n'
    )
    out = lab.run(probe).stdout.splitlines()
    pins, pin_hashes = parse_pins([line for line in out if line.startswith("pin ")])
    lines = [line for line in out if not line.startswith("pin ")]
    assert len(lines) == 5, lines
    nf: dict[str, int | None] = {
        f"call-{k}": int(v)
        for k, v in zip(("iptables", "ip6tables", "arptables"), lines[:3], strict=True)
    }
    pairs = zip((SYSCTL_FILE, UDEV_FILE), lines[3:], strict=True)
    return HostFacts(
        hostname=lab.host,
        kernel=os.uname().release,
        pid1_systemd=False,
        links=parse_links(links),
        addresses=parse_addresses(_ip_json(lab.host, "addr", "show")),
        routes=tuple(
            route
            for family in (4, 6)
            for route in parse_routes(
                "routes", _ip_json(lab.host, f"-{family}", "route", "show", "table", "all"), family
            )
        ),
        bridges=parse_bridges(links, _bridge_links(lab.host), ()),
        bridge_nf=nf,
        docker=(),
        backends=(),
        libvirt=False,
        has_modules=False,  # a plan must never load a module into this machine's kernel
        has_sysctl=shutil.which("sysctl") is not None,
        managed_files={p: (None if h == "none" else h) for p, h in pairs} | pin_hashes,
        pins=pins,
        rules=tuple(
            rule
            for family in (4, 6)
            for rule in parse_rules("rules", _ip_json(lab.host, f"-{family}", "rule"), family)
        ),
        br_netfilter="builtin",
    )


def _bridge_links(ns: str) -> list[dict[str, Any]]:
    out = sh("ip", "netns", "exec", ns, "bridge", "-j", "link", "show").stdout
    data: list[dict[str, Any]] = json.loads(out or "[]")
    return data


def kernel_state(lab: Lab) -> dict[str, Any]:
    """Routes of every table, rules and addresses, raw from iproute2 (volatile fields dropped),
    once IPv6 DAD is over (a link-local address gets its local route only then)."""
    deadline = time.monotonic() + 10
    while _ip_json(lab.host, "-6", "addr", "show", "tentative") and time.monotonic() < deadline:
        time.sleep(0.1)

    def clean(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        drop = ("valid_life_time", "preferred_life_time", "ifindex", "link_index", "tentative")
        for item in items:
            for info in item.get("addr_info", []):
                for key in drop:
                    info.pop(key, None)
            for key in drop:
                item.pop(key, None)
        return sorted(items, key=lambda d: json.dumps(d, sort_keys=True))

    return {
        f"{what}{family}": clean(_ip_json(lab.host, f"-{family}", *args))
        for family in (4, 6)
        for what, args in (
            ("routes", ("route", "show", "table", "all")),
            ("rules", ("rule", "show")),
            ("addr", ("addr", "show")),
        )
    }


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """eth0 in a host namespace, its veth peer in a gateway namespace; v4+v6 default routes."""
    tag = f"{os.getpid()}-{tmp_path.name}"[-20:]
    this = Lab(f"fbr-h-{tag}", f"fbr-g-{tag}", tmp_path)
    for sub in ("upper/sysctl.d", "work", "backups", "run"):
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


def make_plan(lab: Lab, facts: HostFacts, task_file: str = "tasks/bridge.yaml") -> BridgePlan:
    """BridgePlan a task file for the lab host."""
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


def test_rollback_after_partial_apply_restores_exactly(lab: Lab) -> None:
    """Every prefix of the real plan (1 .. all but the last step), rolled back, is the host it
    was: a failed step anywhere leaves nothing behind."""
    before = read_facts(lab)
    plan = make_plan(lab, before)
    assert len(plan.steps) > 10, plan.steps  # the bridge task's plan, not a trivial one
    for k in range(1, len(plan.steps)):
        assert_ok(lab.run(steps_script(plan.steps[:k])))
        assert_ok(lab.run(rollback_script(plan.rollback)))
        left = verify_restored(before, read_facts(lab), plan)
        assert left == [], f"after {k} of {len(plan.steps)} steps ({plan.steps[k - 1].description})"


def test_rollback_twice_is_idempotent(lab: Lab) -> None:
    before = read_facts(lab)
    plan = make_plan(lab, before)
    assert_ok(lab.run(steps_script(plan.steps)))
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert verify_restored(before, read_facts(lab), plan) == []


def _as_a_daemon_configures(lab: Lab) -> None:
    """eth0's addresses as NetworkManager and networkd set them: no kernel prefix route
    (``noprefixroute``), the daemon's own prefix route at its device metric instead. (The
    kernel changes no flag of an existing IPv4 address on ``replace``: they are added anew.)"""
    h = lab.host
    sh("ip", "-n", h, "addr", "flush", "dev", "eth0", "scope", "global")
    for cidr in ("198.51.100.10/24", "2001:db8:100::10/64", "2001:db8:100::11/64"):
        family, extra = ("-6", ("nodad",)) if ":" in cidr else ("-4", ())
        sh("ip", "-n", h, family, "addr", "add", cidr, "dev", "eth0", "noprefixroute", *extra)
    for family, prefix in (("-4", "198.51.100.0/24"), ("-6", "2001:db8:100::/64")):
        sh("ip", "-n", h, family, "route", "add", prefix, "dev", "eth0", "proto", "kernel",
           "metric", "100")  # fmt: skip
    sh("ip", "-n", h, "route", "add", "default", "via", "198.51.100.1", "dev", "eth0")
    sh("ip", "-n", h, "-6", "route", "replace", "default", "via", "2001:db8:100::1", "dev", "eth0")


@pytest.mark.parametrize("retaken", [False, True], ids=["plain", "daemon-retook-first"])
def test_a_daemons_addresses_come_back_without_a_kernel_prefix_route(
    lab: Lab, retaken: bool
) -> None:
    """A daemon's addresses (``noprefixroute``, its own prefix route at metric 100) put back by
    the rollback keep the flag: no second prefix route appears (IPv4 metric 0, IPv6 256).
    ``retaken``: the daemon put an IPv6 address back on the NIC before the rollback's step ran
    (NetworkManager's autoconnect racing the rollback, found on the VM tier): the step's
    ``replace`` must not clear the flag on it."""
    _as_a_daemon_configures(lab)
    before = read_facts(lab)
    assert all(a.noprefixroute for a in before.addresses_of("eth0"))
    plan = make_plan(lab, before)
    assert_ok(lab.run(steps_script(plan.steps)))
    if retaken:
        sh("ip", "-n", lab.host, "-6", "addr", "add", "2001:db8:100::10/64", "dev", "eth0",
           "noprefixroute", "nodad")  # fmt: skip
    assert_ok(lab.run(rollback_script(plan.rollback)))
    restored = read_facts(lab)
    assert verify_restored(before, restored, plan) == []
    assert all(a.noprefixroute for a in restored.addresses_of("eth0"))
    assert lab.ping("198.51.100.1")
    assert lab.ping("2001:db8:100::1")


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


# --- routes of every table, sources and labels (issue 6 item 12) --------------------------------

ROUTED = [
    "addr add 198.51.100.12/24 dev eth0 label eth0:svc",
    "route add default via 198.51.100.1 dev eth0 table 100",
    "route add 203.0.113.128/25 via 198.51.100.1 dev eth0 src 198.51.100.12 proto static mtu 1400",
    "route add 198.51.100.64/26 dev eth0 scope link table 100 src 198.51.100.12",
    "route add blackhole 203.0.113.7/32 table 100",
    "route add unreachable 203.0.113.8/32 metric 7",
    "-6 route add 2001:db8:300::/48 via 2001:db8:100::1 dev eth0 table 100 pref high",
    "-6 route add prohibit 2001:db8:301::/48",
    "rule add from 198.51.100.12 lookup 100 priority 100",
]


def routed(lab: Lab) -> None:
    """Give the host routes in table 100, routes with a source, a labelled address, a rule."""
    for line in ROUTED:
        sh("ip", "-n", lab.host, *line.split())


def test_routes_of_every_table_move_and_come_back_exactly(lab: Lab) -> None:
    routed(lab)
    before, raw = read_facts(lab), kernel_state(lab)
    plan = make_plan(lab, before)
    assert_ok(lab.run(steps_script(plan.steps)))
    after = read_facts(lab)
    assert verify_applied(plan, after) == []
    moved = {(r.table, r.dst, r.dev, r.src) for r in after.routes}
    assert ("100", "default", "br0", None) in moved
    assert ("main", "203.0.113.128/25", "br0", "198.51.100.12") in moved
    assert ("100", "198.51.100.64/26", "br0", "198.51.100.12") in moved
    assert ("100", "2001:db8:300::/48", "br0", None) in moved
    assert [a.label for a in after.addresses_of("br0") if a.family == 4] == [None, "br0:svc"]
    assert lab.ping("198.51.100.1")
    assert_ok(lab.run(rollback_script(plan.rollback)))
    assert verify_restored(before, read_facts(lab), plan) == []
    assert kernel_state(lab) == raw


def test_routed_host_rollback_after_partial_apply_restores_exactly(lab: Lab) -> None:
    """As above for a host with routes in other tables, sources, labels and a rule: after every
    prefix of the real plan, the rollback puts the kernel's state back byte for byte."""
    routed(lab)
    before, raw = read_facts(lab), kernel_state(lab)
    plan = make_plan(lab, before)
    assert len(plan.steps) > 10, plan.steps
    for k in range(1, len(plan.steps)):
        assert_ok(lab.run(steps_script(plan.steps[:k])))
        assert_ok(lab.run(rollback_script(plan.rollback)))
        done = plan.steps[k - 1].description
        assert kernel_state(lab) == raw, f"after {k} of {len(plan.steps)} steps ({done})"


# --- route_del: "already gone" must mean gone (issue 6 item 7) ----------------------------------

# Make every `ip ... route del` fail, as when the kernel refuses a delete: the step may then only
# succeed if the route is really gone.
NO_DELETE = 'ip() { if [ "$2" = route ] && [ "$3" = del ]; then return 2; fi; command ip "$@"; }\n'


@pytest.mark.parametrize(
    "route",
    [
        Route(4, "203.0.113.7/32", "", type="blackhole"),
        Route(4, "203.0.113.8/32", "", metric=7, type="unreachable"),
        Route(4, "203.0.113.9/32", "", type="prohibit", table="100"),
        Route(6, "2001:db8:301::/48", "", metric=1024, type="prohibit"),
        Route(6, "2001:db8:302::/48", "", metric=1024, type="blackhole", table="100"),
        Route(4, "203.0.113.128/25", "eth0", "198.51.100.1", table="100"),
    ],
    ids=lambda r: f"{r.type}-{r.dst}-{r.table}",
)
def test_route_del_reports_gone_only_when_it_is(lab: Lab, route: Route) -> None:
    add = mk.route_add(route)
    delete = add.inverse
    assert delete is not None
    assert_ok(lab.run(step_command(add)))
    assert lab.run(NO_DELETE + step_command(delete)).returncode != 0  # still there: a failure
    assert_ok(lab.run(step_command(delete)))
    assert not any(r.dst == route.dst and r.table == route.table for r in read_facts(lab).routes), (
        "route still there"
    )
    assert_ok(lab.run(NO_DELETE + step_command(delete)))  # gone: a rollback may run twice
    assert_ok(lab.run(step_command(add)))  # and put back
    assert any(r.dst == route.dst and r.type == route.type for r in read_facts(lab).routes)


# --- br_netfilter: unload only what the apply loaded, when nothing uses it (item 2) -------------

# A private /sys/module and stand-ins for modprobe/rmmod: the machine's kernel is never touched.
FAKE_MODULES = """
mount -t tmpfs fleetbr-test /sys/module
m=/sys/module/br_netfilter
load() { mkdir -p "$m/holders"; echo live > "$m/initstate"; echo 0 > "$m/refcnt"; }
modprobe() { echo "modprobe $*" >> "$LOG"; load; }
rmmod() { echo "rmmod $*" >> "$LOG"; rm -rf "$m"; }
"""


def run_modules(lab: Lab, setup: str, *steps: str) -> tuple[list[str], bool]:
    """Run ``steps`` with the fake modules after ``setup``; (calls made, module loaded after)."""
    log = lab.root / "modules.log"
    log.write_text("")
    script = (
        f"LOG={log}\n{FAKE_MODULES}{setup}\n"
        + "\n".join(f"{s} || exit 9" for s in steps)
        + '\n[ -e "$m/initstate" ] && echo LOADED || :\n'
    )
    out = lab.run(script)
    assert out.returncode == 0, out.stderr
    return log.read_text().splitlines(), "LOADED" in out.stdout


def test_module_loaded_by_the_apply_is_unloaded_by_the_rollback(lab: Lab) -> None:
    load = mk.modprobe("br_netfilter", str(lab.backups))
    assert load.inverse is not None
    unload = step_command(load.inverse)
    calls, loaded = run_modules(lab, "", step_command(load), unload, unload)
    assert calls == ["modprobe br_netfilter", "rmmod br_netfilter"] and not loaded
    assert not (lab.backups / "module-br_netfilter.loaded").exists()


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        ("load", "loaded before the apply"),
        ("", "in use (refcount 1)"),
        ("", "a dependent module holds it"),
    ],
)
def test_module_that_is_not_ours_alone_stays_loaded(lab: Lab, setup: str, why: str) -> None:
    load = mk.modprobe("br_netfilter", str(lab.backups))
    assert load.inverse is not None
    use = {
        "in use (refcount 1)": 'echo 1 > "$m/refcnt"',
        "a dependent module holds it": 'mkdir "$m/holders/xt_physdev"',
    }.get(why, ":")
    calls, loaded = run_modules(lab, setup, step_command(load), use, step_command(load.inverse))
    assert loaded, why
    assert "rmmod br_netfilter" not in calls
    assert calls == ([] if setup else ["modprobe br_netfilter"])


@pytest.mark.parametrize(("accept_ra", "autoconf"), [("0", "0"), ("2", "1")])
def test_a_new_bridge_takes_the_nics_router_advertisement_settings(
    lab: Lab, accept_ra: str, autoconf: str
) -> None:
    """A new link starts with the kernel's IPv6 defaults (accept_ra 1): a static NIC with
    ``accept_ra 0`` became a bridge that took a router advertisement's default route (CI, the
    distro demo: the confirm saw it and rolled the host back). The bridge gets the NIC's
    ``accept_ra`` and ``autoconf`` before it comes up, whatever they are."""
    conf = "/proc/sys/net/ipv6/conf"
    assert_ok(lab.run(f"echo {accept_ra} > {conf}/eth0/accept_ra && "
                      f"echo {autoconf} > {conf}/eth0/autoconf"))  # fmt: skip
    before = read_facts(lab)
    plan = make_plan(lab, before)
    assert_ok(lab.run(steps_script(plan.steps)))
    got = lab.run(f"cat {conf}/br0/accept_ra {conf}/br0/autoconf")
    assert got.stdout.split() == [accept_ra, autoconf], got
    assert_ok(lab.run(rollback_script(plan.rollback)))
