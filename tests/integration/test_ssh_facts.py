"""Foundation against real sshd in the lab: facts, host selection, host keys, unreachable hosts."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetbr.errors import ConnectFailed, HostKeyRejected
from fleetbr.facts.gather import facts_job, gather
from fleetbr.lab import Lab, host_exec, kill_sshd, reset_host, set_switch_port, start_sshd
from fleetbr.runner import run_hosts
from fleetbr.transport.ssh import connect, open_connection
from tests.integration.helpers import derived_inventory, fleetbr, sh, specs, task_file, wait_for


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


def test_unknown_host_key_is_refused_not_accepted(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    spec = specs(lab.inventory_dir)["hv01"]
    from dataclasses import replace

    strict = replace(spec, ssh=replace(spec.ssh, known_hosts=str(empty)))
    attempts: list[object] = []
    real = asyncssh.connect

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(asyncssh, "connect", counted)
    with pytest.raises(HostKeyRejected, match="not trusted"):
        asyncio.run(connect(strict))
    assert len(attempts) == 1, "a host-key failure must not be retried"
    assert empty.read_text() == "", "the key must never be written on its own"


def test_unreachable_host_reported_while_others_succeed(lab: Lab, tmp_path: Path) -> None:
    def add_ghost(hosts: dict[str, Any], _: dict[str, Any]) -> None:
        hosts["ghost"] = {"hostname": "198.51.100.99", "port": 22, "groups": ["lab"],
                          "data": {"nic": "eth0"}}  # fmt: skip

    inventory = derived_inventory(lab, tmp_path / "inv", add_ghost)
    set_switch_port(lab, "hv04", up=False)
    try:
        result = asyncio.run(
            run_hosts("facts", list(specs(inventory).values()), facts_job, forks=50)
        )
    finally:
        set_switch_port(lab, "hv04", up=True)
    assert result["hv04"].status == "unreachable"
    assert result["ghost"].status == "unreachable"
    assert {result[h.name].status for h in lab.hosts if h.name != "hv04"} == {"ok"}
    # what connect promises for a dead host: its attempts, each within the connect timeout,
    # each backoff within 4 s + 0.5 s of jitter (transport.ssh.connect)
    ssh = specs(inventory)["ghost"].ssh
    attempts = inspect.signature(connect).parameters["attempts"].default
    promised = attempts * (ssh.connect_timeout + 4.5)
    for dead in ("hv04", "ghost"):
        took = result[dead].elapsed
        assert took < promised, f"{dead}: a dead host must be detected in seconds, took {took:.0f}s"
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


def _run_cli(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (no --json), optionally with another HOME."""
    env = {**os.environ, **({"HOME": str(home)} if home else {})}
    return subprocess.run([sys.executable, "-m", "fleetbr", *args], capture_output=True,
                          text=True, timeout=300, env=env, check=False)  # fmt: skip


def _sessions(lab: Lab, host: str) -> int:
    """How many SSH sessions the host's sshd started since the marker was planted (~/.ssh/rc)."""
    return len(sh(lab, host, "cat /root/fleetbr-test-sessions 2>/dev/null || :").splitlines())


@pytest.mark.parametrize(
    "ssh_config",
    ["UserKnownHostsFile none\n", "StrictHostKeyChecking no\nUserKnownHostsFile /dev/null\n",
     "StrictHostKeyChecking no\nUserKnownHostsFile none\nGlobalKnownHostsFile none\n"],
)  # fmt: skip
def test_ssh_config_cannot_switch_host_key_checking_off(
    lab: Lab, fresh_host: Any, tmp_path: Path, ssh_config: str
) -> None:
    """Before: `UserKnownHostsFile none` in ~/.ssh/config made asyncssh accept any host key."""
    fresh_host("hv09")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n" + "".join(
        f"    {line}\n" for line in ssh_config.splitlines()))  # fmt: skip
    hv09 = lab.host("hv09")
    known = [line for line in lab.known_hosts_path.read_text().splitlines()
             if line.split()[0] not in (hv09.ip4, hv09.ip6)]  # fmt: skip
    (home / ".ssh" / "known_hosts").write_text("\n".join(known) + "\n")

    def default_known_hosts(_: dict[str, Any], defaults: dict[str, Any]) -> None:
        del defaults["connection_options"]["fleetbr"]["extras"]["known_hosts"]

    inventory = derived_inventory(lab, tmp_path / "inv", default_known_hosts)
    sh(lab, "hv09", "mkdir -p /root/.ssh && "
       "echo 'echo session >> /root/fleetbr-test-sessions' > /root/.ssh/rc")  # fmt: skip
    try:
        control = _run_cli("-i", str(lab.inventory_dir), "-l", "hv09", "facts")
        assert control.returncode == 0 and _sessions(lab, "hv09") == 1, control.stderr
        done = _run_cli("--json", "-i", str(inventory), "-l", "hv09,hv10", "facts", home=home)
        assert _sessions(lab, "hv09") == 1, "a session was opened on a host with an unknown key"
    finally:
        sh(lab, "hv09", "rm -f /root/.ssh/rc /root/fleetbr-test-sessions")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["hv09"]["status"] == "failed"
    assert "not trusted" in doc["hv09"]["message"]
    assert doc["hv10"]["status"] == "ok", "the HOME known_hosts is the one used, and it works"


