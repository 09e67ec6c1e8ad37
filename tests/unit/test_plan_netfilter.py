"""Bridge netfilter on a host without br_netfilter loaded (no bridge-nf keys before the change): the
module load has its true inverse, and the restore check compares only what the transaction
changed. On facts recorded from a real host (fixture ``nf_absent``, see record.sh)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.plan import plan_host, restore_check, step_command, touched_by, verify_restored
from fleetbr.plan.netfilter import NF_KEYS, SYSCTL_FILE, UDEV_FILE
from tests.unit.test_plan_support import BASE_TASK, task

DATA = Path(__file__).resolve().parents[1] / "data" / "facts"


def nf_absent() -> HostFacts:
    return parse_facts((DATA / "nf_absent.txt").read_text())


def loaded(f: HostFacts, value: int) -> HostFacts:
    """``f`` with br_netfilter loaded and every key at ``value``."""
    return dataclasses.replace(f, bridge_nf=dict.fromkeys(NF_KEYS, value), br_netfilter="loaded")


def test_the_recorded_host_has_no_bridge_netfilter() -> None:
    f = nf_absent()
    assert f.bridge_nf == dict.fromkeys(NF_KEYS)
    assert f.br_netfilter == "absent" and f.has_modules and f.has_sysctl


def test_loading_the_module_has_an_inverse_that_unloads_only_what_it_loaded() -> None:
    p = plan_host(task(), nf_absent(), min_timeout=20, backup_dir="/var/lib/fleetbr/tx/t/backups")
    load = next(s for s in p.steps if s.kind == "modprobe")
    assert load.inverse is not None and load.inverse.kind == "module_unload"
    assert load.inverse in p.rollback
    mark = "/var/lib/fleetbr/tx/t/backups/module-br_netfilter.loaded"
    assert f"modprobe br_netfilter && : > {mark}" in step_command(load)
    assert "[ -e /sys/module/br_netfilter/initstate ] ||" in step_command(load)
    unload = step_command(load.inverse)
    assert unload.startswith(f"{{ ! [ -e {mark} ] ||")  # only if the apply loaded it
    assert '"$(cat "$fbr_mod/refcnt" 2>/dev/null)" = 0' in unload  # nothing holds it
    assert '-z "$(ls -A "$fbr_mod/holders" 2>/dev/null)"' in unload  # no dependent module
    assert "rmmod br_netfilter" in unload and "modprobe -r" not in unload


def test_the_keys_the_module_brings_are_expected_after_apply() -> None:
    p = plan_host(task(), nf_absent(), min_timeout=20)
    assert dict(p.expected.bridge_nf) == dict.fromkeys(NF_KEYS, 0)
    assert [s.kind for s in p.steps if s.kind in ("modprobe", "sysctl_load")] == [
        "modprobe",
        "sysctl_load",
    ]


def test_a_perfect_rollback_matches_and_a_module_left_loaded_is_not_a_failure() -> None:
    before = nf_absent()
    p = plan_host(task(), before, min_timeout=20)
    assert verify_restored(before, before, p) == []
    # something started using br_netfilter, so the rollback left it loaded: reported, not failed
    kept = loaded(before, 0)
    assert verify_restored(before, kept, p) == []
    check = restore_check(before, kept, touched_by(p))
    assert "bridge-nf call-iptables=0 is new" in check.unrelated
    assert "kernel module br_netfilter loaded is new" in check.unrelated


def test_keys_that_existed_are_still_compared() -> None:
    before = loaded(nf_absent(), 1)
    p = plan_host(task(), before, min_timeout=20)
    assert verify_restored(before, loaded(before, 0), p) == [
        "bridge-nf call-arptables=1 was there before, missing now",
        "bridge-nf call-ip6tables=1 was there before, missing now",
        "bridge-nf call-iptables=1 was there before, missing now",
        "bridge-nf call-arptables=0 is new",
        "bridge-nf call-ip6tables=0 is new",
        "bridge-nf call-iptables=0 is new",
    ]


def test_only_what_the_transaction_changed_is_compared() -> None:
    before = nf_absent()
    p = plan_host(task("netfilter: keep"), before, min_timeout=20)
    other = {SYSCTL_FILE: "0" * 64, UDEV_FILE: None}
    after = dataclasses.replace(loaded(before, 1), managed_files=other)
    assert verify_restored(before, after, p) == []  # netfilter keep: none of it is ours
    assert verify_restored(before, after, plan_host(task(), before, min_timeout=20)) == [
        f"file {SYSCTL_FILE} sha256 None was there before, missing now",
        f"file {SYSCTL_FILE} sha256 {'0' * 64} is new",
    ]


def test_netfilter_on_loads_the_module_at_boot_where_the_kernel_has_modules() -> None:
    from fleetbr.plan.netfilter import MODULES_FILE, desired_files

    on = plan_host(task(BASE_TASK + "netfilter: on\n"), nf_absent(), min_timeout=20)
    written = {str(s.args["path"]) for s in on.steps if s.kind == "file_write"}
    assert MODULES_FILE in written and MODULES_FILE in on.files  # backed up, restored on rollback
    off = plan_host(task(BASE_TASK + "netfilter: off\n"), nf_absent(), min_timeout=20)
    assert MODULES_FILE not in {str(s.args["path"]) for s in off.steps if "path" in s.args}
    assert MODULES_FILE not in desired_files(1, "6.1.0", has_modules=False)
    assert MODULES_FILE not in desired_files(1, "3.10.0", has_modules=True)  # bridge module then
