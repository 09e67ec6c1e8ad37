"""Secrets against the real lab sshd: an encrypted key whose passphrase comes from the
environment, from a command, or from a real ssh-agent; off a terminal without a source, one line
and exit 2; and no password or passphrase in stdout, stderr, --json, the history or the metrics.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetbr.lab import Lab
from tests.integration.helpers import derived_inventory

PASSPHRASE = "pp-It7q-never-shown"
PASSWORD = "pw-It3z-never-shown"
SSH_KEYGEN_ROUNDS = 16  # ssh-keygen -a: its default bcrypt KDF rounds (bcrypt warns below 50)


def encrypted_copy(lab: Lab, dest: Path) -> Path:
    """The lab's client key, encrypted with PASSPHRASE in OpenSSH's own format (what ssh-keygen
    writes, with its 16 bcrypt rounds: asyncssh's default 128 cost 1.4 s of CPU per decryption),
    with its .pub beside it: the hosts already accept it."""
    key = asyncssh.read_private_key(str(lab.key_path))
    dest.write_bytes(
        key.export_private_key(
            "openssh", PASSPHRASE, rounds=SSH_KEYGEN_ROUNDS, ignore_few_rounds=True
        )
    )
    dest.chmod(0o600)
    dest.with_name(dest.name + ".pub").write_bytes(key.export_public_key())
    return dest


def inventory_with(lab: Lab, dest: Path, key: Path, **extras: Any) -> Path:
    """The lab inventory, every host using ``key``, the extras given and password {env:}."""

    def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        options = defaults["connection_options"]["fleetbr"]["extras"]
        options.update(client_keys=[str(key)], **extras)
        defaults["password"] = {"env": "FBR_IT_PASSWORD"}

    return derived_inventory(lab, dest, edit)


def fleetbr_off_tty(
    tmp_path: Path, inventory: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """The CLI in a new session (no controlling terminal: /dev/tty cannot be opened), with
    --json, its own history and metrics file; returns (exit code, stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    environ |= {"FBR_IT_PASSWORD": PASSWORD} | (env or {})
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "--json", "-i", str(inventory),
         "--history", str(tmp_path / "history.sqlite3"),
         "--metrics-file", str(tmp_path / "metrics.prom"), *args],
        capture_output=True, text=True, timeout=120, check=False, env=environ,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def assert_no_secret_anywhere(tmp_path: Path, *texts: str) -> None:
    """Neither secret in the texts given, the history database or the metrics file."""
    stored = [path.read_bytes() for path in tmp_path.glob("history.sqlite3*")]
    stored += [path.read_bytes() for path in tmp_path.glob("metrics.prom*")]
    for secret in (PASSWORD, PASSPHRASE):
        assert all(secret not in text for text in texts)
        assert all(secret.encode() not in blob for blob in stored)


def run_true(tmp_path: Path, inventory: Path, env: dict[str, str] | None = None) -> Any:
    """``fleetbr run -- true`` on hv01 and hv02: exit 0, secrets nowhere; the --json document."""
    code, out, err = fleetbr_off_tty(tmp_path, inventory, "-l", "hv01,hv02", "run", "true", env=env)
    assert code == 0, err
    assert b"hv02" in (tmp_path / "history.sqlite3").read_bytes()  # the run was recorded
    assert_no_secret_anywhere(tmp_path, out, err)
    return json.loads(out)


def test_passphrase_from_the_environment(lab: Lab, tmp_path: Path) -> None:
    key = encrypted_copy(lab, tmp_path / "id_enc")
    inventory = inventory_with(lab, tmp_path / "inv", key, passphrase={"env": "FBR_IT_PP"})
    document = run_true(tmp_path, inventory, env={"FBR_IT_PP": PASSPHRASE})
    assert "hv01" in json.dumps(document) and "hv02" in json.dumps(document)


def test_passphrase_from_a_command_run_once(lab: Lab, tmp_path: Path) -> None:
    key = encrypted_copy(lab, tmp_path / "id_enc")
    runs = tmp_path / "runs"
    script = (
        f"import pathlib; p = pathlib.Path({str(runs)!r}); "
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); "
        f"print({PASSPHRASE!r})"
    )
    line = shlex.join([sys.executable, "-c", script])
    inventory = inventory_with(lab, tmp_path / "inv", key, passphrase={"command": line})
    run_true(tmp_path, inventory)
    assert runs.read_text() == "x"  # once for the run, though two hosts use it


