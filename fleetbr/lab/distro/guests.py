"""Tiny libvirt guests on distro lab hosts (``lab up --distro ... --guests N``).

A host with guests boots with the libvirt layer (fleetbr.lab.distro.layer) between its own layer
and the base rootfs, and ``/dev/net/tun``. At every boot ``lab-guests.service`` (after libvirtd)
starts the isolated libvirt network ``lab`` (bridge ``virbr-lab``: no address, no DHCP, never the
bridge a task creates), defines N diskless TCG guests ``g1``..``gN`` on it and starts them, plus
one guest ``off1`` that stays defined only. The guests sit in SeaBIOS without a boot device (no
option ROM, no disk), which keeps TCG nearly idle. `lab down` kills them with the host.
"""

from __future__ import annotations

import time

from fleetbr.errors import LabError
from fleetbr.lab.distro.supervisor import enter_argv
from fleetbr.lab.model import LabHost
from fleetbr.lab.render import render
from fleetbr.lab.system import run

NETWORK = "lab"
NETWORK_BRIDGE = "virbr-lab"
DEFINED_ONLY = "off1"
UNIT = "lab-guests.service"
MAX_GUESTS = 8
DIR = "/etc/fleetbr-lab/guests"
READY = "/run/lab-guests.ready"
READY_TIMEOUT = 60.0

_NETWORK_XML = f"""<network>
  <name>{NETWORK}</name>
  <bridge name='{NETWORK_BRIDGE}' stp='off' delay='0'/>
</network>
"""

_UNIT = """# fleetbr lab host: the lab's libvirt network and guests (fleetbr.lab.distro.guests).
[Unit]
Description=fleetbr lab guests
Requires=libvirtd.service
After=libvirtd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lab-guests

[Install]
WantedBy=multi-user.target
"""


def names(count: int) -> list[str]:
    """The running guests of a host with ``count`` guests."""
    return [f"g{i}" for i in range(1, count + 1)]


def guest_mac(host_index: int, guest: int) -> str:
    """A guest NIC's MAC, unique in the lab (moved guests share the lab's switch)."""
    return f"52:54:00:{host_index % 256:02x}:{host_index // 256:02x}:{guest:02x}"


def domain_xml(name: str, mac: str, network: str = NETWORK) -> str:
    """The definition of a diskless TCG guest with one virtio NIC on libvirt network ``network``."""
    return render("lab_distro_guest_domain.xml.j2", name=name, mac=mac, network=network)


def files(host_index: int, count: int) -> list[tuple[str, str, int]]:
    """(path, content, mode) of every file a host with ``count`` guests gets in its layer."""
    out = [(f"{DIR}/network.xml", _NETWORK_XML, 0o644)]
    every = [*names(count), DEFINED_ONLY]
    for number, name in enumerate(every, start=1):
        xml = domain_xml(name, guest_mac(host_index, number))
        out.append((f"{DIR}/domain-{name}.xml", xml, 0o644))
    script = render(
        "lab_distro_guests.sh.j2", dir=DIR, network=NETWORK, running=names(count), ready=READY
    )
    out.append(("/usr/local/sbin/lab-guests", script, 0o755))
    out.append((f"/etc/systemd/system/{UNIT}", _UNIT, 0o644))
    return out


def wait_ready(host: LabHost, timeout: float = READY_TIMEOUT) -> None:
    """Wait until ``host``'s guests run (lab-guests.service finished at this boot)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run([*enter_argv(host), "test", "-e", READY], check=False).returncode == 0:
            return
        time.sleep(0.2)
    status = run([*enter_argv(host), "systemctl", "status", "--no-pager", UNIT], check=False)
    tail = " | ".join(status.stdout.strip().splitlines()[-4:])
    raise LabError(f"{host.name}: the lab guests did not start: {tail}")