def test_hostile_host_names_never_lose_an_apply_report(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Before: the apply changed both hosts, then rendering their names as markup crashed."""
    names = {"hv11": "rack[/]4", "hv12": "[fe80::1]"}
    for host in names:
        fresh_host(host)

    def rename(hosts: dict[str, Any], _: dict[str, Any]) -> None:
        for old, new in names.items():
            hosts[new] = hosts.pop(old)

    inventory = derived_inventory(lab, tmp_path / "inv", rename)
    try:
        done = _run_cli("-i", str(inventory), "-l", ",".join(names.values()), "apply",
                        str(task_file(tmp_path)))  # fmt: skip
    finally:
        for host in names:
            reset_host(lab, host)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    rows = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:-1]}
    assert rows == dict.fromkeys(names.values(), "confirmed")
    assert done.stdout.splitlines()[-1] == "2 hosts: 2 confirmed"


@pytest.mark.parametrize("inventory_says", [None, False, True])
def test_forward_agent_in_ssh_config_is_pinned_off(
    lab: Lab, tmp_path: Path, inventory_says: bool | None
) -> None:
    """Issue 20: `ForwardAgent yes` in ~/.ssh/config forwarded the operator's agent to every host.
    Only the inventory's ``agent_forwarding: true`` forwards it (the control that the remote side
    would see a forwarded agent)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n    ForwardAgent yes\n")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    inventory = lab.inventory_dir
    if inventory_says is not None:

        def edit(_: dict[str, Any], defaults: dict[str, Any]) -> None:
            defaults["connection_options"]["fleetbr"]["extras"]["agent_forwarding"] = inventory_says

        inventory = derived_inventory(lab, tmp_path / "inv", edit)
    try:
        wait_for(sock.exists, 10, "ssh-agent's socket")
        env = {**os.environ, "HOME": str(home), "SSH_AUTH_SOCK": str(sock)}
        probe = 'if [ -S "${SSH_AUTH_SOCK:-}" ]; then echo forwarded; else echo none; fi'
        done = subprocess.run([sys.executable, "-m", "fleetbr", "--json", "-i", str(inventory),
                               "-l", "hv11", "run", "--", probe], capture_output=True, text=True,
                              timeout=120, env=env, check=False)  # fmt: skip
    finally:
        agent.terminate()
        agent.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout)["hv11"]["stdout"].strip()
    assert seen == ("forwarded" if inventory_says else "none")


def test_untrusted_jump_host_is_named_in_the_error(lab: Lab, tmp_path: Path) -> None:
    """Issue 20: a jump host whose key is unknown failed with an error naming the target."""
    hv01 = lab.host("hv01")
    known = tmp_path / "known_hosts"
    known.write_text("".join(line + "\n" for line in lab.known_hosts_path.read_text().splitlines()
                             if line.split()[0] not in (hv01.ip4, hv01.ip6)))  # fmt: skip

    def via_hv01(hosts: dict[str, Any], _: dict[str, Any]) -> None:
        hosts["hv03"]["connection_options"] = {"fleetbr": {"extras": {
            "client_keys": [str(lab.key_path)], "known_hosts": str(known),
            "jump_host": f"root@{hv01.ip4}:22", "connect_timeout": 3}}}  # fmt: skip

    inventory = derived_inventory(lab, tmp_path / "inv", via_hv01)
    code, doc, err = fleetbr("-i", str(inventory), "-l", "hv03", "facts")
    assert code == 1, err
    message = doc["hv03"]["message"]
    assert f"host key of jump host {hv01.ip4}:22 is not trusted" in message, message
    assert lab.host("hv03").ip4 not in message


def test_proxy_jump_in_ssh_config_is_ignored(lab: Lab, tmp_path: Path) -> None:
    """Issue 20: asyncssh opened the ssh config's ProxyJump with the config's own known_hosts
    (here none at all). fleetbr ignores it: the jump (to a port nothing listens on) is never
    tried, and the host is reached directly with fleetbr's known_hosts."""
    hv03 = lab.host("hv03")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host {hv03.ip4}\n    ProxyJump root@{lab.host('hv01').ip4}:2\n"
        "    UserKnownHostsFile none\n    StrictHostKeyChecking no\n"
    )
    done = _run_cli("--json", "-i", str(lab.inventory_dir), "-l", "hv03", "facts", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["hv03"]["facts"]["hostname"] == "hv03"


def test_json_facts_redact_secrets_in_config_files(lab: Lab) -> None:
    """Issue 20: `--json facts` carried a `wpa-psk` line of an ifupdown file."""
    path = "/etc/network/interfaces.d/fleetbr-test-wlan0"
    stanza = "iface wlan0 inet dhcp\n    wpa-ssid lab\n    wpa-psk s3cr3t-psk\n"
    host_exec(lab, "hv05", ["sh", "-c", 'mkdir -p "${1%/*}" && cat > "$1"', "sh", path],
              input=stanza)  # fmt: skip
    try:
        code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv05", "facts")
    finally:
        # the directories too, if this test made them (rmdir leaves non-empty ones alone)
        clean = 'rm -f "$1"; rmdir "${1%/*}" "${1%/*/*}" 2>/dev/null; :'
        host_exec(lab, "hv05", ["sh", "-c", clean, "sh", path])
    assert code == 0, err
    contents = doc["hv05"]["facts"]["daemons"]["contents"]
    assert contents[path] == "iface wlan0 inet dhcp\n    wpa-ssid lab\n    wpa-psk <redacted>\n"
    assert "s3cr3t" not in json.dumps(doc)
