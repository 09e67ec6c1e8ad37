"""Config files fleetbr rewrites keep their owner, group and mode (issue 20, item 2).

ifupdown: ``/etc/network/interfaces`` is ``0600`` because it holds a ``wpa-psk``; networkd: the
NIC's ``.network`` file is ``0640 root:systemd-network``. After a confirmed apply (the file
rewritten by the backend) and after a rollback (the file put back from the stage's backup) each
still has exactly that owner, group and mode, and the secret is still in the file.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost
from fleetbr.report import Status
from tests.integration.distro.persisthelpers import (
    HOSTS,
    apply_all,
    on_each,
    persist_task,
    settled_facts,
)
from tests.integration.helpers import sh

pytestmark = pytest.mark.lab

CUT = "203.0.113.9/24"  # a wrong address on the bridge: the host is cut off
SECRET = "wpa-psk 0123456789abcdef0123456789abcdef"
# backend -> the file whose metadata the test sets, and the owner:group and mode it must keep
KEPT = {
    "ifupdown": ("/etc/network/interfaces", "root:root", "600"),
    "networkd": ("/etc/systemd/network/10-eth0.network", "root:systemd-network", "640"),
}
WIFI = f"\n# the site's wireless uplink\niface wlan0 inet manual\n    {SECRET}\n"


def _protect(lab: Lab, backend: str) -> None:
    """Give the backend's file the metadata of KEPT (and the ifupdown file a secret)."""
    path, owner, mode = KEPT[backend]
    host = HOSTS[backend]
    if backend == "ifupdown":
        sh(lab, host, f"printf '%s' {shlex.quote(WIFI)} >> {path}")
    sh(lab, host, f"chown {owner} {path} && chmod {mode} {path}")


def _metadata(lab: Lab, backend: str) -> str:
    path = KEPT[backend][0]
    return sh(lab, HOSTS[backend], f"stat -c '%U:%G %a %F' {path}").strip()


def _fresh_protected(lab: Lab, fresh: Callable[[str], LabHost]) -> list[str]:
    backends = [b for b in KEPT if b in HOSTS]
    on_each([HOSTS[b] for b in backends], fresh)
    for backend in backends:
        _protect(lab, backend)
        settled_facts(lab, HOSTS[backend])  # the daemon done with the boot, as a plan needs
    return backends


def _assert_kept(lab: Lab, backend: str) -> None:
    path, owner, mode = KEPT[backend]
    assert _metadata(lab, backend) == f"{owner} {mode} regular file", (backend, path)
    if backend == "ifupdown":
        assert SECRET in sh(lab, HOSTS[backend], f"cat {path}")


def test_rewritten_files_keep_owner_group_and_mode_when_confirmed(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    backends = _fresh_protected(distro_lab, fresh_distro_host)
    result = apply_all(distro_lab, [HOSTS[b] for b in backends], persist_task(tmp_path))
    for backend in backends:
        got = result[HOSTS[backend]]
        assert got.status == Status.CONFIRMED, (backend, got.message, got.data.get("events"))
        assert "br0" in sh(distro_lab, HOSTS[backend], f"cat {KEPT[backend][0]}"), backend
        _assert_kept(distro_lab, backend)


def test_rolled_back_files_keep_owner_group_and_mode(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    backends = _fresh_protected(distro_lab, fresh_distro_host)
    task = persist_task(tmp_path, timeout=20, addresses=[CUT])
    result = apply_all(distro_lab, [HOSTS[b] for b in backends], task)
    for backend in backends:
        got = result[HOSTS[backend]]
        assert got.status == Status.ROLLED_BACK, (backend, got.message, got.data.get("events"))
        _assert_kept(distro_lab, backend)


# backend -> (the config file's path, where the link leads, the target's real path): ifupdown
# through a relative link, netplan through an absolute one (issue 14, item 8)
LINKED = {
    "ifupdown": ("/etc/network/interfaces", "site/interfaces", "/etc/network/site/interfaces"),
    "netplan": ("/etc/netplan/01-netcfg.yaml", "/srv/netplan/01.yaml", "/srv/netplan/01.yaml"),
}


def _fresh_linked(lab: Lab, fresh: Callable[[str], LabHost]) -> dict[str, str]:
    """Each LINKED file moved to its target and replaced by a link; backend -> its old text."""
    backends = [b for b in LINKED if b in HOSTS]
    on_each([HOSTS[b] for b in backends], fresh)
    texts = {}
    for backend in backends:
        path, link, real = LINKED[backend]
        host = HOSTS[backend]
        texts[backend] = sh(lab, host, f"cat {path}")
        move = f"mkdir -p {real.rsplit('/', 1)[0]} && mv {path} {real} && ln -s {link} {path}"
        sh(lab, host, move)
        settled_facts(lab, host)
    return texts


def _link_kept(lab: Lab, backend: str) -> str:
    """The text behind the link, once checked that the path is still the same link."""
    path, link, real = LINKED[backend]
    host = HOSTS[backend]
    assert sh(lab, host, f"readlink {path}").strip() == link, (backend, "no longer the link")
    assert sh(lab, host, f"stat -c %F {real}").strip() == "regular file", backend
    assert sh(lab, host, f"ls {real.rsplit('/', 1)[0]}").split() == [real.rsplit("/", 1)[1]]
    return sh(lab, host, f"cat {real}")


def test_a_symlinked_config_file_is_written_through_its_link(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    texts = _fresh_linked(distro_lab, fresh_distro_host)
    result = apply_all(distro_lab, [HOSTS[b] for b in texts], persist_task(tmp_path))
    for backend in texts:
        got = result[HOSTS[backend]]
        assert got.status == Status.CONFIRMED, (backend, got.message, got.data.get("events"))
        assert "br0" in _link_kept(distro_lab, backend)


def test_a_symlinked_config_file_is_restored_through_its_link(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    texts = _fresh_linked(distro_lab, fresh_distro_host)
    task = persist_task(tmp_path, timeout=20, addresses=[CUT])
    result = apply_all(distro_lab, [HOSTS[b] for b in texts], task)
    for backend, text in texts.items():
        got = result[HOSTS[backend]]
        assert got.status == Status.ROLLED_BACK, (backend, got.message, got.data.get("events"))
        assert _link_kept(distro_lab, backend) == text
