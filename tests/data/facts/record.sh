#!/bin/sh
# Re-record the facts fixtures in this folder from real iproute2 output.
# (legacy_plain.txt is not re-recorded: it is the plain host as the facts script of fleetbr 11389df
# reported it, main-table routes only and no rules/modules sections, kept to test that snapshots
# staged by older versions still parse.)
# Run from the repository root as root: sh tests/data/facts/record.sh
# Everything happens inside a fresh network + mount namespace with a private /run, so nothing
# touches this machine's network, /etc or /var. Lab addresses only (198.51.100.0/24, 203.0.113.0/24,
# 2001:db8::/32).
set -eu
if [ "${FLEETBR_RECORD_INNER:-}" != 1 ]; then
    exec env FLEETBR_RECORD_INNER=1 unshare -n -m --propagation private sh "$0" "$@"
fi

out=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
mount -t tmpfs tmpfs /run
ip link set lo up

render() { # render OUTFILE [python keyword args]
    "$py" -c "from fleetbr.facts.script import facts_script; print(facts_script($2), end='')" >"$1"
}

# The "switch": a bridge in this namespace carrying the gateways.
ip link add sw type bridge
ip link set sw up
ip addr add 198.51.100.1/24 dev sw
ip addr add 203.0.113.1/24 dev sw
ip -6 addr add 2001:db8:1::1/64 dev sw nodad

host() { # host NS: a netns with eth0 whose peer is on the switch
    ip netns add "$1"
    ip link add eth0 netns "$1" type veth peer name "v-$1"
    ip link set "v-$1" master sw up
    ip -n "$1" link set lo up
    ip -n "$1" link set eth0 up
}

capture() { # capture NS SCRIPT NAME
    ip netns exec "$1" unshare -u sh -c "hostname $1; exec sh -s" <"$2" >"$out/$3.txt"
}

render "$work/plain.sh" "['198.51.100.1', '2001:db8:1::1', '198.51.100.254']"
render "$work/default.sh" ""

# plain: eth0 with v4 + v6 and default routes, gateways probed (one answers, one does not).
host plain
ip -n plain addr add 198.51.100.10/24 dev eth0
ip -n plain -6 addr add 2001:db8:1::10/64 dev eth0 nodad
ip -n plain route add default via 198.51.100.1
ip -n plain -6 route add default via 2001:db8:1::1
capture plain "$work/plain.sh" plain

# bridged: eth0 enslaved to br0 (stp on, forward delay 15 s), addresses on br0.
host bridged
ip -n bridged link add br0 type bridge stp_state 1 forward_delay 1500
ip -n bridged link set eth0 master br0
ip -n bridged link add vnet0 type veth peer name vnet0-peer
ip -n bridged link set vnet0 master br0
ip -n bridged link set br0 up
ip -n bridged addr add 198.51.100.20/24 dev br0
ip -n bridged -6 addr add 2001:db8:1::20/64 dev br0 nodad
ip -n bridged route add default via 198.51.100.1
ip -n bridged -6 route add default via 2001:db8:1::1
ip netns exec bridged sh -c 'echo 0 >/proc/sys/net/bridge/bridge-nf-call-iptables'
capture bridged "$work/default.sh" bridged

# v4only: IPv6 disabled, a dynamic (non-permanent) address, eth1 down.
ip netns add v4only
ip netns exec v4only sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add eth0 netns v4only type veth peer name v-v4only
ip link set v-v4only master sw up
ip -n v4only link set lo up
ip -n v4only link set eth0 up mtu 9000
ip -n v4only link add eth1 type veth peer name eth1-peer
ip -n v4only addr add 198.51.100.30/24 dev eth0 valid_lft 3600 preferred_lft 3600
ip -n v4only route add default via 198.51.100.1 metric 100
capture v4only "$work/default.sh" v4only

# multi: several addresses, a static route with metric, a blackhole, a multipath route.
host multi
ip -n multi link add eth1 type veth peer name eth1-peer
ip -n multi link set eth1 up
ip -n multi link set eth1-peer up
ip -n multi addr add 198.51.100.40/24 dev eth0
ip -n multi addr add 198.51.100.41/24 dev eth0
ip -n multi addr add 203.0.113.40/24 dev eth0
ip -n multi addr add 198.51.100.129/25 dev eth1
ip -n multi -6 addr add 2001:db8:1::40/64 dev eth0 nodad
ip -n multi -6 addr add 2001:db8:1::41/64 dev eth0 nodad
ip -n multi route add default via 198.51.100.1 proto static
ip -n multi route add 203.0.113.128/25 via 203.0.113.1 metric 100
ip -n multi route add blackhole 198.51.100.200/32
ip -n multi route add 198.51.100.250/32 nexthop via 198.51.100.1 dev eth0 nexthop via 198.51.100.130 dev eth1
ip -n multi -6 route add default via 2001:db8:1::1 metric 1024
capture multi "$work/default.sh" multi

