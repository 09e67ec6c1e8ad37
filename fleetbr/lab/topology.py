"""``fleetbr lab up --topology NAME``: lab hosts in the *before* state of an uplink topology
(docs/topologies.md) and a matching example task in the lab dir, so that ``fleetbr apply
LAB/tasks/NAME.yaml`` works right after ``lab up``.

Every host comes up as ``lab up`` always brings it (the backend configures eth0 with the host's
lab addresses; a VM's eth1 is idle); what differs per topology is what the lab asks of the tier
(``--vm`` for bonds and VLANs: this machine's kernel has neither; two NICs for a bond; the
switch's DHCP server for ``dhcp``) and the task written. ``check`` refuses a combination that
cannot work before anything is built, with one line naming the reason; the tasks are
validated with the product's task loader and compared with the features each host's backend
declares (fleetbr.plan.topology.capability), so a task the planner would refuse is never written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetbr.changes.bridge.task import TaskTemplate, render_task
from fleetbr.errors import UsageError
from fleetbr.lab.files import HEADER
from fleetbr.lab.model import Lab
from fleetbr.plan.topology.capability import DESCRIBE, missing_features

TOPOLOGIES = ("single", "bond", "vlan", "vlan-aware", "dhcp", "multi", "mixed")
# what each needs of the kernel that this machine's lacks (docs/lab.md, VM tier)
KERNEL_LACKS = {
    "bond": "bonding",
    "vlan": "802.1Q VLAN devices",
    "vlan-aware": "bridge VLAN filtering",
    "mixed": "bonding or 802.1Q VLANs",
}
# ``mixed``: the hosts take these in turn (hv01 single, hv02 bond, ...)
MIXED = ("single", "bond", "vlan", "vlan-aware")
VLAN = 20
HOST_ONLY = "203.0.113.1/24"
# The dead-man window: a TCG guest's networkd apply of a bond took minutes on a loaded machine.
TIMEOUTS = {"vm": 600, "distro": 120, "netns": 60}
# the host's address in the topology's tagged VLAN: 203.0.113.N/24, N the lab address's last octet
_VLAN_ADDRESS = "203.0.113.{{ host.hostname.split('.')[-1] }}/24"
_BOND = {"name": "bond0", "slaves": ["eth0", "eth1"], "mode": "active-backup",
         "options": {"miimon": 100}}  # fmt: skip


@dataclass(frozen=True)
class Request:
    """What ``lab up`` was asked for, as far as a topology cares."""

    topology: str
    hosts: int
    vm: bool = False
    distro: str | None = None
    backends: tuple[str, ...] = ()  # one per host ("" on the netns tier)
    nics: int = 1
    dhcp: bool = False

    @property
    def tier(self) -> str:
        """``vm``, ``distro`` or ``netns``."""
        return "vm" if self.vm else "distro" if self.distro else "netns"


def host_topologies(topology: str, hosts: int) -> list[str]:
    """The topology of each host, in host order (``mixed``: MIXED in turn)."""
    if topology == "mixed":
        return [MIXED[i % len(MIXED)] for i in range(hosts)]
    return [topology] * hosts


def bridge_doc(topology: str) -> dict[str, Any]:
    """The ``bridge:`` or ``bridges:`` part of the example task of one topology (not mixed)."""
    nic = "{{ host.data.nic }}"
    docs: dict[str, dict[str, Any]] = {
        "single": {"bridge": {"name": "br0", "nic": nic, "addresses": "move"}},
        "bond": {"bridge": {"name": "br0", "bond": _BOND}},
        # the host's lab address stays untagged on eth0; the bridge is VLAN 20's
        "vlan": {"bridge": {"name": "br0", "nic": "eth0", "vlan": VLAN,
                            "addresses": [_VLAN_ADDRESS]}},
        # the lab address moves to br0 (untagged: PVID 1); br0.20 carries VLAN 20's
        "vlan-aware": {"bridge": {"name": "br0", "nic": "eth0", "vlan_filtering": True,
                                  "pvid": 1, "vids": [VLAN],
                                  "vlan_interfaces": [{"vid": VLAN,
                                                       "addresses": [_VLAN_ADDRESS]}]}},
        "dhcp": {"bridge": {"name": "br0", "nic": nic, "addresses": "dhcp"}},
        "multi": {"bridges": [{"name": "br0", "nic": nic, "addresses": "move"},
                              {"name": "br9", "host_only": True, "addresses": [HOST_ONLY]}]},
    }  # fmt: skip
    return docs[topology]


def task_text(topology: str, tier: str) -> str:
    """The example task file of ``topology`` on ``tier`` (``mixed``: one branch per host's
    ``host.data.topology``)."""
    common = {
        "persist": "auto",  # dhcp too: networkd, netplan and NetworkManager hosts keep leases
        "netfilter": "keep",
        "deadman": {"timeout": TIMEOUTS[tier]},
    }
    title = f"# `fleetbr lab up --topology {topology}`: see docs/topologies.md and docs/lab.md.\n"
    if topology != "mixed":
        return title + _dump(bridge_doc(topology)) + _dump(common)
    branches = []
    for index, name in enumerate(MIXED):
        keyword = "if" if index == 0 else "elif"
        branches.append(f'{{% {keyword} host.data.topology == "{name}" %}}\n')
        branches.append(_dump(bridge_doc(name)))
    return title + "".join(branches) + "{% endif %}\n" + _dump(common)


def _dump(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False)


def sample_host(index: int, topology: str) -> dict[str, Any]:
    """The ``host`` a lab host ``index`` (1-based) shows a task template (fleetbr.lab.files)."""
    return {
        "name": f"hv{index:02d}",
        "hostname": f"198.51.100.{9 + index}",
        "port": 22,
        "groups": ["lab"],
        "data": {"nic": "eth0", "addr6": f"2001:db8:100::{9 + index:x}/64", "topology": topology},
    }


def features(topology: str, tier: str, host: Mapping[str, Any]) -> frozenset[str]:
    """The topology features (docs/topologies.md) the example task needs on ``host``, read by
    the product's task loader (a TaskError if it refused the task)."""
    task = render_task(TaskTemplate(f"tasks/{topology}.yaml", task_text(topology, tier)), host)
    return frozenset() if task.topology is None else task.topology.features()


