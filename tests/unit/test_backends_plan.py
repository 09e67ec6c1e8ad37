"""Persistence backends, pure parts: choose() for ``persist:``, each backend's rendering, and the
persist steps around the runtime ones. Facts recorded on real distro lab hosts
(tests/data/facts/distro_*.txt, see tests/data/facts/record_distro.py)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from fleetbr.backends import BackendRefusal, BridgeConfig, choose, plan_backend
from fleetbr.backends.networkmanager import backend as nm
from fleetbr.facts.model import Backend, DaemonView, HostFacts, InterfaceManager, Route
from fleetbr.facts.parse import parse_facts
from fleetbr.plan import plan_host
from fleetbr.transaction.scripts import staged_scripts
from fleetbr.transaction.verdict import daemons_settling
from tests.unit.test_facts_parse import raw
from tests.unit.test_plan_support import task

BACKENDS = ("ifupdown", "networkd", "netplan", "networkmanager")
PERSIST_TASK = """
bridge:
  name: br0
  nic: "{{ host.data.nic }}"
  mac: nic
persist: PERSIST
"""


def facts(name: str) -> HostFacts:
    return parse_facts(raw(f"distro_{name}"))


def config(f: HostFacts) -> BridgeConfig:
    """br0 over eth0 with the addresses and default routes eth0 has in ``f``."""
    eth0 = f.link("eth0")
    assert eth0 is not None
    return BridgeConfig(
        name="br0",
        nic="eth0",
        mac=eth0.mac,
        stp=False,
        forward_delay=4,
        addresses=tuple(a.cidr for a in f.addresses_of("eth0")),
        routes=tuple(dataclasses.replace(r, dev="br0") for r in f.default_routes()),
    )


def persist(name: str, persist: str = "auto") -> str:
    return PERSIST_TASK.replace("PERSIST", persist)


# --- choose ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_auto_picks_the_daemon_that_manages_the_nic(backend: str) -> None:
    assert choose("auto", "refuse", facts(backend), "eth0", "br0") == backend


def test_auto_on_a_nic_no_daemon_manages_is_runtime_only() -> None:
    assert choose("auto", "refuse", facts("none"), "eth0", "br0") == "none"


@pytest.mark.parametrize("backend", BACKENDS)
def test_none_on_a_managed_nic_is_refused_unless_accepted(backend: str) -> None:
    with pytest.raises(BackendRefusal, match=f"managed by {backend}.*daemon_conflict: accept"):
        choose("none", "refuse", facts(backend), "eth0", "br0")
    assert choose("none", "accept", facts(backend), "eth0", "br0") == "none"


def test_a_backend_whose_daemon_does_not_run_is_refused() -> None:
    with pytest.raises(BackendRefusal, match="needs networkmanager, which is not running"):
        choose("networkmanager", "refuse", facts("networkd"), "eth0", "br0")


def test_a_backend_that_is_not_installed_is_refused() -> None:
    f = facts("none")
    gone = (*[b for b in f.backends if b.name != "netplan"], Backend("netplan", False, False))
    with pytest.raises(BackendRefusal, match="persist: netplan is not installed"):
        choose("netplan", "refuse", dataclasses.replace(f, backends=gone), "eth0", "br0")


def test_another_daemons_nic_is_refused() -> None:
    with pytest.raises(BackendRefusal, match="eth0 is managed by networkd; persist: ifupdown"):
        choose("ifupdown", "refuse", facts("networkd"), "eth0", "br0")


def test_two_daemons_claiming_the_nic_is_refused() -> None:
    f = facts("networkd")
    eth0 = f.manager("eth0")
    views = (*eth0.views, DaemonView("ifupdown", "up", (), claims=True))
    both = InterfaceManager("eth0", eth0.manager, eth0.state, eth0.files, views)
    daemons = dataclasses.replace(f.daemons, interfaces={**f.daemons.interfaces, "eth0": both})
    with pytest.raises(BackendRefusal, match="configured by networkd and ifupdown at once"):
        choose("auto", "refuse", dataclasses.replace(f, daemons=daemons), "eth0", "br0")


# --- rendering -------------------------------------------------------------------------------


def test_networkd_files() -> None:
    f = facts("networkd")
    plan = plan_backend("networkd", config(f), f)
    files = {c.path: c.content or "" for c in plan.files}
    netdev = files["/etc/systemd/network/10-br0.netdev"]
    assert "Kind=bridge" in netdev and "STP=no" in netdev and "ForwardDelaySec=4" in netdev
    assert f"MACAddress={config(f).mac}" in netdev
    network = files["/etc/systemd/network/10-br0.network"]
    assert all(f"Address={a}" in network for a in config(f).addresses)
    assert network.count("[Route]") == len(config(f).routes)
    port = files["/etc/systemd/network/10-eth0.network"]
    assert "Name=eth0" in port and "Bridge=br0" in port and "Address=" not in port
    assert plan.managers == ("br0", "eth0")


def test_netplan_rewrites_the_one_file_keeping_the_rest() -> None:
    f = facts("netplan")
    plan = plan_backend("netplan", config(f), f)
    (change,) = plan.files
    assert (change.path, change.mode) == ("/etc/netplan/01-netcfg.yaml", "0600")
    doc = yaml.safe_load(change.content or "")["network"]
    br0, eth0 = doc["bridges"]["br0"], doc["ethernets"]["eth0"]
    assert br0["interfaces"] == ["eth0"] and br0["macaddress"] == config(f).mac
    assert br0["addresses"] == list(config(f).addresses)
    assert br0["parameters"] == {"stp": False, "forward-delay": 4}
    assert "addresses" not in eth0 and "routes" not in eth0 and eth0["dhcp4"] is False
    assert plan.args["renderer"] == "networkd"


def test_netplan_nic_in_two_files_is_refused() -> None:
    f = facts("netplan")
    two = {**f.daemons.netplan, "/etc/netplan/02-extra.yaml": ("eth0",)}
    daemons = dataclasses.replace(f.daemons, netplan=two)
    with pytest.raises(BackendRefusal, match="01-netcfg.yaml, /etc/netplan/02-extra.yaml"):
        plan_backend("netplan", config(f), dataclasses.replace(f, daemons=daemons))


def test_networkmanager_profiles_and_the_old_one_guarded() -> None:
    f = facts("networkmanager")
    plan = plan_backend("networkmanager", config(f), f)
    files = {c.path: c for c in plan.files}
    etc = "/etc/NetworkManager/system-connections"
    bridge = files[f"{etc}/br0.nmconnection"]
    port = files[f"{etc}/br0-port-eth0.nmconnection"]
    assert bridge.mode == port.mode == "0600"  # NM ignores keyfiles others can read
    assert "stp=false" in (bridge.content or "") and "forward-delay=4" in (bridge.content or "")
    assert f"cloned-mac-address={(config(f).mac or '').upper()}" in (bridge.content or "")
    assert f"master={plan.args['bridge_uuid']}" in (port.content or "")
    assert plan.guarded == (f"{etc}/eth0.nmconnection",)
    # stable per host: a second plan writes the same profiles
    assert plan.args["bridge_uuid"] == nm.profile_uuid(f.hostname, "bridge", config(f))


def test_ifupdown_replaces_the_nic_stanzas() -> None:
    f = facts("ifupdown")
    (change,) = plan_backend("ifupdown", config(f), f).files
    text = change.content or ""
    assert "iface eth0" not in text and "auto eth0" not in text
    assert "auto br0" in text and "bridge_ports eth0" in text and "bridge_fd 4" in text
    assert "iface br0 inet static" in text and "iface br0 inet6 static" in text


def test_a_route_the_format_cannot_express_is_refused() -> None:
    f = facts("networkd")
    odd = Route(4, "203.0.113.0/24", "br0", "198.51.100.1", metrics="mtu 1400")
    with pytest.raises(BackendRefusal, match="has metrics"):
        plan_backend("networkd", dataclasses.replace(config(f), routes=(odd,)), f)


# --- persist steps ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_persist_steps_wrap_the_runtime_steps(backend: str) -> None:
    p = plan_host(task(persist(backend)), facts(backend), min_timeout=10)
    assert p.refusal is None, p.refusal
    kinds = [s.kind for s in p.steps]
    assert kinds[0] == "backend_mark" and kinds[-1] == "backend_apply"
    assert kinds.index("link_master") < kinds.index("backend_apply")
    back = [s.kind for s in p.rollback]
    # files back first, the daemon forgets the bridge, runtime inverse, the daemon takes the NIC
    assert back.index("backend_release") < back.index("link_nomaster")
    assert back[-1] == "backend_reapply"
    assert p.expected.managers.get("br0") == backend


def test_boot_script_restores_the_files_and_regenerates_netplan() -> None:
    p = plan_host(task(persist("auto")), facts("netplan"), min_timeout=10)
    boot = staged_scripts("20260101T000000-abcdef", p).files["boot.sh"]
    assert "01-netcfg.yaml" in boot and "netplan generate" in boot
    assert "rolled_back reboot" in boot


def test_daemons_settling_words() -> None:
    f = facts("networkd")
    eth0 = f.manager("eth0")
    assert not daemons_settling(f)
    busy = dataclasses.replace(eth0, state="configuring")
    daemons = dataclasses.replace(f.daemons, interfaces={"eth0": busy})
    assert daemons_settling(dataclasses.replace(f, daemons=daemons))
    nm_busy = dataclasses.replace(eth0, state="connecting (getting IP configuration)")
    daemons = dataclasses.replace(f.daemons, interfaces={"eth0": nm_busy})
    assert daemons_settling(dataclasses.replace(f, daemons=daemons))