@pytest.fixture
def agent(lab: Lab, tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on a socket of its own, holding the lab's key; its socket path."""
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not create its socket"
            time.sleep(0.05)
        subprocess.run(
            ["ssh-add", str(lab.key_path)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        yield str(sock)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_an_encrypted_key_the_agent_holds_needs_no_passphrase(
    lab: Lab, tmp_path: Path, agent: str
) -> None:
    key = encrypted_copy(lab, tmp_path / "id_enc")
    inventory = inventory_with(lab, tmp_path / "inv", key)
    run_true(tmp_path, inventory, env={"SSH_AUTH_SOCK": agent})


def test_agent_alone_without_client_keys(lab: Lab, tmp_path: Path, agent: str) -> None:
    """No client_keys and a HOME without keys: only the agent can authenticate."""
    home = tmp_path / "home"
    home.mkdir()

    def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        del defaults["connection_options"]["fleetbr"]["extras"]["client_keys"]

    inventory = derived_inventory(lab, tmp_path / "inv", edit)
    run_true(tmp_path, inventory, env={"SSH_AUTH_SOCK": agent, "HOME": str(home)})
    code, _, err = fleetbr_off_tty(
        tmp_path, inventory, "-l", "hv01", "facts", env={"HOME": str(home)}
    )
    assert code != 0 and "authentication refused" in err + _, "without the agent: refused"


def test_off_a_terminal_without_a_source_is_one_line_and_nothing_contacted(
    lab: Lab, tmp_path: Path
) -> None:
    key = encrypted_copy(lab, tmp_path / "id_enc")
    inventory = inventory_with(lab, tmp_path / "inv", key)
    code, out, err = fleetbr_off_tty(tmp_path, inventory, "-l", "hv01", "run", "true")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "is encrypted and there is no terminal" in err, err
    assert not (tmp_path / "history.sqlite3").exists()  # refused before the run started
    assert_no_secret_anywhere(tmp_path, out, err)


def test_a_failing_password_command_is_one_line(lab: Lab, tmp_path: Path) -> None:
    def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        defaults["password"] = {"command": shlex.join([sys.executable, "-c", "exit(4)"])}

    inventory = derived_inventory(lab, tmp_path / "inv", edit)
    code, out, err = fleetbr_off_tty(tmp_path, inventory, "-l", "hv01", "run", "true")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.endswith("the command exited 4\n") and "host hv01: secret {command: " in err


def run_on_a_terminal(args: list[str], answer: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI on a new pseudo-terminal (its controlling terminal), type ``answer`` at each
    passphrase prompt; returns (exit code, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its stdin, stdout, stderr and /dev/tty
        os.execve(sys.executable, [sys.executable, "-m", "fleetbr", *args], env)
    shown, answered = b"", 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if shown.count(b"Passphrase for ") > answered:
                answered += 1
                os.write(fd, answer.encode() + b"\n")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8", "replace")


def test_on_a_terminal_the_passphrase_is_asked_once_for_all_hosts(lab: Lab, tmp_path: Path) -> None:
    key = encrypted_copy(lab, tmp_path / "id_enc")
    inventory = inventory_with(lab, tmp_path / "inv", key)
    environ = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    environ |= {"FBR_IT_PASSWORD": PASSWORD}
    args = ["--json", "-i", str(inventory), "--history", str(tmp_path / "history.sqlite3"),
            "-l", "hv01,hv02,hv03", "run", "true"]  # fmt: skip
    code, shown = run_on_a_terminal(args, PASSPHRASE, environ)
    assert code == 0, shown
    assert shown.count(f"Passphrase for {key}: ") == 1  # once for the three hosts
    assert_no_secret_anywhere(tmp_path, shown)  # not echoed either
    assert all(f'"{name}"' in shown for name in ("hv01", "hv02", "hv03"))
