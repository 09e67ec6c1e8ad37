"""Which keys the operator's ssh-agent (``SSH_AUTH_SOCK``) holds, asked synchronously.

Only the up-front key checks use this (an encrypted key the agent holds needs no passphrase);
asyncssh itself talks to the agent when a host is contacted.
"""

from __future__ import annotations

import os
import socket
import struct

_REQUEST_IDENTITIES, _IDENTITIES_ANSWER = 11, 12
_TIMEOUT = 5.0
_MAX_ANSWER = 1 << 20


def agent_holds(public_key_path: str) -> bool:
    """Whether the agent at ``SSH_AUTH_SOCK`` holds the key of ``public_key_path`` (an OpenSSH
    ``.pub`` line); False when there is no agent, no such file, or either cannot be read."""
    sock_path = os.environ.get("SSH_AUTH_SOCK")
    blob = _public_blob(public_key_path)
    if not sock_path or blob is None:
        return False
    try:
        return blob in agent_key_blobs(sock_path)
    except (OSError, ValueError, struct.error):
        return False


def agent_key_blobs(sock_path: str) -> set[bytes]:
    """The public key blobs the agent at ``sock_path`` offers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_TIMEOUT)
        sock.connect(sock_path)
        sock.sendall(struct.pack(">IB", 1, _REQUEST_IDENTITIES))
        (length,) = struct.unpack(">I", _read(sock, 4))
        if not 0 < length <= _MAX_ANSWER:
            raise ValueError("bad agent answer length")
        answer = _read(sock, length)
    if answer[0] != _IDENTITIES_ANSWER:
        raise ValueError("unexpected agent answer")
    (count,) = struct.unpack(">I", answer[1:5])
    blobs, offset = set(), 5
    for _ in range(count):
        blob, offset = _string(answer, offset)
        _, offset = _string(answer, offset)  # the comment
        blobs.add(blob)
    return blobs


def _public_blob(path: str) -> bytes | None:
    import base64  # noqa: PLC0415
    import binascii  # noqa: PLC0415

    try:
        with open(path, encoding="utf-8") as file:
            words = file.read(64 * 1024).split()
        return base64.b64decode(words[1], validate=True)
    except (OSError, IndexError, UnicodeDecodeError, binascii.Error):
        return None


def _string(data: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack(">I", data[offset : offset + 4])
    end = offset + 4 + length
    if end > len(data):
        raise ValueError("truncated agent answer")
    return data[offset + 4 : end], end


def _read(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ValueError("agent closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
