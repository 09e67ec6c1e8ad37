"""The transport parses a known_hosts file once per content, not once per connection."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from fleetbr.errors import HostKeyRejected
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.transport.ssh import _connect_once, known_hosts


def _line(addr: str) -> tuple[str, str]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    public = key.export_public_key().decode().split()
    return f"{addr} {public[0]} {public[1]}\n", public[1]


def _matched_blobs(parsed: asyncssh.SSHKnownHosts, addr: str) -> list[str]:
    host_keys = parsed.match("hv01", addr, None)[0]  # the name matches nothing; the address may
    return [k.export_public_key().decode().split()[1] for k in host_keys]


def test_parsed_once_while_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    line, blob = _line("198.51.100.10")
    path.write_text(line)
    first = known_hosts(str(path))
    assert known_hosts(str(path)) is first
    assert _matched_blobs(first, "198.51.100.10") == [blob]


def test_a_changed_key_is_seen_even_with_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    old_line, old_blob = _line("198.51.100.10")
    new_line, new_blob = _line("198.51.100.10")
    assert len(old_line) == len(new_line) and old_blob != new_blob
    path.write_text(old_line)
    before = known_hosts(str(path))
    path.write_text(new_line)
    after = known_hosts(str(path))
    assert _matched_blobs(before, "198.51.100.10") == [old_blob]
    assert _matched_blobs(after, "198.51.100.10") == [new_blob]


def test_each_file_has_its_own_entry(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    line_one, blob_one = _line("198.51.100.10")
    line_two, _ = _line("198.51.100.11")
    one.write_text(line_one)
    two.write_text(line_two)
    assert _matched_blobs(known_hosts(str(one)), "198.51.100.10") == [blob_one]
    assert _matched_blobs(known_hosts(str(two)), "198.51.100.10") == []


async def test_missing_known_hosts_fails_before_connecting(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    spec = HostSpec(
        name="hv01", hostname="198.51.100.10", port=22, username="root", password=None,
        groups=(), data={}, ssh=SSHOptions(known_hosts=str(missing), connect_timeout=1.0),
    )  # fmt: skip
    with pytest.raises(HostKeyRejected, match="cannot be read") as caught:
        await _connect_once(spec)  # fails on the file, before any packet is sent
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "secret",
    ["root:$6$s3cr3tSALT$s3cr3tHASH:19000:0:99999:7:::",
     "|1|s3cr3t-not-a-hash KEY",
     "@s3cr3t-marker host KEY"],
)  # fmt: skip
def test_a_parse_error_names_the_file_and_line_never_the_content(
    tmp_path: Path, secret: str
) -> None:
    """Issue 20: `--known-hosts /etc/shadow` printed a shadow line into the report."""
    path = tmp_path / "shadowish"
    good, _ = _line("198.51.100.10")
    key = " ".join(good.split()[1:])  # a valid key: asyncssh skips entries with unreadable keys
    path.write_text(f"{good}# a comment\n{secret.replace('KEY', key)}\n")
    with pytest.raises(HostKeyRejected) as caught:
        known_hosts(str(path))
    message = str(caught.value)
    assert f"known_hosts file {path} cannot be parsed (line 3 " in message
    assert "s3cr3t" not in message
