"""`fleetbr demo --sites`'s pure parts: the site names, the lab's inventory split into a
coordinator's (every host, with its site) and one per site (its hosts only), and the task with
its cut-off host; tests/integration/sites/test_demo_sites.py runs the demo itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetbr.changes.bridge.task import load_task, render_task
from fleetbr.cli import main
from fleetbr.errors import LabUsageError
from fleetbr.inventory import load_inventory
from fleetbr.lab.demos.sites import _split, _task, site_names

REPO = Path(__file__).resolve().parents[2]


def test_sites_are_named_a_b_and_so_on() -> None:
    assert site_names(2) == ["a", "b"]
    with pytest.raises(LabUsageError, match="expected 1 to 26"):
        site_names(27)


def _lab_inventory(tmp_path: Path, hosts: int) -> Path:
    folder = tmp_path / "inventory"
    folder.mkdir()
    found = {f"hv{n:02d}": {"hostname": f"198.51.100.{10 + n}", "data": {"nic": "eth0"}}
             for n in range(1, hosts + 1)}  # fmt: skip
    (folder / "hosts.yaml").write_text(yaml.safe_dump(found))
    (folder / "defaults.yaml").write_text(yaml.safe_dump({"username": "root"}))
    return folder


def test_the_lab_is_dealt_into_sites_and_each_site_sees_only_its_hosts(tmp_path: Path) -> None:
    split = _split(_lab_inventory(tmp_path, 3), tmp_path, ["a", "b"])
    assert split == {"a": ["hv01", "hv03"], "b": ["hv02"], "": ["hv01", "hv02", "hv03"]}
    every = load_inventory(tmp_path / "inventory-all")
    assert {h: (s.data["site"], s.data["cut"]) for h, s in every.items()} == {
        "hv01": ("a", False), "hv02": ("b", False), "hv03": ("a", True)}  # fmt: skip
    assert set(load_inventory(tmp_path / "inventory-a")) == {"hv01", "hv03"}
    assert set(load_inventory(tmp_path / "inventory-b")) == {"hv02"}


def test_the_demo_task_cuts_off_only_the_marked_host(tmp_path: Path) -> None:
    _split(_lab_inventory(tmp_path, 2), tmp_path, ["a", "b"])
    task = load_task(_task(REPO / "tasks" / "bridge.yaml", tmp_path / "task.yaml", 14))
    every = load_inventory(tmp_path / "inventory-all")
    rendered = {h: render_task(task, spec.context()) for h, spec in every.items()}
    assert {h: t.deadman_timeout for h, t in rendered.items()} == {"hv01": 14, "hv02": 14}
    assert rendered["hv01"].bridge.addresses is None, "move: the NIC's own addresses"
    assert rendered["hv02"].bridge.addresses == ("203.0.113.250/32",)


def test_sites_and_distro_do_not_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--sites", "2", "--distro"]) == 2
    assert "--sites runs on the netns lab" in capsys.readouterr().err
