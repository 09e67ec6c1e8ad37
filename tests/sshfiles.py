"""SSH files for tests that run fleetbr without a reachable host."""

from __future__ import annotations

from pathlib import Path

import asyncssh


def write_key(path: Path) -> Path:
    """A fresh, unencrypted ed25519 private key at ``path`` (fleetbr checks keys up front)."""
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
    return path


def write_unparsable_known_hosts(path: Path) -> Path:
    """A known_hosts file that exists but cannot be parsed: every host then fails at once, on
    the controller, with no network (a missing file is refused up front with exit 2)."""
    path.write_text("not-a-known-hosts-entry\n")
    return path
