"""Golden output of the four persistence backends: what a plan writes and the host shell it runs
(plan_host -> steps -> staged scripts), for the distro lab facts (tests/data/facts/distro_*.txt),
bridging (``present``) and unbridging (``absent``). The goldens in tests/data/backends/ were
captured from the code before the backends moved behind the Backend interface; regenerate them
only for a change meant to alter the host's shell: ``python -m tests.unit.backend_golden``."""

from __future__ import annotations

import json
from pathlib import Path

from fleetbr.facts.parse import parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.shell import step_command
from fleetbr.transaction.scripts import staged_scripts
from tests.unit.dhcp_sim import dhcp_nd_host
from tests.unit.test_facts_parse import raw
from tests.unit.test_plan_support import task
from tests.unit.test_topology_dhcp_netplan import np_dhcp_host
from tests.unit.test_topology_dhcp_networkmanager import nm_dhcp_host
from tests.unit.test_topology_ifupdown import bonded_ifu_host, ifu_host, with_ifenslave
from tests.unit.test_topology_ifupdown2 import PROXMOX, bonded_i2_host, i2_host
from tests.unit.test_topology_netplan import bonded_np_host, np_host
from tests.unit.test_topology_networkd import bonded_nd_host, nd_host
from tests.unit.test_topology_networkmanager import nm_bond_host, nm_host

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "data" / "backends"
BACKENDS = ("ifupdown", "networkd", "netplan", "networkmanager", "ifupdown2")
CASES = tuple(f"{b}-{s}" for b in BACKENDS for s in ("present", "absent"))
# topology x backend: the uplink topologies a backend writes (docs/topologies.md), on the
# networkd lab host with a second NIC (tests/unit/test_topology_networkd.py)
TOPOLOGIES = {
    "bond": "bridge:\n  bond: {name: bond0, slaves: [eth0, eth1], mode: 802.3ad,\n"
    "         options: {miimon: 100, lacp_rate: fast, xmit_hash_policy: layer3+4}}\n",
    "bond_port": "bridge: {nic: bond0}\n",
    "vlans": "bridges:\n  - {name: br20, nic: eth0, vlan: 20, addresses: [203.0.113.20/24]}\n"
    "  - {name: br30, nic: eth0, vlan: 30, addresses: none}\n"
    "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n",
    "vlan_aware": "bridge:\n  name: br0\n  nic: eth0\n  addresses: none\n"
    "  vlan_filtering: true\n  pvid: 1\n  vids: [10, '100-199']\n"
    "  vlan_interfaces:\n    - {vid: 10, addresses: move}\n",
    # on the networkd host whose eth0 is a DHCP client (tests/unit/dhcp_sim.py)
    "dhcp": "bridge: {addresses: dhcp}\n",
}
TOPOLOGIES["proxmox"] = PROXMOX
TOPOLOGY_CASES = (
    tuple(f"networkd-topology-{t}" for t in TOPOLOGIES if t != "proxmox")
    + tuple(f"netplan-topology-{t}" for t in ("bond", "bond_port", "vlans", "dhcp"))
    + tuple(
        f"networkmanager-topology-{t}" for t in ("bond", "bond_port", "vlans", "vlan_aware", "dhcp")
    )
    + tuple(f"ifupdown-topology-{t}" for t in ("bond", "bond_port", "vlans"))
    + tuple(f"ifupdown2-topology-{t}" for t in TOPOLOGIES if t != "dhcp")
)
TXID = "20260101T000000-abcdef"
TASK = """
bridge:
  name: br0
  state: STATE
  nic: "{{ host.data.nic }}"
  mac: nic
persist: auto
"""


def render_case(case: str) -> str:
    """Every file, step command and staged script of one case, as one text."""
    backend, state, *topology = case.split("-")
    if topology:
        return render_topology(backend, topology[0])
    facts = parse_facts(raw(f"distro_{backend}" + ("_bridged" if state == "absent" else "")))
    return render_plan(plan_host(task(TASK.replace("STATE", state)), facts, min_timeout=10))


def render_topology(backend: str, name: str) -> str:
    """A topology case: the task of ``TOPOLOGIES[name]`` persisted by ``backend``."""
    if backend == "netplan" and name == "dhcp":
        facts = np_dhcp_host()[0]
    elif backend == "networkmanager" and name == "dhcp":
        facts = nm_dhcp_host()[0]
    elif backend == "netplan":
        facts = bonded_np_host() if name == "bond_port" else np_host()
    elif name == "dhcp":
        facts = dhcp_nd_host()[0]
    elif backend == "networkmanager":
        facts = nm_bond_host() if name == "bond_port" else nm_host()
    elif backend == "ifupdown":
        facts = bonded_ifu_host() if name == "bond_port" else with_ifenslave(ifu_host())
    elif backend == "ifupdown2":
        facts = bonded_i2_host() if name == "bond_port" else i2_host()
    else:
        facts = bonded_nd_host() if name == "bond_port" else nd_host()
    text = f"persist: {backend}\nnetfilter: keep\n{TOPOLOGIES[name]}"
    return render_plan(plan_host(task(text), facts, min_timeout=10))


def render_plan(plan: BridgePlan) -> str:
    """Every file, step command and staged script of ``plan``, as one text."""
    assert plan.refusal is None, plan.refusal
    out = [f"== files {json.dumps(list(plan.files))}", f"== expected {plan.expected!r}"]
    for label, steps in (("step", plan.steps), ("rollback", plan.rollback)):
        for step in steps:
            out.append(f"== {label} {step.kind} {json.dumps(dict(step.args), sort_keys=False)}")
            out.append(step_command(step))
    for name, text in sorted(staged_scripts(TXID, plan).files.items()):
        out += [f"== staged {name}", text]
    return "\n".join(out) + "\n"


def render_facts_script() -> str:
    """The facts script as the transaction and ``facts`` run it."""
    return facts_script()


def write_goldens() -> None:
    """Capture the goldens from the code as it is."""
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for case in CASES + TOPOLOGY_CASES:
        (GOLDEN_DIR / f"{case}.txt").write_text(render_case(case), encoding="utf-8")
    (GOLDEN_DIR / "facts-script.txt").write_text(render_facts_script(), encoding="utf-8")


if __name__ == "__main__":
    write_goldens()
