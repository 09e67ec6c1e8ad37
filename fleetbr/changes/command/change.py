"""``fleetbr run --deadman``: an operator's command under the dead-man timer, as a :class:`Change`.

The command, its undo and the optional confirm check are staged as files (``command.sh``,
``undo.sh``, ``check.sh``), checksummed like fleetbr's own scripts, and run with ``/bin/sh``:
their text is never interpreted as part of fleetbr's own scripts. What is verified: the host is
reachable over a fresh connection, the gateways that answered before still answer, and the
confirm check (if any) exits 0. After a rollback: the undo ran to completion and the host is
reachable; differences from the snapshot are reported, not judged (the undo is the operator's
promise; fleetbr cannot know what an arbitrary command changes: its plan touches nothing, so
:func:`fleetbr.transaction.verdict.compare` only notes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetbr.changes.command.plan import CHECK_FILE, plan_command
from fleetbr.facts.model import HostFacts
from fleetbr.plan import Plan, touched_by
from fleetbr.transaction.outcome import COMMAND_FILE, UNDO_FILE, read_outcome
from fleetbr.transaction.scripts import check_script, markers, new_nonce
from fleetbr.transaction.verdict import RollbackCheck, ScriptOutcome, compare
from fleetbr.transport import Session


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

    def view(self, host: str, facts: HostFacts, plan: Plan) -> dict[str, Any] | None:
        """None: a command's effect is not known before it runs."""
        return None

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

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """Reachable (we are connected): only report how the host differs from its snapshot (the
        plan touches nothing fleetbr could name: every difference is a note)."""
        return compare(before, after, touched_by(plan))

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """The exit status and the end of the stderr of the command, and of the undo if it ran."""
        return await read_outcome(conn, txid)


def _script(line: str) -> str:
    return "#!/bin/sh\n# staged by fleetbr run --deadman\n" + line.rstrip("\n") + "\n"
