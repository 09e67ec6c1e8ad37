"""The files of the ``--diff`` view: every file a plan writes or removes, old content from
the facts, new content from the plan's own step.

The facts hold the text of the networkd, netplan and ifupdown files, of fleetbr's own
sysctl/udev/modules files (up to 64 KiB) and of its bridge records; of NetworkManager's
profiles (they may hold secrets) and of a larger file they hold only the sha256: such an old
side is "not known" (shown as such, never as empty). Both sides
are redacted like ``--json facts`` (:mod:`fleetbr.facts.redact`): a secret-looking value of a
network file never reaches the view.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator

from fleetbr.diffview.model import FileDiff
from fleetbr.facts.model import HostFacts
from fleetbr.facts.redact import redacted_contents
from fleetbr.plan.model import Step


def file_diffs(steps: Iterable[Step], facts: HostFacts) -> tuple[FileDiff, ...]:
    """A :class:`FileDiff` per file the steps write or remove, in step order."""
    return tuple(_diffs(steps, facts))


def _diffs(steps: Iterable[Step], facts: HostFacts) -> Iterator[FileDiff]:
    for step in steps:
        if step.kind not in ("file_write", "file_remove"):
            continue
        path = str(step.args["path"])
        after = _written(step) if step.kind == "file_write" else None
        existed = step.kind == "file_remove" or bool(
            step.inverse is not None and step.inverse.args.get("existed")
        )
        before = old_content(path, facts) if existed else None
        if existed and before is None:
            digest = facts.daemons.file_digest(path) or facts.managed_files.get(path)
            note = "the facts hold only its digest" + (f" (sha256 {digest})" if digest else "")
            yield FileDiff(path, None, _redacted(path, after), known=False, note=note)
            continue
        yield FileDiff(path, _redacted(path, before), _redacted(path, after))


def old_content(path: str, facts: HostFacts) -> str | None:
    """The text the facts hold of ``path`` (None: they do not hold it)."""
    for held in (facts.daemons.contents, facts.managed_contents, facts.pins):
        if path in held:
            return held[path]
    return None


def _written(step: Step) -> str:
    """The content a file_write step writes (bytes that are not UTF-8 as surrogates)."""
    encoded = step.args.get("content_b64")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            pass
    return str(step.args.get("content", ""))


def _redacted(path: str, text: str | None) -> str | None:
    if text is None:
        return None
    shown = redacted_contents({path: text})[path]
    # the redaction joins lines without the last newline: give it back, as the file has it
    return shown + "\n" if text.endswith("\n") and not shown.endswith("\n") else shown
