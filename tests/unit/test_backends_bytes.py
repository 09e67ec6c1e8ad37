"""A file a backend rewrites is kept byte for byte outside what it changes (issue 14, item 3).

The facts hold a daemon's file whole (up to CONTENT_MAX_BYTES) with the bytes that are not UTF-8
kept as surrogates; the backend's rewrite keeps them; the file_write step writes its exact bytes
(base64); the sha256 confirm expects is the one of those bytes. The rendered step is run here
with sh against a temporary path. Before: 64 KiB were read, the rest was gone, and the Latin-1
byte became U+FFFD. A file larger than the bound is refused, never rewritten from its start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from pathlib import Path

import pytest

from fleetbr.facts.model import CONTENT_MAX_BYTES, HostFacts
from fleetbr.plan import BridgePlan, plan_host, step_command
from tests.bytesamples import FILLER, ODD, VZ1
from tests.unit.test_backends_plan import facts, persist
from tests.unit.test_plan_support import task

FILES = {
    "ifupdown": "/etc/network/interfaces",
    "networkd": "/etc/systemd/network/10-eth0.network",
}


def with_content(f: HostFacts, path: str, data: bytes) -> HostFacts:
    """``f`` with ``path`` holding ``data``, as the facts parser decodes it."""
    text = data.decode("utf-8", "surrogateescape")
    contents = {**f.daemons.contents, path: text}
    return dataclasses.replace(f, daemons=dataclasses.replace(f.daemons, contents=contents))


def written(p: BridgePlan, path: str, tmp_path: Path) -> bytes:
    """Run the plan's file_write step of ``path`` against a temporary file; its bytes."""
    (step,) = [s for s in p.steps if s.kind == "file_write" and s.args["path"] == path]
    target = tmp_path / "out"
    command = step_command(dataclasses.replace(step, args={**step.args, "path": str(target)}))
    subprocess.run(["sh", "-c", command], check=True, timeout=30)
    return target.read_bytes()


def source(backend: str, f: HostFacts) -> bytes:
    """The NIC's file with odd bytes and 82 KB of padding in what the backend keeps."""
    text = f.daemons.contents[FILES[backend]].encode()
    if backend == "ifupdown":  # every line outside the NIC's stanzas is kept
        return ODD + FILLER + text + VZ1
    head, sep, tail = text.partition(b"Name=eth0\n")  # [Match] is kept verbatim
    return head + sep + ODD + FILLER + tail


@pytest.mark.parametrize("backend", list(FILES))
def test_a_rewritten_file_keeps_every_byte_it_does_not_change(backend: str, tmp_path: Path) -> None:
    data = source(backend, facts(backend))
    assert len(data) > 80_000
    path = FILES[backend]
    p = plan_host(task(persist("auto")), with_content(facts(backend), path, data), min_timeout=10)
    assert p.refusal is None, p.refusal
    out = written(p, path, tmp_path)
    assert ODD + FILLER in out
    if backend == "ifupdown":
        assert out.startswith(ODD + FILLER) and VZ1.strip() in out
    assert p.expected.config_files[path] == hashlib.sha256(out).hexdigest()


def test_a_file_beyond_the_bound_is_refused() -> None:
    f = facts("ifupdown")
    path = FILES["ifupdown"]
    daemons = dataclasses.replace(f.daemons, oversized=(path,))
    p = plan_host(task(persist("auto")), dataclasses.replace(f, daemons=daemons), min_timeout=10)
    assert p.refusal is not None
    assert f"{path} is larger than {CONTENT_MAX_BYTES // 1024} KiB" in p.refusal
    assert not p.steps
