"""What the operator's staged scripts left on the host (``run --deadman``: the command's and the
undo's exit status and the end of their stderr), read by ``tx_command_result.sh.j2``. Kind-neutral:
a transaction that staged no such script (a bridge change's) reads as nothing, so the transaction,
``fleetbr rollback`` and ``--resume`` read it the same way for every kind."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fleetbr.facts.model import STATE_DIR
from fleetbr.render import render
from fleetbr.transaction.scripts import check_txid, markers, new_nonce
from fleetbr.transaction.verdict import ScriptOutcome
from fleetbr.transport import Session

# The staged scripts whose outcome is reported, by the name they are staged under.
COMMAND_FILE, UNDO_FILE = "command.sh", "undo.sh"
TAIL_BYTES = 2048  # bytes of the end of each staged script's stderr carried in the result
MESSAGE_TAIL = 200  # characters of it, on one line, in the message
REPORTED = (("command", COMMAND_FILE), ("undo", UNDO_FILE))


async def read_outcome(conn: Session, txid: str) -> ScriptOutcome:
    """What the staged command and undo of transaction ``txid`` left (nothing for a transaction
    that staged none: a bridge change's)."""
    nonce = new_nonce()
    script = render("tx_command_result.sh.j2", state_dir=STATE_DIR, txid=check_txid(txid),
                    files=[name for _, name in REPORTED], tail_bytes=TAIL_BYTES,
                    nonce=nonce)  # fmt: skip
    done = await conn.run_script(script, label="results")
    return script_outcome(markers(done.stdout, nonce))


def script_outcome(found: dict[str, str]) -> ScriptOutcome:
    """The :class:`ScriptOutcome` of ``tx_command_result.sh.j2``'s markers."""
    data: dict[str, Any] = {}
    said = []
    for index, (what, _) in enumerate(REPORTED):
        status = found.get(f"{index}_rc", "")
        if not status.isdigit():
            continue  # it never ran (the undo of a confirmed command)
        tail = _decoded(found.get(f"{index}_err_tail", ""))
        size = int(found.get(f"{index}_err_bytes", "") or 0)
        data[what] = {"exit_status": int(status), "stderr_tail": tail, "stderr_bytes": size,
                      "stderr_truncated": size > TAIL_BYTES}  # fmt: skip
        line = " ".join(tail.split())
        if len(line) > MESSAGE_TAIL:
            line = "..." + line[-MESSAGE_TAIL:]
        said.append(f"the {what} exited {status}" + (f": {line}" if line else ""))
    return ScriptOutcome(data, "; ".join(said))


def _decoded(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
