"""Render the transaction's remote scripts (templates ``tx_*.sh.j2``) for one plan."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fleetbr.backends import registry
from fleetbr.errors import ValidationError
from fleetbr.facts.model import STATE_DIR
from fleetbr.facts.script import facts_script
from fleetbr.plan import Plan, Step, step_command, touched_by, touched_lines
from fleetbr.render import render
from fleetbr.transaction.hoststate import ExitCode
from fleetbr.validate import split_lines

_TXID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$")
# Where libvirtd (qemu:///system) keeps the domains' persistent definitions, one XML file each.
LIBVIRT_QEMU_DIR = "/etc/libvirt/qemu"
_STAGED_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}\.sh$")
_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")


def new_txid() -> str:
    """A sortable, unique transaction id like ``20261127T181500-3fa9c2``."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def new_nonce() -> str:
    """A random token for the markers of one script run (``@@NONCE name value``).

    Nothing on the host learns it before the script prints its markers, so no output of an
    operator's command, no file and no name on the host can forge one.
    """
    return secrets.token_hex(16)


def _nonce(nonce: str) -> str:
    if not _NONCE_RE.match(nonce):
        raise ValidationError("marker nonce is malformed")
    return nonce


def check_txid(txid: str) -> str:
    """Return ``txid`` if it has the shape :func:`new_txid` makes (it reaches shell and paths)."""
    if not _TXID_RE.match(txid):
        raise ValidationError(f"transaction id {txid!r} is malformed")
    return txid


@dataclass(frozen=True)
class StagedScripts:
    """The scripts written to the host's transaction folder, with their sha256."""

    files: dict[str, str]  # name -> text

    def checksums(self) -> dict[str, str]:
        """name -> sha256 hex, as ``sha256sum`` prints it on the host."""
        return {
            name: hashlib.sha256(text.encode()).hexdigest() for name, text in self.files.items()
        }


def _commands(steps: Sequence[Step]) -> list[dict[str, object]]:
    return [
        {"description": s.description, "command": step_command(s), "again": s.kind in AGAIN_KINDS}
        for s in steps
    ]


# Rollback steps run a second time when they fail (tx_rollback.sh.j2: once every other step,
# a daemon's hand-back included, has run): the kernel state a daemon can change under them
# while it takes its old configuration back. Each states a target, so running it again is
# safe. Not the others: a file restore's failure may be a kept edit it could not save (run
# again, the file would already match and hide it), an operator's undo need not be idempotent,
# a daemon's hand-back waits for it already.
AGAIN_KINDS = frozenset({
    "bridge_add", "bridge_set", "bridge_del", "link_master", "link_nomaster", "link_up",
    "link_down", "addr_add", "addr_del", "route_add", "route_del", "sysctl_set", "bond_add",
    "bond_del", "bond_enslave", "bond_release", "vlan_add", "vlan_del", "bridge_vlan_set",
    "bridge_vlan_add", "bridge_vlan_del",
})  # fmt: skip


# Rollback steps the boot guard runs after a reboot inside the window: what outlives a reboot.
# The files a transaction wrote go back; an operator's undo (``run --deadman``) runs, once: what
# its command changed is unknown, so it may be on disk. The runtime steps' work (bridge, links,
# addresses, routes, sysctls, the daemons' runtime view) is gone with the reboot.
BOOT_STEP_KINDS = frozenset({"file_restore", "run_staged"})


def boot_steps(plan: Plan) -> list[Step]:
    """The rollback steps of ``plan`` that ``boot.sh`` runs, in rollback order."""
    return [s for s in plan.rollback if s.kind in BOOT_STEP_KINDS]


def boot_backends(plan: Plan) -> list[str]:
    """The backends of ``plan`` whose shell has lines for the boot guard (Backend.boot_shell:
    netplan renders /etc/netplan into /run again), each once."""
    used = (str(s.args["backend"]) for s in plan.steps if s.args.get("backend"))
    return [n for n in dict.fromkeys(used) if (b := registry.find(n)) and b.boot_shell]


def persistent_domains(plan: Plan) -> list[str]:
    """UUIDs of the libvirt domains whose persistent definition ``plan`` changes: the stage backs
    up their XML files, the boot guard puts them back before libvirtd reads them."""
    found = (
        str(s.args["domain"])
        for s in plan.steps
        if s.kind == "guest_update" and s.args.get("scope") == "config"
    )
    return sorted(dict.fromkeys(found))


