"""Re-record the distro facts fixtures (``distro_*.txt``) from real lab hosts.

Run as root from the repository root, inside a fresh network namespace:
``scripts/in-netns .venv/bin/python tests/data/facts/record_distro.py``. It boots a distro lab
(one host per backend), records each host's facts, then converts the four daemon hosts to a
bridge with the daemon's own tools (and one NetworkManager host with iproute2 only, as fleetbr's
``persist: none`` does) and records again. The lab is taken down at the end.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from fleetbr.facts.script import facts_script
from fleetbr.lab import Lab, down, host_exec
from fleetbr.lab.distro import up

OUT = Path(__file__).parent
BACKENDS = ["ifupdown", "networkd", "netplan", "networkmanager", "none", "networkmanager"]

NETWORKD_BRIDGE = """
cat > /etc/systemd/network/10-br0.netdev <<EOF
[NetDev]
Name=br0
Kind=bridge
MACAddress=$MAC
[Bridge]
STP=no
ForwardDelaySec=4
EOF
cat > /etc/systemd/network/10-br0.network <<EOF
[Match]
Name=br0
[Network]
Address=$A4
Address=$A6
Gateway=$G4
Gateway=$G6
IPv6AcceptRA=no
ConfigureWithoutCarrier=yes
EOF
cat > /etc/systemd/network/10-eth0.network <<EOF
[Match]
Name=eth0
[Network]
Bridge=br0
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
networkctl reload && networkctl reconfigure eth0
"""
NETPLAN_BRIDGE = """
cat > /etc/netplan/01-netcfg.yaml <<EOF
network:
  version: 2
  renderer: networkd
  ethernets:
    eth0: {dhcp4: false, dhcp6: false, accept-ra: false, link-local: []}
  bridges:
    br0:
      interfaces: [eth0]
      macaddress: "$MAC"
      addresses: ["$A4", "$A6"]
      routes: [{to: default, via: "$G4"}, {to: default, via: "$G6"}]
      accept-ra: false
      parameters: {stp: false, forward-delay: 4}
EOF
netplan apply 2>/dev/null
"""
NM_BRIDGE = """
nmcli con add type bridge ifname br0 con-name br0 bridge.stp no bridge.forward-delay 4 \
    ethernet.cloned-mac-address $MAC ipv4.method manual ipv4.addresses $A4 ipv4.gateway $G4 \
    ipv6.method manual ipv6.addresses $A6 ipv6.gateway $G6 >/dev/null
nmcli con add type bridge-slave ifname eth0 master br0 con-name br0-port-eth0 >/dev/null
nmcli con up br0 >/dev/null && nmcli con up br0-port-eth0 >/dev/null
"""
IFUPDOWN_BRIDGE = """
ifdown eth0 2>/dev/null
cat > /etc/network/interfaces <<EOF
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

iface eth0 inet manual

auto br0
iface br0 inet static
    address $A4
    gateway $G4
    bridge_ports eth0
    bridge_stp off
    bridge_fd 4
    bridge_hw eth0
iface br0 inet6 static
    address $A6
    gateway $G6
    accept_ra 0
EOF
ifup br0 >/dev/null 2>&1
"""
# What fleetbr's persist: none does (iproute2 only), on a host whose NIC NetworkManager manages.
RUNTIME_BRIDGE = """
ip link add br0 address $MAC type bridge stp_state 0 forward_delay 400
ip link set eth0 master br0
ip link set br0 up
ip route del default via $G4 dev eth0
ip -6 route del default via $G6 dev eth0
ip addr add $A4 dev br0 && ip addr del $A4 dev eth0
ip addr add $A6 dev br0 nodad && ip addr del $A6 dev eth0
ip route add default via $G4 dev br0
ip -6 route add default via $G6 dev br0
"""
BRIDGES = {
    "hv01": ("ifupdown_bridged", IFUPDOWN_BRIDGE),
    "hv02": ("networkd_bridged", NETWORKD_BRIDGE),
    "hv03": ("netplan_bridged", NETPLAN_BRIDGE),
    "hv04": ("networkmanager_bridged", NM_BRIDGE),
    "hv06": ("networkmanager_external", RUNTIME_BRIDGE),
}


def record(lab: Lab, name: str, fixture: str) -> None:
    """Run the facts script in host ``name`` and write its output to distro_<fixture>.txt."""
    script = facts_script([lab.gateway4, lab.gateway6])
    out = host_exec(lab, name, ["sh", "-s"], input=script).stdout
    (OUT / f"distro_{fixture}.txt").write_text(out)


def bridge(lab: Lab, name: str, commands: str) -> None:
    """Convert host ``name`` to br0 with ``commands`` (sh; $MAC, $A4, $A6, $G4, $G6 set)."""
    host = lab.host(name)
    env = f"MAC={host.mac} A4={host.addr4} A6={host.addr6} G4={lab.gateway4} G6={lab.gateway6}\n"
    host_exec(lab, host, ["sh", "-ec", env + commands])


def main() -> None:
    """Record every fixture, pristine first, then bridged."""
    with tempfile.TemporaryDirectory() as tmp:
        lab = up(Path(tmp) / "lab", hosts=len(BACKENDS), backend=BACKENDS, prefix="fbrrec")
        try:
            for host in lab.hosts[:5]:
                record(lab, host.name, host.backend)
            for name, (_, commands) in BRIDGES.items():
                bridge(lab, name, commands)
            time.sleep(5)  # let the daemons settle (NetworkManager notices the bridge)
            for name, (fixture, _) in BRIDGES.items():
                record(lab, name, fixture)
        finally:
            down(lab.dir)


if __name__ == "__main__":
    main()
