"""Where the run history lives: a file path (SQLite, the default) or a ``postgresql://`` URL
(PostgreSQL), and opening the store behind either.

A URL may carry a password (``postgresql://user:secret@host/db`` or ``?password=secret``). It is
kept only inside :class:`DatabaseUrl`, whose ``str()`` and ``repr()`` mask it: every message,
``--json`` document and history row that names the location shows ``user:***@host``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fleetbr.errors import UsageError
from fleetbr.history.store import BUSY_TIMEOUT, HistoryError, HistoryStore

SCHEMES = ("postgresql", "postgres")
MASK = "***"
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&]*")
# password=VALUE in a driver's message (a DSN echoed): quoted, or up to a space or "&"
_PASSWORD_WORD = re.compile(r"""(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|"[^"]*"|[^\s&]+)""")
BARE_MIN = 6  # a shorter password is masked where the URL or a password= holds it only
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class DatabaseUrl:
    """A PostgreSQL connection URL; its text (``url``) is secret, ``str()`` is masked."""

    url: str = field(repr=False)

    def __str__(self) -> str:
        return masked(self.url)

    def __repr__(self) -> str:
        return f"DatabaseUrl({masked(self.url)!r})"

    def scrub(self, text: str) -> str:
        """``text`` (a driver's error message) without the URL's password: the URL masked,
        any ``password=...`` masked, and the password itself wherever it stands, unless it is
        shorter than ``BARE_MIN``: so short a string turns up inside words by chance, and
        masking those would both mangle the message and show the password by where the
        masks fall."""
        text = text.replace(self.url, str(self))
        text = _PASSWORD_WORD.sub(rf"\g<1>{MASK}", text)
        for secret in self._secrets():
            text = text.replace(f":{secret}@", f":{MASK}@")
            if len(secret) >= BARE_MIN:
                text = text.replace(secret, MASK)
        return text

    def _secrets(self) -> list[str]:
        """The password of the user part and of the query, as written and decoded, longest
        first."""
        parts = urlsplit(self.url)
        pairs = [pair.partition("=") for pair in parts.query.split("&")]
        found = {parts.password or ""} | {v for k, _, v in pairs if k.lower() == "password"}
        found |= {unquote(secret) for secret in found}
        return sorted((secret for secret in found if secret), key=len, reverse=True)


HistoryLocation = Path | DatabaseUrl


def masked(url: str) -> str:
    """``url`` with its password (in the user part or the query) replaced by ``***``."""
    parts = urlsplit(url)
    shown = url
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        shown = shown.replace(parts.netloc, f"{user.partition(':')[0]}:{MASK}@{host}", 1)
    head, mark, query = shown.partition("?")
    return head + mark + _PASSWORD_PARAM.sub(rf"\g<1>{MASK}", query)


def parse_location(text: str) -> HistoryLocation:
    """``--history``/``$FLEETBR_HISTORY``: a ``postgresql://`` (or ``postgres://``) URL, else a
    path. UsageError (masked) for another URL scheme."""
    found = _SCHEME.match(text.strip())
    if found is None:
        return Path(text)
    if found[1].lower() not in SCHEMES:
        raise UsageError(
            f"--history {masked(text.strip())!r}: not a PostgreSQL URL; give a file path "
            "(SQLite) or postgresql://USER@HOST/DB (docs/history.md)"
        )
    return DatabaseUrl(text.strip())


def open_store(
    location: HistoryLocation, *, create: bool = True, timeout: float = BUSY_TIMEOUT
) -> HistoryStore:
    """The store at ``location``, migrated to this fleetbr's schema. ``create=False``:
    :class:`~fleetbr.history.store.NoHistoryYet` when nothing was ever recorded there."""
    # each backend imported only when used: psycopg is an optional extra
    if isinstance(location, DatabaseUrl):
        try:
            from fleetbr.history.postgres import PostgresStore  # noqa: PLC0415
        except ImportError as exc:
            raise HistoryError(
                f"{location}: a PostgreSQL history needs psycopg ({exc}); install "
                "'fleetbr[postgresql]'"
            ) from None
        return PostgresStore(location, create=create, timeout=timeout)
    from fleetbr.history.sqlite import SqliteStore  # noqa: PLC0415

    return SqliteStore(location, create=create, timeout=timeout)


def check_reachable(location: HistoryLocation | None) -> None:
    """Before a run contacts any host: a database history that cannot be opened (unreachable,
    refused, a newer schema) is a UsageError (exit 2). A file history is left to the recorder,
    which warns and lets the run go on, as it always has."""
    if not isinstance(location, DatabaseUrl):
        return
    try:
        open_store(location).close()
    except HistoryError as exc:
        raise UsageError(f"run history: {exc}") from None