def check(request: Request) -> None:
    """UsageError (one line, exit 2) if the lab cannot bring this topology up: nothing is built."""
    name = request.topology
    where = f"lab up: --topology {name}"
    if name not in TOPOLOGIES:
        raise UsageError(f"{where}: unknown (known: {', '.join(TOPOLOGIES)})")
    if name in KERNEL_LACKS and not request.vm:
        raise UsageError(f"{where} needs --vm (this machine's kernel has no {KERNEL_LACKS[name]})")
    if name == "dhcp" and (request.vm or not request.distro):
        raise UsageError(f"{where} needs --distro without --vm (the lab's DHCP server serves "
                         "distro hosts)")  # fmt: skip
    if request.dhcp and name != "dhcp":
        raise UsageError(f"{where} with --dhcp: a leased address cannot move as a static one "
                         "(use --topology dhcp)")  # fmt: skip
    topologies = host_topologies(name, request.hosts)
    if "bond" in topologies and request.nics < 2:
        raise UsageError(f"{where} needs --nics 2 or more (a bond of eth0 and eth1)")
    _check_backends(request, topologies)


def _check_backends(request: Request, topologies: Sequence[str]) -> None:
    backends = request.backends or ("",) * request.hosts
    for index, (topology, backend) in enumerate(zip(topologies, backends, strict=True), 1):
        needed = features(request.topology, request.tier, sample_host(index, topology))
        tier = "none" if backend in ("", "none") else backend
        missing = [DESCRIBE[f] for f in missing_features(needed, tier)]
        if missing:
            what = "the runtime tier" if tier == "none" else f"--backend {backend}"
            raise UsageError(f"lab up: --topology {request.topology}: {what} cannot express "
                             f"{'; '.join(missing)} (docs/topologies.md)")  # fmt: skip


def write(lab: Lab, topology: str) -> Path:
    """The example task in LAB/tasks/TOPOLOGY.yaml, and each host's topology in the inventory
    (``host.data.topology``, which the ``mixed`` task branches on); returns the task's path."""
    tier = "vm" if any(h.vm for h in lab.hosts) else "distro" if lab.distro else "netns"
    tasks = lab.dir / "tasks"
    tasks.mkdir(exist_ok=True)
    path = tasks / f"{topology}.yaml"
    path.write_text(task_text(topology, tier), encoding="utf-8")
    mark_hosts(lab.inventory_dir / "hosts.yaml", host_topologies(topology, len(lab.hosts)))
    return path


def mark_hosts(hosts_file: Path, topologies: Sequence[str]) -> None:
    """Add ``data.topology`` to each host of the lab's hosts.yaml (in host order)."""
    hosts = yaml.safe_load(hosts_file.read_text(encoding="utf-8"))
    for entry, topology in zip(hosts.values(), topologies, strict=True):
        entry.setdefault("data", {})["topology"] = topology
    text = yaml.safe_dump(hosts, sort_keys=False, default_flow_style=False)
    hosts_file.write_text(HEADER + text, encoding="utf-8")