# routed: routes in another table (100) and with a source address, a labelled secondary address,
# a typed route in table 100, policy rules (one names eth0), an IPv6 route with a preference.
host routed
ip -n routed addr add 198.51.100.80/24 dev eth0
ip -n routed addr add 198.51.100.81/24 dev eth0 label eth0:svc
ip -n routed -6 addr add 2001:db8:1::80/64 dev eth0 nodad
ip -n routed route add default via 198.51.100.1
ip -n routed route add default via 198.51.100.1 table 100
ip -n routed route add 203.0.113.0/24 via 198.51.100.1 src 198.51.100.81 metric 20 proto static mtu 1400
ip -n routed route add unreachable 203.0.113.128/25 table 100
ip -n routed -6 route add default via 2001:db8:1::1
ip -n routed -6 route add 2001:db8:300::/48 via 2001:db8:1::1 table 100 pref high
ip -n routed rule add from 198.51.100.81 lookup 100 priority 100
ip -n routed rule add iif eth0 fwmark 0x5 lookup 100 priority 200
ip -n routed -6 rule add from 2001:db8:1::/64 lookup 100 priority 100
capture routed "$work/default.sh" routed

# docker: a docker0 bridge and a docker user network bridge next to eth0.
host docker
ip -n docker addr add 198.51.100.50/24 dev eth0
ip -n docker route add default via 198.51.100.1
ip -n docker link add docker0 type bridge
ip -n docker addr add 203.0.113.129/25 dev docker0
ip -n docker link add br-0123456789ab type bridge
capture docker "$work/default.sh" docker

# armed: a live dead-man timer (a sleeping process) on this boot; a managed file present.
state="$work/state"
mkdir -p "$state/tx/20240501T120000-ab12/" "$work/etc"
printf 'net.bridge.bridge-nf-call-iptables = 0\n' >"$work/etc/bridge.conf"
read -r boot_id </proc/sys/kernel/random/boot_id
sleep 120 &
timer=$!
echo 20240501T120000-ab12 >"$state/armed"
echo $(($(date +%s) + 300)) >"$state/tx/20240501T120000-ab12/deadline"
echo "$boot_id" >"$state/tx/20240501T120000-ab12/boot_id"
echo "$timer" >"$state/tx/20240501T120000-ab12/timer.pid"
render "$work/armed.sh" "state_dir='$state', managed_files=['$work/etc/bridge.conf', '$work/etc/missing.rules']"
host armed
ip -n armed addr add 198.51.100.60/24 dev eth0
capture armed "$work/armed.sh" armed
kill "$timer"
# The managed-file paths are temporary: make the fixture stable.
sed -i "s#$work#/tmp/fleetbr-rec#g" "$out/armed.txt"

# armed_stale: rebooted since arming, a systemd unit timer that is not running.
stale="$work/stale"
mkdir -p "$stale/tx/20240501T110000-cd34"
echo 20240501T110000-cd34 >"$stale/armed"
echo 1714561200 >"$stale/tx/20240501T110000-cd34/deadline"
echo 00000000-1111-2222-3333-444444444444 >"$stale/tx/20240501T110000-cd34/boot_id"
echo fleetbr-deadman-cd34.service >"$stale/tx/20240501T110000-cd34/timer.unit"
render "$work/stale.sh" "state_dir='$stale'"
capture armed "$work/stale.sh" armed_stale
sed -i "s#$work#/tmp/fleetbr-rec#g" "$out/armed_stale.txt"

# backends: every backend installed and active, Docker, libvirt and a wireless link, all faked:
# tools are stubs on PATH, daemons are copies of sleep named like them, /etc is an overlay and
# /sys/class/net a tmpfs, all inside a private mount namespace.
mkdir -p "$work/bin" "$work/upper" "$work/wk" "$work/daemons"
for t in nmcli netplan ifup brctl virsh dockerd; do
    printf '#!/bin/sh\nexit 0\n' >"$work/bin/$t"
    chmod +x "$work/bin/$t"
done
cp "$(command -v sleep)" "$work/daemons/NetworkManager"
cp "$(command -v sleep)" "$work/daemons/systemd-networkd"
"$work/daemons/NetworkManager" 120 &
nm=$!
"$work/daemons/systemd-networkd" 120 &
nd=$!
"$py" -c 'import socket; socket.socket(socket.AF_UNIX).bind("/run/docker.sock")'
host backends
ip -n backends addr add 198.51.100.70/24 dev eth0
ip -n backends link add wlan0 type veth peer name wlan0-peer
ip netns exec backends unshare -u -m --propagation private sh -c '
    hostname backends
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/wk" /etc
    mkdir -p /etc/netplan /etc/network/interfaces.d
    printf "network:\n  version: 2\n" >/etc/netplan/01-netcfg.yaml
    printf "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp" >/etc/network/interfaces
    mount -t tmpfs tmpfs /sys/class/net
    mkdir -p /sys/class/net/eth0 /sys/class/net/wlan0/wireless /sys/class/net/lo
    PATH="$1/bin:$PATH" exec sh -s' - "$work" <"$work/default.sh" >"$out/backends.txt"
kill "$nm" "$nd"
sed -i "s#$work#/tmp/fleetbr-rec#g" "$out/backends.txt"

# nf_absent: the lab kernel has bridge netfilter built in, so a host without br_netfilter loaded
# is the plain host's output edited to what such a host reports: no bridge-nf keys, the module
# absent, /lib/modules present (modprobe can load it).
sed -e '/^call-\(iptables\|ip6tables\|arptables\) [0-9]*$/d' \
    -e 's/^has_modules=no$/has_modules=yes/' \
    -e 's/^module br_netfilter .*$/module br_netfilter absent/' \
    -e 's/^hostname=plain$/hostname=nf_absent/' "$out/plain.txt" >"$out/nf_absent.txt"

rm -rf "$work"
echo "recorded into $out"