def staged_scripts(txid: str, plan: Plan, extra: dict[str, str] | None = None) -> StagedScripts:
    """apply.sh, rollback.sh, timer.sh (its deadline is an argument), facts.sh for ``plan``, and
    ``extra`` files a change needs (e.g. an operator's command and its undo)."""
    base = {"state_dir": STATE_DIR, "txid": check_txid(txid)}
    files = {
        "apply.sh": render("tx_apply.sh.j2", steps=_commands(plan.steps), **base),
        "rollback.sh": render("tx_rollback.sh.j2", steps=_commands(plan.rollback), **base),
        "timer.sh": render("tx_timer.sh.j2", **base),
        # the snapshot it takes names what the transaction may change (fleetbr.plan.scope)
        "facts.sh": facts_script(touched=touched_lines(touched_by(plan))),
        "boot.sh": render(
            "tx_boot.sh.j2",
            steps=_commands(boot_steps(plan)),
            domains=persistent_domains(plan),
            files=[s.args for s in plan.rollback if s.kind == "file_restore"],
            boot_backends=boot_backends(plan),
            **base,
        ),
    }
    for name in extra or {}:
        if not _STAGED_NAME_RE.match(name) or name in files:
            raise ValidationError(f"staged file name {name!r} is not allowed")
    return StagedScripts({**files, **(extra or {})})


def stage_script(txid: str, plan: Plan, staged: StagedScripts, task: str, *, nonce: str) -> str:
    """The script that writes the scripts, snapshot and backups, and runs pre-change probes."""
    return render(
        "tx_stage.sh.j2",
        state_dir=STATE_DIR,
        txid=check_txid(txid),
        scripts=staged.files,
        files=list(plan.files),
        domains=persistent_domains(plan),
        libvirt_dir=LIBVIRT_QEMU_DIR,
        probes=list(plan.probes),
        task=task,
        guard_unit=render("boot_guard.service.j2", state_dir=STATE_DIR),
        guard_script=render("boot_guard.sh.j2", state_dir=STATE_DIR),
        guard_required=plan.guard_required,
        nonce=_nonce(nonce),
        exits=ExitCode,
    )


def arm_apply_script(txid: str, timeout: int, *, use_systemd: bool, wait: float, nonce: str) -> str:
    """Claim, verify checksums, arm the timer, start the apply detached, wait up to ``wait``
    seconds for it. Exits :class:`ExitCode` CANCELLED when the controller cancelled it first,
    ARMED_ELSEWHERE when another transaction is armed, SCRIPTS_CHANGED when the staged scripts
    changed."""
    return render(
        "tx_arm_apply.sh.j2",
        state_dir=STATE_DIR,
        txid=check_txid(txid),
        timeout=timeout,
        use_systemd=use_systemd,
        wait=wait,
        nonce=_nonce(nonce),
        exits=ExitCode,
    )


def disarm_script(txid: str, *, nonce: str) -> str:
    """Take the decision lock for "confirmed" and stop the timer."""
    return render(
        "tx_disarm.sh.j2", state_dir=STATE_DIR, txid=check_txid(txid), nonce=_nonce(nonce)
    )


def state_script(txid: str, *, nonce: str, cancel: bool = False) -> str:
    """Print the transaction's state on the host; ``cancel`` first takes the arm's claim."""
    return render(
        "tx_state.sh.j2",
        state_dir=STATE_DIR,
        txid=check_txid(txid),
        cancel=cancel,
        nonce=_nonce(nonce),
    )


def check_script(txid: str, *, nonce: str) -> str:
    """Run the staged confirm check; the script exits with the check's exit status."""
    return render("tx_check.sh.j2", state_dir=STATE_DIR, txid=check_txid(txid), nonce=_nonce(nonce))


def clear_marker_script(*, nonce: str) -> str:
    """Remove a damaged armed marker once nothing fleetbr started runs on the host."""
    return render("tx_clear_marker.sh.j2", state_dir=STATE_DIR, nonce=_nonce(nonce))


def trigger_rollback_script(txid: str, reason: str) -> str:
    """Start the staged rollback now, detached."""
    return render(
        "tx_trigger_rollback.sh.j2", state_dir=STATE_DIR, txid=check_txid(txid), reason=reason
    )


def snapshot_script(txid: str) -> str:
    """Print the facts snapshot taken when the transaction was staged."""
    return render("tx_snapshot.sh.j2", state_dir=STATE_DIR, txid=check_txid(txid))


def journal_script(lines: int = 200) -> str:
    """Print the last ``lines`` journal lines."""
    return render("tx_journal.sh.j2", state_dir=STATE_DIR, lines=lines)


def markers(stdout: str, nonce: str) -> dict[str, str]:
    """``@@NONCE name value`` lines of a script's output, as a dict; other lines are content."""
    prefix = f"@@{_nonce(nonce)} "
    found: dict[str, str] = {}
    for line in split_lines(stdout):
        if line.startswith(prefix):
            name, _, value = line[len(prefix) :].partition(" ")
            found[name] = value.strip()
    return found


def sections(stdout: str, nonce: str) -> dict[str, list[str]]:
    """Lines following each ``@@NONCE name`` line, grouped by name."""
    prefix = f"@@{_nonce(nonce)} "
    grouped: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in split_lines(stdout):
        if line.startswith(prefix):
            current = grouped.setdefault(line[len(prefix) :].split(" ", 1)[0], [])
        elif current is not None and line.strip():
            current.append(line.strip())
    return grouped
