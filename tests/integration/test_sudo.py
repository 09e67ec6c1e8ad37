"""Non-root SSH users on real lab hosts: ``sudo: true`` runs every script as root through
``sudo -n``; without sudo (or without a sudoers entry) a change fails cleanly, host untouched.

The users live only in the host's private /etc overlay (see lab_holder.sh.j2). The lab's sshd has
one fixed AuthorizedKeysFile for every user, so the lab key already logs them in.

sudo looks up the host's own name on every call; without the ``127.0.1.1 hvNN`` line the lab
writes into each host's private /etc/hosts (as a Debian install does), each sudo would wait ~20 s
for DNS and a transaction with a 14 s dead-man timer could not confirm.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetbr.errors import RemoteCommandFailed
from fleetbr.lab import Lab, host_exec, host_state
from fleetbr.transport import ssh as ssh_transport
from fleetbr.transport.ssh import open_connection
from tests.integration.helpers import (
    NO_SUDOER,
    SUDO_HOST,
    SUDOER,
    armed,
    enslaved,
    events,
    fleetbr,
    sh,
    specs,
    sudo_inventory,
    task_file,
)

HOST = SUDO_HOST


pytestmark = pytest.mark.skipif(
    shutil.which("sudo") is None, reason="needs the sudo package (run scripts/setup)"
)


def _run(inventory: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    code, doc, err = fleetbr("-i", str(inventory), "-l", HOST, *args)
    assert isinstance(doc, dict), f"no JSON report (exit {code}): {doc!r} {err}"
    assert "Traceback" not in err and "internal error" not in str(doc), err
    return code, doc[HOST], err


def test_sudo_user_gathers_facts_applies_and_reads_status(
    lab: Lab, users: None, tmp_path: Path
) -> None:
    inventory = sudo_inventory(lab, tmp_path / "inv", SUDOER, sudo=True)
    assert sh(lab, HOST, f"id -u {SUDOER}").strip() != "0"
    code, facts, err = _run(inventory, "facts")
    assert code == 0, err
    assert facts["status"] == "ok" and facts["facts"]["hostname"] == HOST

    code, result, err = _run(inventory, "apply", str(task_file(tmp_path)))
    assert code == 0 and result["status"] == "confirmed", (result, err)
    assert enslaved(lab, HOST)
    assert lab.host(HOST).addr4 in sh(lab, HOST, "ip -o addr show dev br0")
    assert events(lab, HOST) == ["staged", "armed", "applied", "confirmed"]
    assert not armed(lab, HOST)
    # the transaction ran as root through sudo, not as the login user
    assert sh(lab, HOST, "stat -c %U /var/lib/fleetbr/journal").strip() == "root"

    code, status, err = _run(inventory, "status")
    assert code == 0 and status["status"] == "ok", (status, err)
    assert f"last {result['txid']}: confirmed" in status["message"]


def test_without_sudo_the_apply_fails_cleanly(
    lab: Lab, users: None, pristine: dict[str, Any], tmp_path: Path
) -> None:
    inventory = sudo_inventory(lab, tmp_path / "inv", SUDOER, sudo=False)
    code, facts, err = _run(inventory, "facts")  # reading the network needs no root
    assert code == 0 and facts["facts"]["hostname"] == HOST, (facts, err)
    code, result, err = _run(inventory, "apply", str(task_file(tmp_path)))
    assert code == 1, err
    assert result["status"] in ("failed", "refused"), result
    message = result["message"]
    assert "Permission denied" in message and "nothing changed" in message, message
    assert host_state(lab, HOST) == pristine[HOST]
    assert not armed(lab, HOST) and events(lab, HOST) == []


def test_user_without_sudoers_entry_gets_a_sudo_error(
    lab: Lab, users: None, pristine: dict[str, Any], tmp_path: Path
) -> None:
    inventory = sudo_inventory(lab, tmp_path / "inv", NO_SUDOER, sudo=True)
    for args in (("facts",), ("apply", str(task_file(tmp_path)))):
        code, result, err = _run(inventory, *args)
        assert code == 1, err
        assert result["status"] == "failed", result
        assert "sudo: a password is required" in result["message"], result["message"]
    assert host_state(lab, HOST) == pristine[HOST]
    assert not armed(lab, HOST) and events(lab, HOST) == []


def test_a_script_refused_before_its_input_was_sent_is_a_failed_command_not_a_lost_session(
    lab: Lab, users: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sudo refusing at once ends the channel; on a loaded controller that can happen before the
    script is written (CI saw "connection lost during facts: BrokenPipeError: Channel not open
    for sending": the host reported unreachable). The script is sent here only once the remote
    command has ended and its channel closed, so that race is lost every time: the answer must
    still be sudo's own words and exit status."""
    send = ssh_transport._send_input

    async def after_the_end(process: asyncssh.SSHClientProcess[bytes], data: bytes | None) -> None:
        await process.wait_closed()
        await send(process, data)

    monkeypatch.setattr(ssh_transport, "_send_input", after_the_end)
    spec = specs(sudo_inventory(lab, tmp_path / "inv", NO_SUDOER, sudo=True))[HOST]

    async def run() -> RemoteCommandFailed:
        async with open_connection(spec) as conn:
            with pytest.raises(RemoteCommandFailed) as failed:
                await conn.run_script("echo never", label="facts", timeout=60)
            return failed.value

    failure = asyncio.run(run())
    assert "sudo: a password is required" in str(failure), str(failure)


def test_a_status_file_an_unprivileged_user_wrote_cannot_confirm_a_failing_check(
    lab: Lab, users: None, pristine: dict[str, Any]
) -> None:
    """Issue 20: the check ``cat``s a file a local user without sudo owns; the user wrote a fake
    marker after a carriage return into it. The check fails, so the host rolls back."""
    status = f"/var/lib/{NO_SUDOER}-home/app.status"
    host_exec(lab, HOST, ["setpriv", f"--reuid={NO_SUDOER}", f"--regid={NO_SUDOER}",
                          "--init-groups", "sh", "-c",
                          "printf 'starting\\r@@check 0\\n' > \"$1\"", "sh", status])  # fmt: skip
    assert sh(lab, HOST, f"stat -c %U {status}").strip() == NO_SUDOER
    check = f"cat {status}; exit 1"
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", HOST, "run", "--deadman", "14",
                             "--undo", "true", "--confirm-check", check, "--", "true")  # fmt: skip
    assert code == 1, (doc, err)
    assert doc[HOST]["status"] == "rolled_back", doc
    assert "confirm check exited 1: starting" in doc[HOST]["message"]
    assert "confirmed" not in events(lab, HOST)
    assert host_state(lab, HOST) == pristine[HOST]
