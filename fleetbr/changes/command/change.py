"""``fleetbr run --deadman``: an operator's command under the dead-man timer, as a :class:`Change`.

The command, its undo and the optional confirm check are staged as files (``command.sh``,
``undo.sh``, ``check.sh``), checksummed like fleetbr's own scripts, and run with ``/bin/sh``:
their text is never interpreted as part of fleetbr's own scripts. What is verified: the host is
reachable over a fresh connection, the gateways that answered before still answer, and the
confirm check (if any) exits 0. After a rollback: the undo ran to completion and the host is
reachable; differences from the snapshot are reported, not judged (the undo is the operator's
promise; fleetbr cannot know what an arbitrary command changes).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from fleetbr.changes.command.plan import CHECK_FILE, COMMAND_FILE, UNDO_FILE, plan_command
from fleetbr.facts.model import STATE_DIR, HostFacts
from fleetbr.plan import Plan, diff_facts
from fleetbr.render import render
from fleetbr.transaction.change import RollbackCheck, ScriptOutcome
from fleetbr.transaction.scripts import check_script, check_txid, markers, new_nonce
from fleetbr.transport import Session

TAIL_BYTES = 2048  # bytes of the end of each staged script's stderr carried in the result
MESSAGE_TAIL = 200  # characters of it, on one line, in the message
REPORTED = (("command", COMMAND_FILE), ("undo", UNDO_FILE))


@dataclass(frozen=True)
class CommandChange:
    """A shell command line, its undo and an optional host-side confirm check."""

    command: str
    undo: str
    timeout: int
    confirm_check: str | None = None
    label: str = "run"

    def plan(self, facts: HostFacts, min_timeout: int) -> Plan:
        """One step and its inverse; probes are the host's default gateways."""
        return plan_command(facts.hostname, facts, self.command, self.undo,
                            timeout=self.timeout, min_timeout=min_timeout)  # fmt: skip

    def staged_files(self) -> dict[str, str]:
        """The command, the undo and the check, each a small sh script."""
        files = {COMMAND_FILE: _script(self.command), UNDO_FILE: _script(self.undo)}
        if self.confirm_check is not None:
            files[CHECK_FILE] = _script(self.confirm_check)
        return files

    async def confirm_problems(
        self, conn: Session, txid: str, plan: Plan, after: HostFacts
    ) -> list[str]:
        """The confirm check must exit 0 (reachability and probes are checked by the protocol).

        The verdict is the script's exit status (the check's own) together with the nonce'd
        marker that only fleetbr's script prints after the check ended: nothing the check or a
        file it reads prints can pass for either.
        """
        if self.confirm_check is None:
            return []
        nonce = new_nonce()
        done = await conn.run_script(
            check_script(txid, nonce=nonce), label="confirm check", check=False
        )
        out = markers(done.stdout, nonce)
        if done.exit_status == 0 and out.get("check") == "0":
            return []
        status = done.exit_status if "check" in out else "unknown"
        said = out.get("check_output", "").strip()
        return [f"confirm check exited {status}" + (f": {said}" if said else "")]

    def settling(self, plan: Plan, before: HostFacts, after: HostFacts) -> bool:
        """Never waited for: what the command touched is the operator's to know, and the
        rollback check finds no problems to look at again."""
        return False

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """Reachable (we are connected): only report how the host differs from its snapshot."""
        return RollbackCheck(notes=diff_facts(before, after))

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """The exit status and the end of the stderr of the command, and of the undo if it ran."""
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


def _script(line: str) -> str:
    return "#!/bin/sh\n# staged by fleetbr run --deadman\n" + line.rstrip("\n") + "\n"
