"""The seed tree of a VM host with backend ifupdown2: the ifupdown2 layer under the host's own
files, its whiteouts left out (udev rules and units masked), its dpkg status merged into the VM
image's (fleetbr.lab.vm.seed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fleetbr.lab.model import plan
from fleetbr.lab.vm import seed

BASE = "Package: ifupdown\nStatus: install ok installed\n\nPackage: python3\nStatus: ok\n"
VM = BASE + "\nPackage: kmod\nStatus: install ok installed\n"
LAYER = "Package: ifupdown2\nStatus: install ok installed\n\nPackage: python3\nStatus: ok\n"


def _whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_dpkg_status_takes_the_layers_changes_and_keeps_the_vm_layers() -> None:
    merged = seed.paragraphs(seed.merged_status(BASE, VM, LAYER))
    assert sorted(merged) == ["ifupdown2", "kmod", "python3"]
    assert merged["kmod"] == "Package: kmod\nStatus: install ok installed"


def test_an_ifupdown2_host_seed_has_the_layer_under_its_own_files(tmp_path: Path) -> None:
    layer, vm, rootfs = tmp_path / "layer", tmp_path / "vm", tmp_path / "rootfs"
    _write(layer / "usr/sbin/ifreload", "ifupdown2")
    _write(layer / "etc/network/interfaces", "the package's\n")
    _whiteout(layer / "usr/lib/udev/rules.d/80-ifupdown.rules")
    _whiteout(layer / "usr/lib/systemd/system/ifupdown-pre.service")
    _whiteout(layer / "usr/share/doc/ifupdown")
    _write(layer / seed.STATUS, LAYER)
    _write(vm / "upper" / seed.STATUS, VM)
    _write(rootfs / seed.STATUS, BASE)
    lab = plan(tmp_path / "lab", 2, "eth0", "fbrvm")
    lab.ifupdown2_layer, lab.vm_image, lab.rootfs = str(layer), str(vm), str(rootfs)
    plain, host = lab.hosts
    host.backend = "ifupdown2"
    for h in lab.hosts:
        _write(h.dir / "upper/etc/network/interfaces", f"{h.name}'s\n")
    assert seed.tree(lab, plain) == plain.dir / "upper"
    out = seed.tree(lab, host)
    assert out == host.dir / "seed"
    assert (out / "usr/sbin/ifreload").read_text() == "ifupdown2"
    assert (out / "etc/network/interfaces").read_text() == f"{host.name}'s\n"
    for mask in ("etc/udev/rules.d/80-ifupdown.rules", "etc/systemd/system/ifupdown-pre.service"):
        assert os.readlink(out / mask) == "/dev/null"
    assert not (out / "usr/lib/udev/rules.d/80-ifupdown.rules").exists()
    assert not os.path.lexists(out / "usr/share/doc/ifupdown")
    assert sorted(seed.paragraphs((out / seed.STATUS).read_text())) == [
        "ifupdown2",
        "kmod",
        "python3",
    ]


def test_an_ifupdown_vm_seed_has_the_ifenslave_layer_and_others_do_not(tmp_path: Path) -> None:
    layer, vm, rootfs = tmp_path / "layer", tmp_path / "vm", tmp_path / "rootfs"
    _write(layer / "etc/network/if-pre-up.d/ifenslave", "#!/bin/sh\n")
    _write(layer / seed.STATUS, BASE + "\nPackage: ifenslave\nStatus: install ok installed\n")
    _write(vm / "upper" / seed.STATUS, VM)
    _write(rootfs / seed.STATUS, BASE)
    lab = plan(tmp_path / "lab", 3, "eth0", "fbrvm")
    lab.ifenslave_layer, lab.vm_image, lab.rootfs = str(layer), str(vm), str(rootfs)
    ifupdown, ifupdown2, networkd = lab.hosts
    ifupdown.backend, ifupdown2.backend, networkd.backend = "ifupdown", "ifupdown2", "networkd"
    for h in lab.hosts:
        h.vm = True
        _write(h.dir / "upper/etc/hostname", f"{h.name}\n")
    assert seed.layers(lab, ifupdown) == [layer]
    assert seed.layers(lab, ifupdown2) == seed.layers(lab, networkd) == []
    out = seed.tree(lab, ifupdown)
    assert (out / "etc/network/if-pre-up.d/ifenslave").is_file()
    assert sorted(seed.paragraphs((out / seed.STATUS).read_text())) == [
        "ifenslave",
        "ifupdown",
        "kmod",
        "python3",
    ]
    # the provisioning overlay of the ifupdown VM has it too, between the VM layer and the base
    assert lab.lower(ifupdown) == f"{vm}/upper:{layer}:{rootfs}"
    assert lab.lower(networkd) == f"{vm}/upper:{rootfs}"
