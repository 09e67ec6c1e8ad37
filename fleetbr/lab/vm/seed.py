"""The tree a VM host's seed disk is made from: its own layer (identity, keys, backend files), laid
over the layers a distro host with the same backend mounts between its own and the base rootfs.
Today that is the ifupdown2 layer (fleetbr.lab.distro.layer.IFUPDOWN2) of a host with backend
ifupdown2 and the ifenslave layer (IFENSLAVE: ifupdown's bond hooks) of a host with backend
ifupdown, so the VM image stays one for every backend: the first boot copies the layer's files
over the root like the host's own (lab_vm_init.sh.j2).

The layer is an overlay upper directory: its whiteouts (character devices 0/0, the files apt
removed with ifupdown) are left out; those of udev rules and systemd units become masks in /etc
(ifupdown's hotplug rule would start ``ifup --allow=hotplug eth0`` at boot, beside
networking.service, and hold ifupdown2's lock), and ifupdown's other leftovers (docs, scripts no
unit runs) stay on the VM's disk. The layer's
dpkg status is merged into the VM image's: every package the layer changed, with the VM layer's
own (kmod) kept.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from fleetbr.lab.model import Lab, LabHost
from fleetbr.lab.system import run

STATUS = "var/lib/dpkg/status"
# a whiteout in these directories becomes a mask (a link to /dev/null) in the second
MASKED = (("usr/lib/udev/rules.d/", "etc/udev/rules.d/"),
          ("usr/lib/systemd/system/", "etc/systemd/system/"))  # fmt: skip


def layers(lab: Lab, host: LabHost) -> list[Path]:
    """The extra layers under ``host``'s own, lowest first."""
    if host.backend == "ifupdown2" and lab.ifupdown2_layer:
        return [Path(lab.ifupdown2_layer)]
    if host.backend == "ifupdown" and lab.ifenslave_layer:
        return [Path(lab.ifenslave_layer)]
    return []


def tree(lab: Lab, host: LabHost) -> Path:
    """The directory ``host``'s seed disk is made from (its own layer when it has no other)."""
    own = host.dir / "upper"
    extra = layers(lab, host)
    if not extra:
        return own
    out = host.dir / "seed"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for upper in extra:
        run(["cp", "-a", f"{upper}/.", str(out)])
        _drop_whiteouts(out)
        _merge_status(out, upper, Path(lab.vm_image) / "upper", Path(lab.rootfs))
    run(["cp", "-a", f"{own}/.", str(out)])
    return out


def _drop_whiteouts(root: Path) -> None:
    """Leave the whiteouts out; mask the udev rules and units among them (ifupdown's hotplug
    rule would run ``ifup --allow=hotplug`` at boot beside networking.service)."""
    for path in sorted(root.rglob("*"), reverse=True):
        st = path.lstat()
        if not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
            continue
        path.unlink()
        rel = path.relative_to(root).as_posix()
        for lib, etc in MASKED:
            if rel.startswith(lib):
                mask = root / etc / rel.removeprefix(lib)
                mask.parent.mkdir(parents=True, exist_ok=True)
                mask.symlink_to("/dev/null")


def paragraphs(text: str) -> dict[str, str]:
    """dpkg status paragraphs by package name."""
    out: dict[str, str] = {}
    for block in text.strip("\n").split("\n\n"):
        name = next((ln.split(":", 1)[1].strip() for ln in block.split("\n")
                     if ln.startswith("Package:")), "")  # fmt: skip
        if name:
            out[name] = block
    return out


def merged_status(base: str, vm: str, layer: str) -> str:
    """The VM image's dpkg status with every package ``layer`` installed, changed or removed
    relative to ``base`` taken from ``layer``."""
    was, theirs, ours = paragraphs(base), paragraphs(layer), paragraphs(vm)
    out = dict(ours)
    for name in was.keys() | theirs.keys():
        if was.get(name) == theirs.get(name):
            continue
        if name in theirs:
            out[name] = theirs[name]
        else:
            out.pop(name, None)
    return "\n\n".join(out[n] for n in sorted(out)) + "\n"


def _merge_status(out: Path, upper: Path, vm_upper: Path, rootfs: Path) -> None:
    layer = upper / STATUS
    if not layer.is_file():
        return
    vm = vm_upper / STATUS if (vm_upper / STATUS).is_file() else rootfs / STATUS
    text = merged_status((rootfs / STATUS).read_text(), vm.read_text(), layer.read_text())
    target = out / STATUS
    target.write_text(text)
    os.chmod(target, 0o644)
