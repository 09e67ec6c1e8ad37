"""docker-compose.yml, checked without a Docker engine (`docker compose config -q` where one is
installed): the demo services, and one rollout across two sites: redis, postgres, a worker per
site and the coordinator, with no credential on any command line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FLEETBR = ("worker-a", "worker-b", "coordinator")
_SUBSTITUTION = re.compile(r"^\$\{[A-Z_]+:\?[^}]*\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _argv(service: dict[str, Any]) -> list[str]:
    parts = [service.get("entrypoint") or [], service.get("command") or []]
    assert all(isinstance(part, list) for part in parts), "exec form only: no shell parsing"
    return [str(word) for part in parts for word in part]


def test_it_has_the_demo_and_the_two_site_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"demo", "test", "redis", "postgres", *FLEETBR}
    assert set(compose["volumes"]) == {"redis-data", "postgres-data"}


def test_redis_keeps_its_queue_and_postgres_its_data_in_named_volumes(
    compose: dict[str, Any],
) -> None:
    redis, postgres = compose["services"]["redis"], compose["services"]["postgres"]
    assert _argv(redis)[:3] == ["redis-server", "--appendonly", "yes"]
    assert redis["volumes"] == ["redis-data:/data"]
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert _SUBSTITUTION.match(postgres["environment"]["POSTGRES_PASSWORD"])
    for service in (redis, postgres):
        assert "healthcheck" in service


def test_one_worker_per_site_with_its_own_inventory_read_only(compose: dict[str, Any]) -> None:
    for site in ("a", "b"):
        worker = compose["services"][f"worker-{site}"]
        argv = _argv(worker)
        assert argv[:4] == ["fleetbr", "-i", "/etc/fleetbr/inventory", "worker"]
        assert argv[argv.index("--site") + 1] == site
        assert worker["volumes"] == [f"./sites/{site}:/etc/fleetbr:ro"]
        assert worker["stop_signal"] == "SIGTERM"


def test_the_coordinator_is_a_one_shot_with_every_site_inventory(compose: dict[str, Any]) -> None:
    coordinator = compose["services"]["coordinator"]
    assert coordinator["profiles"] == ["coordinator"], "`up` leaves the one-shot out"
    assert coordinator["entrypoint"] == ["fleetbr", "-i", "/etc/fleetbr/inventory"]
    assert "./sites/all:/etc/fleetbr:ro" in coordinator["volumes"]


def test_fleetbr_services_take_the_broker_and_history_from_the_environment(
    compose: dict[str, Any],
) -> None:
    for name in FLEETBR:
        service = compose["services"][name]
        env = service["environment"]
        assert env["FLEETBR_BROKER"] == "redis://redis:6379/0"
        assert env["FLEETBR_HISTORY"] == "postgresql://fleetbr@postgres:5432/fleetbr"
        assert _SUBSTITUTION.match(env["PGPASSWORD"]), "the password from the caller's env"
        assert set(service["depends_on"]) == {"redis", "postgres"}
        assert "pip install" in service["build"]["dockerfile_inline"]


def test_no_credential_or_url_is_on_any_command_line(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        argv = " ".join(_argv(service))
        assert "://" not in argv, f"{name}: a URL on the command line ({argv})"
        assert not re.search(r"(?i)pass(word)?|secret|--broker|--history", argv), name
