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

from dataclasses import dataclass

from fleetbr.facts.model import HostFacts
from fleetbr.plan import Plan, diff_facts
from fleetbr.plan.command import CHECK_FILE, COMMAND_FILE, UNDO_FILE, plan_command
from fleetbr.transaction.change import RollbackCheck
from fleetbr.transaction.scripts import check_script, markers, new_nonce
from fleetbr.transport import Connection


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
        self, conn: Connection, txid: str, plan: Plan, after: HostFacts
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
        """Reachable (we are connected): only report how the host differs from its snapshot."""
        return RollbackCheck(notes=diff_facts(before, after))


def _script(line: str) -> str:
    return "#!/bin/sh\n# staged by fleetbr run --deadman\n" + line.rstrip("\n") + "\n"
