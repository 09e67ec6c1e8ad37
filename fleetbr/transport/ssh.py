"""asyncssh-based connections. The only module that knows asyncssh's exceptions.

Scripts run as ``sh -s`` with the script on stdin (``sudo -n sh -s`` for non-root users), so no
value is ever spliced into a command line here. Connection set-up is retried with backoff
(refused, timeout, sshd dropping us under MaxStartups); a command is never retried, since it may
have changed the host.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import asyncssh
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from fleetbr.errors import (
    AuthFailed,
    CommandTimeout,
    ConnectFailed,
    HostKeyRejected,
    RemoteCommandFailed,
    SessionLost,
    TransportError,
)
from fleetbr.inventory import HostSpec, SSHOptions, jump_target
from fleetbr.keyfiles import unlocked
from fleetbr.secrets import Secret
from fleetbr.transport.base import Captured, CommandOutput, CommandResult, OutputSink

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


READ_CHUNK = 64 * 1024


def whole(script: str) -> str:
    """``script`` as one compound command. ``sh -s`` reads its script from the channel as it
    runs it: a script bigger than what is in flight (a stage with every staged file) was still
    arriving when a session was cut (the controller giving up on a slow stage), so the shell
    ran its first part, met the end of its input, and could run a cut last line. Between
    braces it parses the whole script before running any of it: cut, it runs none."""
    return "{\n" + script + "\n}\n"


class Connection:
    """An open, host-key-verified SSH connection to one inventory host (a
    :class:`~fleetbr.transport.base.Session`)."""

    def __init__(self, spec: HostSpec, conn: asyncssh.SSHClientConnection) -> None:
        self.spec = spec
        self._conn = conn
        self._shell = "sudo -n sh -s" if spec.ssh.sudo else "sh -s"

    async def run_script(
        self, script: str, *, label: str, timeout: float | None = None, check: bool = True
    ) -> CommandResult:
        """Run ``script`` with POSIX sh on the host; raise on failure when ``check``."""
        limit = timeout if timeout is not None else self.spec.ssh.command_timeout
        process: asyncssh.SSHClientProcess[bytes] | None = None
        try:
            async with asyncio.timeout(limit):
                process = await self._conn.create_process(self._shell, encoding=None)
                await _send_input(process, whole(script).encode())
                out, err = await asyncio.gather(process.stdout.read(), process.stderr.read())
                done = await process.wait(check=False)
        except TimeoutError:
            error: TransportError = CommandTimeout(f"{label} did not finish within {limit:g}s")
            raise _closed(process, error) from None
        except (asyncssh.Error, OSError) as exc:
            error = SessionLost(f"connection lost during {label}: {_describe(exc)}")
            raise _closed(process, error) from None
        result = CommandResult(stdout=_text(out), stderr=_text(err), exit_status=done.exit_status)
        if done.exit_signal:
            raise SessionLost(f"{label} killed by signal {done.exit_signal[0]}")
        if done.exit_status is None:  # the channel closed with no exit status: the session died
            raise SessionLost(f"session ended during {label} without an exit status")
        if check and result.exit_status != 0:
            raise RemoteCommandFailed(label, result.exit_status, result.stderr)
        return result

    async def run_command(
        self,
        command: str,
        *,
        stdin: bytes,
        timeout: float,
        limit: int,
        on_output: OutputSink | None = None,
    ) -> CommandOutput:
        """Run ``command`` (an exec request, as given) with ``stdin``; keep ``limit`` bytes per
        stream, pass every chunk to ``on_output`` as it arrives.

        Never raises once the command started: a timeout or a lost session is returned in
        :attr:`CommandOutput.error` with the output received so far. Output beyond ``limit`` is
        still read (and counted), so the remote side is never blocked by a full window.
        """
        stdout, stderr = Captured(limit), Captured(limit)
        process: asyncssh.SSHClientProcess[bytes] | None = None
        try:
            async with asyncio.timeout(timeout):
                process = await self._conn.create_process(command, encoding=None)
                await _send_input(process, stdin)
                await asyncio.gather(
                    _drain(process.stdout, "stdout", stdout, on_output),
                    _drain(process.stderr, "stderr", stderr, on_output),
                )
                done = await process.wait(check=False)
        except TimeoutError:
            error: TransportError = CommandTimeout(f"no end of the command within {timeout:g}s")
            return CommandOutput(stdout, stderr, None, None, _closed(process, error))
        except (asyncssh.Error, OSError) as exc:
            error = SessionLost(f"connection lost while the command ran: {_describe(exc)}")
            return CommandOutput(stdout, stderr, None, None, _closed(process, error))
        if done.exit_signal:  # asyncssh then reports exit_status -1
            return CommandOutput(stdout, stderr, None, done.exit_signal[0])
        lost = None
        if done.exit_status is None:  # the channel closed with no exit status: the session died
            lost = SessionLost("the session ended without an exit status")
        return CommandOutput(stdout, stderr, done.exit_status, None, lost)

    async def close(self) -> None:
        """Close the connection and wait for it to be gone."""
        self._conn.close()
        with suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(self._conn.wait_closed(), timeout=5)


async def _send_input(process: asyncssh.SSHClientProcess[bytes], data: bytes | None) -> None:
    """Send ``data`` and end the command's input. A command that already ended (``sudo``
    refusing at once, under load) closed the channel before its input was sent: that is no
    lost session, its output and exit status are still read (asyncssh's own ``input=`` of
    ``run`` or ``create_process`` would raise BrokenPipeError and lose them: a host refused by
    sudo was reported unreachable). Awaited, so a test can send it late."""
    with suppress(BrokenPipeError, ConnectionResetError):
        if data:
            process.stdin.write(data)
        process.stdin.write_eof()


class SSHTransport:
    """The :class:`~fleetbr.transport.base.Transport` over asyncssh: :func:`connect`."""

    async def connect(
        self, spec: HostSpec, *, attempts: int = 4, give_up_after: float | None = None
    ) -> Connection:
        """A verified SSH connection to ``spec`` (see :func:`connect`)."""
        return await connect(spec, attempts=attempts, give_up_after=give_up_after)


async def connect(
    spec: HostSpec, *, attempts: int = 4, give_up_after: float | None = None
) -> Connection:
    """Open a verified connection, retrying set-up failures with exponential backoff.

    ``give_up_after`` (seconds) bounds the whole retry loop; used by confirm, which must finish
    before the host's dead-man deadline.
    """
    stop: Any = stop_after_attempt(attempts)
    if give_up_after is not None:
        stop = stop | stop_before_delay(give_up_after)
    retrying = AsyncRetrying(
        stop=stop,
        wait=wait_exponential_jitter(multiplier=0.3, max=4.0, jitter=0.5),
        retry=retry_if_exception(lambda exc: isinstance(exc, TransportError) and exc.retryable),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await _connect_once(spec)
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


@asynccontextmanager
async def open_connection(spec: HostSpec, **kwargs: Any) -> AsyncIterator[Connection]:
    """``async with open_connection(spec) as conn:`` - connect, and always close."""
    conn = await connect(spec, **kwargs)
    try:
        yield conn
    finally:
        await conn.close()


async def _connect_once(spec: HostSpec) -> Connection:
    ssh = spec.ssh
    tunnel = None
    if ssh.jump_host:
        jump_host, jump_user, jump_port = jump_target(ssh.jump_host)
        async with _failures(ssh, f"jump host {jump_host}:{jump_port}", jump_user):
            tunnel = await _open(ssh, jump_host, jump_port, jump_user)
    try:
        async with _failures(ssh, f"{spec.hostname}:{spec.port}", spec.username):
            conn = await _open(
                ssh, spec.hostname, spec.port, spec.username, password=spec.password, tunnel=tunnel
            )
    except BaseException:
        if tunnel is not None:
            tunnel.close()
        raise
    return Connection(spec, conn)


@asynccontextmanager
async def _failures(ssh: SSHOptions, where: str, username: str | None) -> AsyncIterator[None]:
    """Turn asyncssh's exceptions while connecting to ``where`` into fleetbr's, naming it."""
    started = time.monotonic()
    try:
        yield
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyRejected(
            f"host key of {where} is not trusted ({exc.reason}): it is unknown "
            f"to or differs from {ssh.known_hosts or DEFAULT_KNOWN_HOSTS}; check the key out of "
            "band and add it there (fleetbr never accepts keys on its own)"
        ) from None
    except asyncssh.PermissionDenied as exc:
        on = f" on {where}" if where.startswith("jump host") else ""
        raise AuthFailed(
            f"authentication refused for {username or 'default user'}{on}: {exc.reason}"
        ) from None
    except TimeoutError:
        waited = time.monotonic() - started
        raise ConnectFailed(f"connect to {where} timed out after {waited:.1f}s") from None
    except (asyncssh.Error, OSError) as exc:
        raise ConnectFailed(f"connect to {where} failed: {_describe(exc)}") from None


async def _open(
    ssh: SSHOptions,
    host: str,
    port: int,
    username: str | None,
    *,
    password: Secret | None = None,
    tunnel: asyncssh.SSHClientConnection | None = None,
) -> asyncssh.SSHClientConnection:
    options: dict[str, Any] = {
        "port": port,
        # Always an explicit, parsed file: given nothing, asyncssh takes UserKnownHostsFile from
        # ~/.ssh/config, and "none" there would switch host key checking off without a word.
        "known_hosts": known_hosts(ssh.known_hosts or str(Path(DEFAULT_KNOWN_HOSTS).expanduser())),
        "connect_timeout": ssh.connect_timeout,
        "login_timeout": ssh.connect_timeout * 2,
        "keepalive_interval": ssh.keepalive_interval,
        "keepalive_count_max": ssh.keepalive_count_max,
        # Always explicit: given nothing, asyncssh takes ForwardAgent from ~/.ssh/config, and a
        # hostile host could then use the operator's agent to log into every other host.
        "agent_forwarding": ssh.agent_forwarding,
    }
    if username:
        options["username"] = username
    if password:
        options["password"] = password.reveal()
    if ssh.client_keys:
        # Encrypted keys were decrypted once for the run (keyfiles.unlock_keys); one the agent
        # holds is skipped here, and asyncssh then offers the agent's keys (SSH_AUTH_SOCK).
        options["client_keys"] = [unlocked(path) for path in ssh.client_keys]
        options["ignore_encrypted"] = True
        if ssh.passphrase is not None:
            options["passphrase"] = ssh.passphrase.reveal()
    # Never the ssh config's ProxyJump: asyncssh would open that jump with the config's own
    # known_hosts (`UserKnownHostsFile none` included). The inventory's jump_host is opened by
    # _connect_once like any host, against fleetbr's known_hosts.
    options["tunnel"] = tunnel
    return await asyncssh.connect(host, **options)


_KNOWN_HOSTS: dict[str, tuple[str, asyncssh.SSHKnownHosts]] = {}


def known_hosts(path: str) -> asyncssh.SSHKnownHosts:
    """The parsed known_hosts file at ``path``, re-parsed only when its content changed.

    Given a path, asyncssh parses the whole file for every connection: O(fleet) per host, so
    O(fleet^2) per run. Keying on the content (not the mtime) means an edit is always seen.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise HostKeyRejected(
            f"known_hosts file {path} cannot be read ({exc.strerror}): no host key can be checked"
        ) from None
    cached = _KNOWN_HOSTS.get(path)
    if cached is None or cached[0] != text:
        try:
            cached = (text, asyncssh.import_known_hosts(text))
        except ValueError:
            # asyncssh's message quotes the line: never echo a file's content (it may be any file)
            raise HostKeyRejected(
                f"known_hosts file {path} cannot be parsed (line {_bad_line(text)} is not a "
                "known_hosts entry): no host key can be checked"
            ) from None
        _KNOWN_HOSTS[path] = cached
    return cached[1]


def _bad_line(text: str) -> int | str:
    """The number of the first line asyncssh refuses (split as asyncssh splits the file)."""
    for number, line in enumerate(text.splitlines(), 1):
        try:
            asyncssh.import_known_hosts(line)
        except ValueError:
            return number
    return "?"


async def _drain(
    reader: asyncssh.SSHReader[bytes], name: str, into: Captured, sink: OutputSink | None
) -> None:
    while chunk := await reader.read(READ_CHUNK):
        into.add(chunk)
        if sink is not None:
            sink(name, chunk)


def _closed(
    process: asyncssh.SSHClientProcess[bytes] | None, error: TransportError
) -> TransportError:
    if process is not None:
        process.close()
    return error


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
