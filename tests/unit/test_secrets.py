"""Inventory secrets: shapes, masking, sources read once, encrypted keys decrypted once (no SSH)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from fleetbr import keyfiles, secrets
from fleetbr.cli import main
from fleetbr.errors import UsageError, ValidationError
from fleetbr.inventory import check_client_keys, load_inventory
from fleetbr.keyfiles import unlock_keys, unlocked
from fleetbr.secrets import MASK, Secret, SecretSource, parse_secret
from fleetbr.sshagent import agent_holds
from tests.sshfiles import write_key

PASSWORD = "pw-Zq81-never-shown"
PASSPHRASE = "pp-Kx42-never-shown"
SSH_KEYGEN_ROUNDS = 16  # ssh-keygen -a: its default bcrypt KDF rounds (bcrypt warns below 50)


@pytest.fixture(autouse=True)
def _fresh_run() -> Iterator[None]:
    secrets.forget()
    keyfiles._UNLOCKED.clear()
    yield
    secrets.forget()
    keyfiles._UNLOCKED.clear()


def write_encrypted_key(path: Path, passphrase: str = PASSPHRASE, form: str = "openssh") -> Path:
    """An ed25519 key encrypted with ``passphrase``, in OpenSSH's own format (``ssh-keygen``'s
    default; bcrypt decrypts it, with ssh-keygen's 16 rounds: asyncssh's default 128 cost 1.4 s
    of CPU per encryption and per decryption) or ``pkcs8-pem``."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.write_bytes(
        key.export_private_key(form, passphrase, rounds=SSH_KEYGEN_ROUNDS, ignore_few_rounds=True)
    )
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return path


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (42, "password: expected a string, {env: VAR} or {command: CMD}"),
        (["x"], "password: expected a string"),
        ({"env": "A", "command": "b"}, "got a mapping with key(s) command, env"),
        ({"file": "/x"}, "got a mapping with key(s) file"),
        ({}, "got a mapping with key(s) none"),
        ({"env": 3}, "password: env: expected a string, got 3"),
        ({"env": "NOT-A-NAME"}, "password: env: 'NOT-A-NAME' is not an environment variable"),
        ({"env": "$HOME"}, "is not an environment variable name"),
        ({"command": ""}, "password: command: empty"),
        ({"command": "pass 'unclosed"}, "password: command: No closing quotation"),
        ("a\nb", "password: contains control characters"),
    ],
)
def test_bad_shapes_are_refused_with_one_line(value: object, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_secret(value, "password")
    assert error in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_literal_is_never_quoted_back_in_an_error() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_secret(PASSWORD + "\x07", "passphrase")
    assert PASSWORD not in str(caught.value)


def test_a_secret_prints_masked_everywhere() -> None:
    secret = parse_secret(PASSWORD, "password")
    assert secret is not None
    assert str(secret) == MASK and f"{secret}" == MASK
    assert PASSWORD not in repr(secret) and PASSWORD not in repr([secret])
    assert secret.reveal() == PASSWORD
    sourced = parse_secret({"env": "FBR_PW"}, "password")
    assert repr(sourced) == "Secret(******** from {env: FBR_PW})"


def test_host_spec_repr_and_public_view_hide_both_secrets(tmp_path: Path) -> None:
    (tmp_path / "hosts.yaml").write_text(
        f"hv01:\n  hostname: 198.51.100.10\n  password: {PASSWORD}\n"
        "  connection_options:\n    fleetbr:\n      extras:\n"
        f"        passphrase: {PASSPHRASE}\n"
    )
    spec = load_inventory(tmp_path)["hv01"]
    shown = repr(spec) + repr(spec.ssh) + repr(spec.public_view()) + str(spec.__dict__)
    assert PASSWORD not in shown and PASSPHRASE not in shown
    assert spec.public_view()["password"] == MASK and spec.public_view()["passphrase"] == MASK


def test_env_source_is_read_when_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBR_PW", PASSWORD)
    secret = parse_secret({"env": "FBR_PW"}, "password")
    assert secret == Secret(source=SecretSource("env", "FBR_PW"))
    assert secret is not None and secret.reveal() == PASSWORD


@pytest.mark.parametrize(("setting", "state"), [(None, "is not set"), ("", "is empty")])
def test_missing_env_is_one_line(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, state: str
) -> None:
    if setting is None:
        monkeypatch.delenv("FBR_PW", raising=False)
    else:
        monkeypatch.setenv("FBR_PW", setting)
    secret = parse_secret({"env": "FBR_PW"}, "password")
    assert secret is not None
    with pytest.raises(
        UsageError, match=rf"^secret \{{env: FBR_PW\}}: the environment variable {state}$"
    ):
        secret.reveal()


def command(*words: str) -> str:
    """A command line running this Python with ``words`` (quoted for shlex)."""
    return shlex.join([sys.executable, "-c", *words])


def test_command_source_takes_the_first_line_and_runs_once(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    script = (
        f"import pathlib; p = pathlib.Path({str(counter)!r}); "
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); "
        f"print({PASSWORD!r}); print('second line')"
    )
    first = parse_secret({"command": command(script)}, "password")
    again = parse_secret({"command": command(script)}, "passphrase")
    assert first is not None and again is not None
    assert first.reveal() == PASSWORD and again.reveal() == PASSWORD
    assert counter.read_text() == "x"  # one run for both users of the same source


def test_command_runs_without_a_shell() -> None:
    secret = parse_secret({"command": "echo $HOME;id"}, "password")
    assert secret is not None and secret.reveal() == "$HOME;id"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            command("import sys; print('leak " + PASSWORD + "'); sys.exit(3)"),
            "the command exited 3",
        ),
        (command("print('')"), "the command printed an empty first line"),
        ("/nonexistent/fbr-pass show x", "/nonexistent/fbr-pass: command not found"),
    ],
)
def test_failing_command_is_one_line_without_its_output(line: str, error: str) -> None:
    secret = parse_secret({"command": line}, "password")
    assert secret is not None
    with pytest.raises(UsageError) as caught:
        secret.reveal()
    message = str(caught.value)
    assert message.startswith("secret {command: ") and message.endswith(error)
    assert "\n" not in message and PASSWORD not in message


