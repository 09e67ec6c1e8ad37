"""Refusals: hostile values never reach a host; an armed (live or stale) transaction blocks more."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetbr.lab import Lab, host_state
from tests.integration.barrier import Gate
from tests.integration.helpers import armed, events, fleetbr, sh, task_file

STALE_TXID = "20261127T000000-abcdef"


class Tarpit:
    """Listening sockets on 127.0.0.1 that record every connection attempt."""

    def __init__(self, count: int) -> None:
        self.sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
        self.accepted: list[int] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def ports(self) -> list[int]:
        return [s.getsockname()[1] for s in self.sockets]

    def _serve(self) -> None:
        for s in self.sockets:
            s.settimeout(0.01)
        while not self._stop:
            for s in self.sockets:
                try:
                    conn, _ = s.accept()
                except TimeoutError:
                    continue
                self.accepted.append(s.getsockname()[1])
                conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        for s in self.sockets:
            s.close()


@pytest.fixture
def tarpit_inventory(tmp_path: Path, lab: Lab) -> Iterator[tuple[Path, Tarpit]]:
    """An inventory of 3 hosts that all point at a tarpit (with the lab's keys and known_hosts)."""
    pit = Tarpit(3)
    inv = tmp_path / "inv"
    inv.mkdir()
    hosts = {f"hv{i + 1:02d}": {"hostname": "127.0.0.1", "port": port, "data": {"nic": "eth0"}}
             for i, port in enumerate(pit.ports)}  # fmt: skip
    (inv / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (inv / "defaults.yaml").write_text((lab.inventory_dir / "defaults.yaml").read_text())
    try:
        yield inv, pit
    finally:
        pit.close()


@pytest.mark.parametrize(
    ("change", "field", "shown"),
    [
        ({"nic": "eth0;reboot"}, "bridge.nic", "eth0;reboot"),
        ({"name": "br0123456789abcd"}, "bridge.name", "16 characters"),
        ({"addresses": ["198.51.100.300/24"]}, "bridge.addresses", "198.51.100.300/24"),
        ({"mac": "01:00:5e:00:00:01"}, "bridge.mac", "multicast"),
        ({"forward_delay": "$(reboot)"}, "bridge.forward_delay", "$(reboot)"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_hostile_values_refused_before_contact(
    tarpit_inventory: tuple[Path, Tarpit], tmp_path: Path, command: str,
    change: dict[str, Any], field: str, shown: str,
) -> None:  # fmt: skip
    inv, pit = tarpit_inventory
    task = task_file(tmp_path, **change)
    code, out, err = fleetbr("-i", str(inv), command, str(task))
    assert code == 2, err
    assert out is None, "nothing on stdout: no host result at all"
    assert str(task) in err and "hv01" in err and field in err and shown in err
    time.sleep(0.2)
    assert pit.accepted == [], "a host was contacted despite the bad task"


def test_hostile_inventory_data_refused_before_contact(
    tarpit_inventory: tuple[Path, Tarpit], tmp_path: Path
) -> None:
    inv, pit = tarpit_inventory
    hosts = yaml.safe_load((inv / "hosts.yaml").read_text())
    hosts["hv02"]["data"]["nic"] = "eth0 `touch /tmp/pwned`"
    (inv / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    code, _, err = fleetbr("-i", str(inv), "apply", str(task_file(tmp_path)))
    assert code == 2 and "host hv02" in err and "bridge.nic" in err
    assert pit.accepted == []


def _plant_stale_transaction(lab: Lab, host: str) -> None:
    tx = f"/var/lib/fleetbr/tx/{STALE_TXID}"
    sh(lab, host, f"mkdir -p {tx} && echo {STALE_TXID} > /var/lib/fleetbr/armed && "
       f"echo 1000 > {tx}/deadline && cat /proc/sys/kernel/random/boot_id > {tx}/boot_id && "
       f"echo 999999 > {tx}/timer.pid && "
       f"echo '1000 {STALE_TXID} armed deadline=1000' >> /var/lib/fleetbr/journal")  # fmt: skip


def test_stale_armed_transaction_is_reported_and_refused(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host("hv03")
    _plant_stale_transaction(lab, "hv03")
    before = host_state(lab, "hv03")
    code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv03", "status")
    assert code == 1
    assert doc["hv03"]["status"] == "failed" and "STALE" in doc["hv03"]["message"]
    assert doc["hv03"]["stale"] is True
    code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv03", "apply",
                           str(task_file(tmp_path)))  # fmt: skip
    assert code == 1
    assert doc["hv03"]["status"] == "refused"
    assert "stale" in doc["hv03"]["message"] and STALE_TXID in doc["hv03"]["message"]
    assert host_state(lab, "hv03") == before
    assert events(lab, "hv03") == ["armed"], "nothing may be stacked on the stale transaction"


def test_live_armed_transaction_blocks_a_second_one(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host("hv04")
    gate = Gate(tmp_path / "barrier")  # the first transaction is held before its confirm
    first = subprocess.Popen(
        gate.argv("confirm", "-i", str(lab.inventory_dir), "-l", "hv04", "apply",
                  str(task_file(tmp_path, timeout=60))),  # held while the second one runs
        env=gate.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        gate.reached("confirm", timeout=120)
        assert armed(lab, "hv04")
        code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv04", "apply",
                               str(task_file(tmp_path, stp=True)))  # fmt: skip
        assert code == 1 and doc["hv04"]["status"] == "refused"
        assert "live fleetbr transaction" in doc["hv04"]["message"]
    finally:
        gate.release("confirm")
        assert first.wait(timeout=60) == 0, "the first transaction must still confirm"
    assert events(lab, "hv04") == ["staged", "armed", "applied", "confirmed"]


@pytest.mark.parametrize(
    ("where", "value", "shown"),
    [
        ("--key", "/nonexistent/id_ed25519", "error: --key /nonexistent/id_ed25519: No such file"),
        ("--key", "TMP/not-a-key", "error: --key TMP/not-a-key: not an SSH private key ("),
        ("--known-hosts", "/nonexistent/kh", "error: --known-hosts /nonexistent/kh: No such file"),
        ("--known-hosts", "TMP", "error: --known-hosts TMP: Is a directory"),
        ("client_keys", "/nonexistent/id_rack", "host hv01: client_keys: /nonexistent/id_rack: No"),
        ("client_keys", "TMP/not-a-key", "host hv01: client_keys: TMP/not-a-key: not an SSH priv"),
        ("username", "root\nadmin", r"host hv01: username: 'root\nadmin' is not a user name"),
        ("jump_host", "root@bastion:2x", "host hv01: jump_host port: expected a whole number"),
    ],
)
@pytest.mark.parametrize("command", ["facts", "apply"])
def test_bad_credentials_refused_before_contact(
    tarpit_inventory: tuple[Path, Tarpit], tmp_path: Path, command: str,
    where: str, value: str, shown: str,
) -> None:  # fmt: skip
    """Before: a missing key meant retries and `unreachable ... FileNotFoundError` per host; a
    user name with a newline meant `internal error: SASLPrepError` and a traceback; a missing
    --known-hosts a `failed` per host (exit 1); a file that is no key `internal error:
    KeyImportError`."""
    inv, pit = tarpit_inventory
    (tmp_path / "not-a-key").write_text("ssh-ed25519 AAAA this is a public key line\n")
    value, shown = value.replace("TMP", str(tmp_path)), shown.replace("TMP", str(tmp_path))
    args = [where, value] if where.startswith("--") else []
    if not where.startswith("--"):
        defaults = yaml.safe_load((inv / "defaults.yaml").read_text())
        if where == "username":
            defaults["username"] = value
        else:
            defaults["connection_options"]["fleetbr"]["extras"][where] = value
        (inv / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    task = [str(task_file(tmp_path))] if command == "apply" else []
    code, out, err = fleetbr("-i", str(inv), *args, command, *task, timeout=60)
    assert code == 2, err
    assert out is None
    assert err.count("\n") == 1 and shown in err, err
    time.sleep(0.2)
    assert pit.accepted == [], "a host was contacted despite the bad credentials"
