"""Foundation against real sshd in the lab: facts, host selection, host keys, unreachable hosts."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from fleetbr.errors import ConnectFailed, HostKeyRejected
from fleetbr.facts.gather import facts_job, gather
from fleetbr.lab import Lab, kill_sshd, set_switch_port, start_sshd
from fleetbr.runner import run_hosts
from fleetbr.transport import connect, open_connection
from tests.integration.helpers import derived_inventory, fleetbr, specs


def test_facts_over_ssh_match_the_host(lab: Lab, fresh_host: Any) -> None:
    host = fresh_host("hv02")
    spec = specs(lab.inventory_dir)["hv02"]

    async def run() -> Any:
        async with open_connection(spec) as conn:
            return await gather(conn, [lab.gateway4, lab.gateway6, "203.0.113.77"])

    facts = asyncio.run(run())
    assert facts.hostname == "hv02"
    nic = facts.link(host.nic)
    assert nic is not None and nic.admin_up and nic.master is None and nic.mtu == 1500
    assert {a.cidr for a in facts.addresses_of(host.nic)} == {host.addr4, host.addr6}
    defaults = {(r.family, r.gateway, r.dev) for r in facts.default_routes()}
    assert defaults == {(4, lab.gateway4, host.nic), (6, lab.gateway6, host.nic)}
    assert facts.bridges == ()
    assert set(facts.bridge_nf) == {"call-iptables", "call-ip6tables", "call-arptables"}
    assert not facts.pid1_systemd and facts.armed is None and facts.docker == ()
    # the gateway lives on the lab switch: a real ping answers; an address nobody has does not
    assert facts.probes == {lab.gateway4: True, lab.gateway6: True, "203.0.113.77": False}


def test_cli_facts_json_and_limit(lab: Lab) -> None:
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv03,hv0[45]", "facts")
    assert code == 0, err
    assert list(doc) == ["hv03", "hv04", "hv05"]
    assert all(doc[name]["status"] == "ok" for name in doc)
    assert doc["hv04"]["facts"]["hostname"] == "hv04"


def test_cli_unknown_limit_is_usage_error(lab: Lab) -> None:
    code, _, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv99", "facts")
    assert code == 2 and "'hv99' matches no host" in err


def _other_key_known_hosts(lab: Lab, path: Path, name: str) -> Path:
    """A known_hosts in which ``name``'s address carries a different (fresh) key."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path) + ".key"],
                   check=True)  # fmt: skip
    fake = (Path(str(path) + ".key.pub")).read_text().split()[:2]
    ip4 = lab.host(name).ip4
    lines = [
        line if not line.startswith(ip4 + " ") else f"{ip4} {fake[0]} {fake[1]}"
        for line in lab.known_hosts_path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_changed_host_key_fails_only_that_host(lab: Lab, tmp_path: Path) -> None:
    known = _other_key_known_hosts(lab, tmp_path / "known_hosts", "hv01")
    code, doc, _ = fleetbr(
        "-i", str(lab.inventory_dir), "--known-hosts", str(known), "-l", "hv01,hv02", "facts"
    )
    assert code == 1
    assert doc["hv01"]["status"] == "failed" and "not trusted" in doc["hv01"]["message"]
    assert doc["hv02"]["status"] == "ok"


def test_unknown_host_key_is_refused_not_accepted(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    spec = specs(lab.inventory_dir)["hv01"]
    from dataclasses import replace

    strict = replace(spec, ssh=replace(spec.ssh, known_hosts=str(empty)))
    started = time.monotonic()
    with pytest.raises(HostKeyRejected, match="not trusted"):
        asyncio.run(connect(strict))
    assert time.monotonic() - started < 2, "a host-key failure must not be retried"
    assert empty.read_text() == "", "the key must never be written on its own"


def test_unreachable_host_reported_while_others_succeed(lab: Lab, tmp_path: Path) -> None:
    def add_ghost(hosts: dict[str, Any], _: dict[str, Any]) -> None:
        hosts["ghost"] = {"hostname": "198.51.100.99", "port": 22, "groups": ["lab"],
                          "data": {"nic": "eth0"}}  # fmt: skip

    inventory = derived_inventory(lab, tmp_path / "inv", add_ghost)
    set_switch_port(lab, "hv04", up=False)
    try:
        started = time.monotonic()
        result = asyncio.run(
            run_hosts("facts", list(specs(inventory).values()), facts_job, forks=50)
        )
        elapsed = time.monotonic() - started
    finally:
        set_switch_port(lab, "hv04", up=True)
    assert result["hv04"].status == "unreachable"
    assert result["ghost"].status == "unreachable"
    assert {result[h.name].status for h in lab.hosts if h.name != "hv04"} == {"ok"}
    assert elapsed < 45, f"a dead host must be detected in seconds, took {elapsed:.0f}s"
    assert result.exit_code == 1


def test_connect_retries_until_sshd_is_back(lab: Lab) -> None:
    spec = specs(lab.inventory_dir)["hv05"]
    kill_sshd(lab, "hv05")

    async def run() -> str:
        async def restart_later() -> None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(start_sshd, lab, "hv05")

        restarter = asyncio.create_task(restart_later())
        conn = await connect(spec, attempts=10)
        await restarter
        out = await conn.run_script("hostname\n", label="hostname")
        await conn.close()
        return out.stdout.strip()

    try:
        assert asyncio.run(run()) == "hv05"
    finally:
        start_sshd(lab, "hv05")


def test_refused_connection_gives_up_after_attempts(lab: Lab) -> None:
    spec = specs(lab.inventory_dir)["hv06"]
    kill_sshd(lab, "hv06")
    try:
        with pytest.raises(ConnectFailed, match="failed|timed out"):
            asyncio.run(connect(spec, attempts=2))
    finally:
        start_sshd(lab, "hv06")


def test_jump_host(lab: Lab, tmp_path: Path) -> None:
    def via_hv01(hosts: dict[str, Any], _: dict[str, Any]) -> None:
        hosts["hv03"]["connection_options"] = {"fleetbr": {"extras": {
            "client_keys": [str(lab.key_path)], "known_hosts": str(lab.known_hosts_path),
            "jump_host": f"root@{lab.host('hv01').ip4}:22", "connect_timeout": 3}}}  # fmt: skip

    inventory = derived_inventory(lab, tmp_path / "inv", via_hv01)
    direct = ["ip", "route", "add", "blackhole", f"{lab.host('hv03').ip4}/32"]
    subprocess.run(direct, check=True)  # in the test's own namespace: only the jump path remains
    try:
        code, doc, err = fleetbr("-i", str(inventory), "-l", "hv03", "facts")
        blocked, _, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv03", "facts")
    finally:
        subprocess.run(["ip", "route", "del", *direct[3:]], check=True)
    assert code == 0, err
    assert doc["hv03"]["facts"]["hostname"] == "hv03"
    assert blocked == 1, "without the jump host hv03 must be unreachable here"
