"""fleetbr.nornir without SSH: plugin registration, settings checked before any connection."""

from __future__ import annotations

import re
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.exceptions import NornirExecutionError
from nornir.core.plugins.connections import ConnectionPluginRegister
from nornir.core.task import Result

from fleetbr.errors import InventoryError
from fleetbr.nornir import (
    FleetbrConnection,
    HostFailed,
    fleetbr_apply,
    fleetbr_facts,
    fleetbr_plan,
    host_result,
)
from fleetbr.nornir.connection import connection_spec
from fleetbr.nornir.loop import SHARED, THREAD_NAME
from fleetbr.report import Status

TASK = Path(__file__).resolve().parents[2] / "tasks" / "bridge.yaml"


def init(tmp_path: Path, hosts: dict[str, Any], defaults: dict[str, Any] | None = None) -> Nornir:
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (tmp_path / "defaults.yaml").write_text(yaml.safe_dump(defaults or {}))
    return InitNornir(
        inventory={
            "plugin": "SimpleInventory",
            "options": {
                "host_file": str(tmp_path / "hosts.yaml"),
                "defaults_file": str(tmp_path / "defaults.yaml"),
                "group_file": str(tmp_path / "groups.yaml"),
            },
        },
        logging={"enabled": False},
    )


def test_the_connection_plugin_is_registered_through_the_entry_point() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="nornir.plugins.connections")}
    assert found["fleetbr"] == "fleetbr.nornir.connection:FleetbrConnection"
    ConnectionPluginRegister.auto_register()
    assert ConnectionPluginRegister.get_plugin("fleetbr") is FleetbrConnection


@pytest.mark.parametrize(
    ("extras", "port", "message"),
    [
        ({"known_host": "/tmp/kh"}, 22, "unknown fleetbr option(s) known_host"),
        ({"connect_timeout": 0}, 22, "connect_timeout: expected seconds"),
        ({}, 70000, "port: "),
        ("not a mapping", 22, "extras must be a mapping"),
        ({"client_keys": ["/nonexistent/id_x"]}, 22, "client_keys: /nonexistent/id_x: No such"),
    ],
)
def test_bad_settings_fail_the_host_before_any_connection(
    tmp_path: Path, extras: Any, port: int, message: str
) -> None:
    hosts = {
        "hv01": {
            "hostname": "198.51.100.10",
            "port": port,
            "connection_options": {"fleetbr": {"extras": extras}},
        }
    }
    nr = init(tmp_path, hosts)
    for task, kwargs in ((fleetbr_facts, {}), (fleetbr_plan, {"task_file": str(TASK)}),
                         (fleetbr_apply, {"task_file": TASK})):  # fmt: skip
        result = nr.run(task=task, on_failed=True, **kwargs)["hv01"][0]
        assert result.failed and not result.changed
        assert host_result(result).status is Status.FAILED
        assert message in host_result(result).message
        assert host_result(result).message.startswith("host hv01: ")
        assert result.result["status"] == "failed"
        # the cause for print_result / raise_on_error (issue 15, defect 11)
        assert isinstance(result.exception, HostFailed), result.exception
        assert str(result) == str(result.exception) == f"failed: {host_result(result).message}"
        assert result.exception.host_result is host_result(result)
    with pytest.raises(NornirExecutionError, match=f"failed: host hv01: .*{re.escape(message)}"):
        nr.run(task=fleetbr_facts, on_failed=True).raise_on_error()
    assert nr.inventory.hosts["hv01"].connections == {}
    assert SHARED.users == 0
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_a_task_that_does_not_render_fails_the_host_before_any_connection(
    tmp_path: Path,
) -> None:
    nr = init(tmp_path, {"hv01": {"hostname": "198.51.100.10"}})  # no data.nic for the task
    result = nr.run(task=fleetbr_apply, task_file=str(TASK), dry_run=True)["hv01"][0]
    assert result.failed and str(result.exception).startswith("failed: ")
    assert "host hv01: template error" in str(result.exception)
    assert "host hv01: template error" in host_result(result).message
    assert "'nic'" in host_result(result).message
    done = nr.run(task=fleetbr_apply, task_file=tmp_path / "nope.yaml", on_failed=True)
    missing = done["hv01"][0]
    assert missing.failed and "cannot read task file" in host_result(missing).message
    assert nr.inventory.hosts["hv01"].connections == {}


def test_connection_spec_checks_what_nornir_hands_the_plugin() -> None:
    spec = connection_spec("198.51.100.10", "root", None, None, {"known_hosts": "/kh"})
    assert (spec.hostname, spec.port, spec.ssh.known_hosts) == ("198.51.100.10", 22, "/kh")
    with pytest.raises(InventoryError, match="fleetbr connection to -oProxy: hostname"):
        connection_spec("-oProxy", None, None, 22, None)
    with pytest.raises(InventoryError, match="client_keys: /nonexistent/k: No such file"):
        connection_spec("198.51.100.10", None, None, 22, {"client_keys": "/nonexistent/k"})
    with pytest.raises(InventoryError, match="unknown fleetbr option"):
        connection_spec("198.51.100.10", None, None, 22, {"StrictHostKeyChecking": "no"})


def test_closing_a_plugin_that_never_opened_is_harmless() -> None:
    plugin = FleetbrConnection()
    plugin.close()
    assert plugin.connection is None and SHARED.users == 0


def test_host_result_refuses_a_result_of_another_task() -> None:
    with pytest.raises(TypeError, match="not the Result of a fleetbr task"):
        host_result(Result(host=None, result="x"))
