"""``fleetbr lab up --topology``: the refused combinations (one line, exit 2, nothing built) and
the example tasks it writes, read back through the inventory and the product's task loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbr.changes.bridge.task import BridgeTask, load_task, render_task
from fleetbr.cli import main
from fleetbr.cli_args import build_parser
from fleetbr.errors import UsageError
from fleetbr.inventory import load_inventory
from fleetbr.lab import topology
from fleetbr.lab.files import write_inventory
from fleetbr.lab.model import plan


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--topology", "bond"], "bond needs --vm (this machine's kernel has no bonding)"),
        (["--topology", "vlan", "--distro", "debian12"], "no 802.1Q VLAN devices"),
        (["--topology", "vlan-aware"], "no bridge VLAN filtering"),
        (["--topology", "mixed", "--distro", "debian12"], "--topology mixed needs --vm"),
        (["--topology", "dhcp"], "--topology dhcp needs --distro without --vm"),
        (["--topology", "dhcp", "--vm"], "--topology dhcp needs --distro without --vm"),
        (["--topology", "dhcp", "--distro", "debian12", "--backend", "ifupdown"],
         "--backend ifupdown cannot express DHCP addresses kept"),
        (["--topology", "vlan-aware", "--vm", "--backend", "ifupdown"],
         "--backend ifupdown cannot express a VLAN-aware bridge (vlan_filtering)"),
        (["--topology", "mixed", "--vm", "--hosts", "4", "--backend", "ifupdown"],
         "--backend ifupdown cannot express a VLAN-aware bridge (vlan_filtering)"),
        (["--topology", "bond", "--vm", "--nics", "1"], "needs --nics 2 or more"),
        (["--topology", "single", "--distro", "debian12", "--dhcp"], "use --topology dhcp"),
    ],
)  # fmt: skip
def test_refused_combinations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["lab", "up", "--dir", str(tmp_path / "lab"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "lab").exists()


@pytest.mark.parametrize(
    "request_",
    [
        topology.Request("single", 6),
        topology.Request("multi", 6),
        topology.Request("single", 2, distro="debian12", backends=("netplan", "ifupdown")),
        topology.Request("dhcp", 2, distro="debian12", backends=("networkd", "networkd")),
        topology.Request("bond", 2, vm=True, backends=("networkd", "ifupdown2"), nics=2),
        topology.Request("bond", 1, vm=True, backends=("none",), nics=2),
        topology.Request("vlan", 2, vm=True, backends=("networkmanager", "ifupdown"), nics=2),
        topology.Request("vlan-aware", 1, vm=True, backends=("networkd",), nics=1),
        topology.Request("mixed", 4, vm=True, backends=("networkd",) * 4, nics=2),
    ],
    ids=lambda r: f"{r.topology}-{r.tier}-{'-'.join(r.backends) or 'netns'}",
)
def test_combinations_that_work_pass(request_: topology.Request) -> None:
    topology.check(request_)


def test_mixed_without_a_bond_host_needs_one_nic_only() -> None:
    topology.check(topology.Request("mixed", 1, vm=True, backends=("networkd",), nics=1))
    with pytest.raises(UsageError, match="--nics 2 or more"):
        topology.check(topology.Request("mixed", 2, vm=True, backends=("networkd",) * 2, nics=1))


EXPECTED = {
    "single": {"bridge": {"name": "br0", "nic": "eth0", "features": set()}},
    "bond": {"bridge": {"name": "br0", "nic": "bond0", "features": {"bond_create"}}},
    "vlan": {"bridge": {"name": "br0", "nic": "eth0", "features": {"vlan_uplink"}}},
    "vlan-aware": {
        "bridge": {"name": "br0", "nic": "eth0", "features": {"vlan_filtering", "vlan_interface"}}
    },
    "dhcp": {"bridge": {"name": "br0", "nic": "eth0", "features": {"dhcp"}}},
    "multi": {"bridge": {"name": "br0", "nic": "eth0", "features": {"multi_bridge", "host_only"}}},
}


def _loaded(tmp_path: Path, name: str, tier: str, index: int) -> BridgeTask:
    """The example task of ``name`` as the product's loader reads it, for sample host
    ``index``."""
    path = tmp_path / f"{name}-{index}.yaml"
    path.write_text(topology.task_text(name, tier), encoding="utf-8")
    return render_task(load_task(path), topology.sample_host(index, name))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_task_loads_with_the_features_of_its_topology(tmp_path: Path, name: str) -> None:
    tier = "vm" if name in topology.KERNEL_LACKS else "distro" if name == "dhcp" else "netns"
    task = _loaded(tmp_path, name, tier, 3)
    want = EXPECTED[name]["bridge"]
    assert task.deadman_timeout == topology.TIMEOUTS[tier]
    assert task.persist == "auto"
    found = set() if task.topology is None else set(task.topology.features())
    assert found == want["features"]
    if task.topology is None:
        assert (task.bridge.name, task.bridge.nic) == (want["name"], want["nic"])
    else:
        first = task.topology.bridges[0]
        uplink = first.bond.name if first.bond is not None else first.nic
        assert (first.name, uplink) == (want["name"], want["nic"])


def test_vlan_addresses_are_per_host_and_the_lab_address_stays_untagged(tmp_path: Path) -> None:
    one, two = (_loaded(tmp_path, "vlan", "vm", i) for i in (1, 2))
    assert one.topology is not None and two.topology is not None
    assert one.topology.bridges[0].vlan == 20
    assert one.topology.bridges[0].addresses == ("203.0.113.10/24",)
    assert two.topology.bridges[0].addresses == ("203.0.113.11/24",)
    aware = _loaded(tmp_path, "vlan-aware", "vm", 1)
    assert aware.topology is not None
    bridge = aware.topology.bridges[0]
    assert (bridge.pvid, bridge.addresses) == (1, None)  # None: move, untagged on br0 (PVID 1)
    assert [(v.vid, v.addresses) for v in bridge.vlan_interfaces] == [(20, ("203.0.113.10/24",))]


def test_a_mixed_lab_gives_each_host_its_own_topology(tmp_path: Path) -> None:
    lab = plan(tmp_path / "lab", 5, "eth0", "fbrtp")
    lab.dir.mkdir(parents=True)
    for host in lab.hosts:
        host.vm = True
        host.backend = "networkd"
    write_inventory(lab)
    path = topology.write(lab, "mixed")
    assert path == lab.dir / "tasks" / "mixed.yaml"
    template = load_task(path)
    specs = load_inventory(lab.inventory_dir)
    got = {}
    for name, spec in specs.items():
        task = render_task(template, spec.context())
        assert task.deadman_timeout == topology.TIMEOUTS["vm"]
        got[name] = (spec.data["topology"],
                     sorted(task.topology.features()) if task.topology else [])  # fmt: skip
    assert got == {
        "hv01": ("single", []),
        "hv02": ("bond", ["bond_create"]),
        "hv03": ("vlan", ["vlan_uplink"]),
        "hv04": ("vlan-aware", ["vlan_filtering", "vlan_interface"]),
        "hv05": ("single", []),
    }
    assert specs["hv01"].data["nic"] == "eth0"  # the lab's own host data is kept


def test_the_cli_offers_every_topology() -> None:
    for name in topology.TOPOLOGIES:
        assert build_parser().parse_args(["lab", "up", "--topology", name]).topology == name
