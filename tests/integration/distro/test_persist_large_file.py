"""A configuration file over 64 KiB, with bytes that are not UTF-8, survives a confirmed apply
byte for byte outside what fleetbr changes (issue 14, item 3). Before: an 82 KB
/etc/network/interfaces with a stanza at its end was confirmed, cut to about 64 KiB, the stanza
gone for good, and ``check`` said ``in_sync``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost, host_exec
from tests.bytesamples import FILLER, ODD, VZ1
from tests.integration.distro.persisthelpers import HOSTS, persist_task, plan

pytestmark = pytest.mark.lab

PATH = "/etc/network/interfaces"
VZ0 = b"\niface vz0 inet manual\n"


def read_bytes(lab: Lab, host: str, path: str) -> bytes:
    """The file's exact bytes (through base64: host_exec speaks text)."""
    return base64.b64decode(host_exec(lab, host, ["base64", "-w", "0", path]).stdout)


def test_an_82_kb_interfaces_file_keeps_its_last_stanza_and_its_bytes(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    host = fresh_distro_host(HOSTS["ifupdown"]).name
    # eth0's stanzas first, 82 KB of another stanza, vz1 last (as in the issue)
    data = ODD + read_bytes(distro_lab, host, PATH) + VZ0 + FILLER + VZ1
    assert len(data) > 80_000
    encoded = base64.b64encode(data).decode()
    host_exec(distro_lab, host, ["sh", "-c", f"base64 -d > {PATH}"], input=encoded)
    code, status, message = plan(distro_lab, host, persist_task(tmp_path), "apply")
    assert (code, status) == (0, "confirmed"), message
    out = read_bytes(distro_lab, host, PATH)
    assert out.startswith(ODD), out[:200]
    assert VZ0 + FILLER in out and VZ1.strip() in out
    assert b"bridge_ports eth0" in out
    code, status, message = plan(distro_lab, host, persist_task(tmp_path), "check")
    assert (code, status) == (0, "in_sync"), message
