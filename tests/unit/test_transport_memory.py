"""The transport seam: the current transport, and the in-memory transport's own contract."""

from __future__ import annotations

import pytest

from fleetbr.adhoc.job import run_job
from fleetbr.adhoc.spec import RunOptions, RunSpec
from fleetbr.errors import ConnectFailed, RemoteCommandFailed, SessionLost
from fleetbr.facts.gather import facts_job
from fleetbr.report import Status
from fleetbr.transport import current_transport, open_session, use_transport
from fleetbr.transport.memory import MemoryTransport, Reply, ScriptedHost, marks
from fleetbr.transport.ssh import SSHTransport
from tests.unit.fakehost import PLAIN_FACTS, spec


def test_the_current_transport_is_ssh_unless_one_is_installed() -> None:
    assert isinstance(current_transport(), SSHTransport)
    outer, inner = ScriptedHost(), ScriptedHost()
    with use_transport(outer):
        assert current_transport() is outer
        with use_transport(inner):
            assert current_transport() is inner
        assert current_transport() is outer
    assert isinstance(current_transport(), SSHTransport)


async def test_a_job_given_no_transport_uses_the_current_one() -> None:
    host = ScriptedHost().on("facts", PLAIN_FACTS)
    with use_transport(MemoryTransport({"hv01": host})):
        result = await facts_job(spec())
    assert result.status is Status.OK and result.data["facts"]["hostname"] == "plain"
    assert host.labels() == ["facts"] and host.opened[0].closed


async def test_the_memory_transport_routes_by_name_and_refuses_unknown_hosts() -> None:
    one, two = ScriptedHost().on("x", "1"), ScriptedHost().on("x", "2")
    transport = MemoryTransport({"a": one, "b": two})
    async with open_session(spec(name="b"), transport=transport) as conn:
        assert (await conn.run_script("echo", label="x")).stdout == "2"
    assert one.connects == [] and len(two.connects) == 1
    with pytest.raises(ConnectFailed, match="no such host"):
        await transport.connect(spec(name="c"))


async def test_markers_carry_the_nonce_of_the_script_answered() -> None:
    nonce = "ab" * 16
    host = ScriptedHost().on("state", marks({"decision": "none"}) + "plain line\n")
    conn = await host.connect(spec())
    out = await conn.run_script(f"echo '@@{nonce} decision none'", label="state")
    assert out.stdout == f"@@{nonce} decision none\nplain line\n"


async def test_run_script_honours_check_and_raises_a_replys_error() -> None:
    host = ScriptedHost().on("a", Reply(exit_status=3, stderr="no"), Reply(exit_status=3))
    host.on("b", Reply(error=SessionLost("gone")))
    conn = await host.connect(spec())
    with pytest.raises(RemoteCommandFailed):
        await conn.run_script("", label="a")
    assert (await conn.run_script("", label="a", check=False)).exit_status == 3
    with pytest.raises(SessionLost):
        await conn.run_script("", label="b")
    await conn.close()
    with pytest.raises(AssertionError, match="closed connection"):
        await conn.run_script("", label="a")


async def test_run_command_streams_caps_and_returns_errors() -> None:
    host = ScriptedHost().on("command", Reply("0123456789", stderr="err", exit_status=4))
    host.on("command", Reply(error=SessionLost("cut")))
    conn = await host.connect(spec())
    seen: list[tuple[str, bytes]] = []
    out = await conn.run_command(
        "true", stdin=b"", timeout=5, limit=4, on_output=lambda *part: seen.append(part)
    )
    assert (bytes(out.stdout.data), out.stdout.truncated, out.exit_status) == (b"0123", True, 4)
    assert seen == [("stdout", b"0123456789"), ("stderr", b"err")]
    lost = await conn.run_command("true", stdin=b"", timeout=5, limit=4)
    assert isinstance(lost.error, SessionLost) and lost.exit_status is None


async def test_an_adhoc_job_runs_over_the_transport_it_is_given() -> None:
    host = ScriptedHost().on("command", Reply("hello\n"))
    run = RunSpec.from_argv(["echo", "hello"], RunOptions())
    result = await run_job(spec(), run, transport=host)
    assert result.status is Status.OK, result.message
    assert host.calls[0].script == run.exec_line(spec())  # the wrapper's exec line, as given
