"""Bridge netfilter: runtime sysctls, the sysctl.d file and the udev rule that reapplies it."""

from __future__ import annotations

import hashlib
import re

from fleetbr.facts.model import HostFacts
from fleetbr.plan import steps
from fleetbr.plan.model import Step

SYSCTL_FILE = "/etc/sysctl.d/bridge.conf"
UDEV_FILE = "/etc/udev/rules.d/99-bridge.rules"
MODULES_FILE = "/etc/modules-load.d/br_netfilter.conf"
NF_KEYS: tuple[str, ...] = ("call-iptables", "call-ip6tables", "call-arptables")


def sysctl_content(value: int) -> str:
    """The sysctl.d file setting every bridge-nf-call key to ``value``."""
    lines = ["# Managed by fleetbr: bridged traffic and the host firewall."]
    lines += [f"net.bridge.bridge-nf-{key} = {value}" for key in NF_KEYS]
    return "\n".join(lines) + "\n"


def _kernel_before_3_18(kernel: str) -> bool:
    match = re.match(r"^(\d+)\.(\d+)", kernel)
    if not match:
        return False
    return (int(match.group(1)), int(match.group(2))) < (3, 18)


def udev_content(kernel: str) -> str:
    """The udev rule that reapplies the sysctl file when bridge netfilter appears."""
    # Before 3.18 bridge netfilter was part of the bridge module itself.
    module = "bridge" if _kernel_before_3_18(kernel) else "br_netfilter"
    return (
        "# Managed by fleetbr: reapply bridge netfilter sysctls when the module loads.\n"
        f'ACTION=="add", SUBSYSTEM=="module", KERNEL=="{module}", '
        f'RUN+="/sbin/sysctl -p {SYSCTL_FILE}"\n'
    )


def sha256(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8 (what the facts script reports); surrogates stand
    for the bytes that are not UTF-8 (a file's text as the facts decode it)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def desired_files(value: int, kernel: str, has_modules: bool = False) -> dict[str, str]:
    """Managed path -> content for netfilter ``value``. With ``on`` and a modular kernel,
    br_netfilter is also loaded at boot (modules-load.d), so bridged traffic meets the firewall
    from the first packet; with ``off`` a module nobody loads filters nothing, and the udev rule
    sets 0 if something loads it later."""
    files = {SYSCTL_FILE: sysctl_content(value), UDEV_FILE: udev_content(kernel)}
    if value and has_modules and not _kernel_before_3_18(kernel):
        files[MODULES_FILE] = (
            "# Managed by fleetbr: load bridge netfilter at boot (netfilter: on).\nbr_netfilter\n"
        )
    return files


def _keys_missing(facts: HostFacts) -> bool:
    """Some bridge-nf key is missing, or the facts cannot tell (an older facts script)."""
    return facts.br_netfilter in (None, "absent") or any(
        facts.bridge_nf.get(key) is None for key in NF_KEYS
    )


def netfilter_steps(
    facts: HostFacts, value: int, backup_dir: str | None
) -> tuple[list[Step], dict[str, int], dict[str, str]]:
    """Steps to reach netfilter ``value``, plus the expected sysctls and file hashes.

    Keys the host does not have yet (br_netfilter not loaded) are expected once the steps load
    the module and apply the file; the module's inverse unloads it again (see steps.modprobe).
    """
    out: list[Step] = []
    expected_nf: dict[str, int] = {}
    for key in NF_KEYS:
        current = facts.bridge_nf.get(key)
        if current is None:
            continue
        expected_nf[key] = value
        if current != value:
            out.append(steps.sysctl_set(f"net.bridge.bridge-nf-{key}", value, current))
    files = desired_files(value, facts.kernel, facts.has_modules)
    hashes = {path: sha256(text) for path, text in files.items()}
    for path, text in files.items():
        old = facts.managed_files.get(path)
        if old != hashes[path]:
            out.append(steps.file_write(path, text, existed=old is not None, backup_dir=backup_dir))
    if any(s.kind == "file_write" for s in out) and _keys_missing(facts):
        # Load the module before sysctl -p so the keys exist when the file is applied. When they
        # exist already, the sysctl_set steps above did the runtime part: a rewritten file needs
        # no reload (a repair changes only what drifted).
        if facts.has_modules:
            out.append(steps.modprobe("br_netfilter", backup_dir))
        if facts.has_sysctl:
            out.append(steps.sysctl_load(SYSCTL_FILE))
        if facts.has_modules and facts.has_sysctl and facts.br_netfilter == "absent":
            expected_nf = dict.fromkeys(NF_KEYS, value)
    return out, expected_nf, hashes
