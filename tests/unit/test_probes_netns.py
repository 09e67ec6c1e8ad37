"""The gateway probes (templates/probes.sh.j2) against a real kernel in scratch network namespaces.

A confirm that lost one echo (a busy host, a neighbour entry still being resolved on a new
bridge) must not roll a healthy host back: a target passes at its first reply within the probe's
deadline. The target here ignores echoes until it has seen the first one, so the first echo is
lost every time, whatever the machine's load (not a timed race).

Needs root and an isolated network namespace (``scripts/in-netns``).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from fleetbr.render import render

pytestmark = [pytest.mark.lab]
TARGET = "198.51.100.1"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def in_ns(ns: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *args], input=stdin, capture_output=True,
                          text=True, check=False)  # fmt: skip


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """(prober, target) namespaces joined by a veth pair, TARGET on the target's side."""
    tag = uuid.uuid4().hex[:6]
    prober, target = f"fbrp-{tag}", f"fbrt-{tag}"
    ip("netns", "add", prober)
    ip("netns", "add", target)
    try:
        ip("-n", prober, "link", "add", "eth0", "type", "veth", "peer", "eth0", "netns", target)
        ip("-n", prober, "addr", "add", "198.51.100.10/24", "dev", "eth0")
        ip("-n", target, "addr", "add", f"{TARGET}/24", "dev", "eth0")
        for ns in (prober, target):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
        yield prober, target
    finally:
        for ns in (prober, target):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def echoes_seen(target: str) -> int:
    """Echo requests the target's kernel received (its Icmp InEchos counter)."""
    lines = [ln.split() for ln in in_ns(target, "cat", "/proc/net/snmp").stdout.splitlines()]
    head, values = [ln for ln in lines if ln and ln[0] == "Icmp:"][:2]
    return int(values[head.index("InEchos")])


def answer_from_the_second_echo(target: str, stop: threading.Event) -> None:
    """The target ignores echoes until it has received one, then answers."""
    while not stop.is_set() and echoes_seen(target) < 1:
        time.sleep(0.02)
    in_ns(target, "sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=0")


def probe(prober: str, *targets: str) -> tuple[str, float]:
    start = time.monotonic()
    script = render("probes.sh.j2", probes=list(targets))
    out = in_ns(prober, "sh", "-s", stdin=script)
    return out.stdout, time.monotonic() - start


def test_a_target_that_lost_the_first_echo_still_passes(pair: tuple[str, str]) -> None:
    prober, target = pair
    in_ns(target, "sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1")
    stop = threading.Event()
    flipper = threading.Thread(target=answer_from_the_second_echo, args=(target, stop))
    flipper.start()
    try:
        out, _ = probe(prober, TARGET)
    finally:
        stop.set()
        flipper.join()
    assert out.strip() == f"probe {TARGET} ok", out
    assert echoes_seen(target) >= 2


def test_a_target_that_never_answers_fails_within_the_deadline(pair: tuple[str, str]) -> None:
    prober, target = pair
    in_ns(target, "sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1")
    out, took = probe(prober, TARGET, "198.51.100.2")
    assert sorted(out.split("\n")[:2]) == [f"probe {TARGET} fail", "probe 198.51.100.2 fail"], out
    assert took < 10, took  # the deadline (3 s) bounds it, both probed in parallel