def test_check_client_keys_names_the_host_whose_source_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FBR_MISSING", raising=False)
    (tmp_path / "hosts.yaml").write_text(
        "hv01:\n  hostname: 198.51.100.10\n  password: {env: FBR_MISSING}\n"
    )
    hosts = list(load_inventory(tmp_path).values())  # loading reads no source
    with pytest.raises(UsageError) as caught:
        check_client_keys(tmp_path, hosts, None)
    assert str(caught.value) == (
        f"{tmp_path}/hosts.yaml: host hv01: secret {{env: FBR_MISSING}}: "
        "the environment variable is not set"
    )


@pytest.mark.parametrize("form", ["openssh", "pkcs8-pem"])
def test_encrypted_key_is_decrypted_once_with_its_passphrase_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    key = write_encrypted_key(tmp_path / "id_enc", form=form)
    monkeypatch.setenv("FBR_PP", PASSPHRASE)
    passphrase = parse_secret({"env": "FBR_PP"}, "passphrase")
    assert unlocked(str(key)) == str(key)  # not yet: asyncssh would get the path
    unlock_keys([str(key)], passphrase, "client_keys")
    loaded = unlocked(str(key))
    assert isinstance(loaded, asyncssh.SSHKey)
    assert loaded.public_data == asyncssh.read_public_key(str(key) + ".pub").public_data


def test_wrong_passphrase_is_one_line(tmp_path: Path) -> None:
    key = write_encrypted_key(tmp_path / "id_enc")
    with pytest.raises(
        UsageError, match=r"^client_keys: .*/id_enc: cannot decrypt: wrong passphrase$"
    ):
        unlock_keys([str(key)], Secret("not-it"), "client_keys")


def test_no_terminal_and_no_source_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = write_encrypted_key(tmp_path / "id_enc")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setattr(keyfiles, "_has_terminal", lambda: False)
    with pytest.raises(UsageError) as caught:
        unlock_keys([str(key)], None, "client_keys")
    assert str(caught.value) == (
        f"client_keys: {key} is encrypted and there is no terminal to ask its passphrase on "
        "(set passphrase: {env: VAR} or {command: CMD} in the inventory, or ssh-add it)"
    )


def test_terminal_prompt_is_asked_once_for_every_host_sharing_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = write_encrypted_key(tmp_path / "id_enc")
    (tmp_path / "hosts.yaml").write_text(
        "".join(
            f"hv0{n}:\n  hostname: 198.51.100.1{n}\n  connection_options:\n    fleetbr:\n"
            f"      extras: {{client_keys: [{key}]}}\n"
            for n in range(1, 4)
        )
    )
    prompts: list[str] = []
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setattr(keyfiles, "_has_terminal", lambda: True)

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return PASSPHRASE

    monkeypatch.setattr("getpass.getpass", typed)
    check_client_keys(tmp_path, list(load_inventory(tmp_path).values()), None)
    assert prompts == [f"Passphrase for {key}: "]
    assert isinstance(unlocked(str(key)), asyncssh.SSHKey)


def test_an_unencrypted_key_needs_nothing(tmp_path: Path) -> None:
    key = write_key(tmp_path / "id_plain")
    unlock_keys([str(key)], None, "client_keys", ask=False)
    assert unlocked(str(key)) == str(key)


def test_no_agent_holds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = write_encrypted_key(tmp_path / "id_enc")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    assert agent_holds(str(key) + ".pub") is False
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-such-socket"))
    assert agent_holds(str(key) + ".pub") is False


def test_inventory_listing_masks_and_reads_no_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FBR_UNSET", raising=False)
    (tmp_path / "hosts.yaml").write_text(
        "hv01:\n  hostname: 198.51.100.10\n  password: {env: FBR_UNSET}\n"
        "hv02:\n  hostname: 198.51.100.11\n"
        f"  password: {PASSWORD}\n"
    )
    assert main(["--json", "-i", str(tmp_path), "inventory"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert document["hv01"]["password"] == MASK and document["hv02"]["password"] == MASK
    assert PASSWORD not in out
