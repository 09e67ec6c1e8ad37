"""One exception tree (fleetbr.errors): every error a fleetbr module defines derives from
FleetbrError, refusals of a plan from PlanRefused, and the CLI prints each as one line with its
exit code (2: the operator's input; 1: anything else)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import fleetbr
from fleetbr import cli
from fleetbr.backends.model import BackendRefusal
from fleetbr.errors import FleetbrError, PlanRefused, TaskError, UsageError
from fleetbr.history.safepath import UnsafeHistoryPath
from fleetbr.history.store import HistoryError
from fleetbr.plan import plan_host
from fleetbr.plan.guests import GuestRefusal
from tests.unit.test_guests import MOVE_ALL
from tests.unit.test_plan_support import facts, task


def defined_exceptions() -> list[type[BaseException]]:
    """Every public exception class defined in a module of the fleetbr package."""
    found = []
    for module in pkgutil.walk_packages(fleetbr.__path__, "fleetbr."):
        if module.name.endswith(".__main__"):  # runs the CLI when imported
            continue
        loaded = importlib.import_module(module.name)
        found += [
            value
            for name, value in vars(loaded).items()
            if inspect.isclass(value) and issubclass(value, BaseException)
            and value.__module__ == loaded.__name__ and not name.startswith("_")
        ]  # fmt: skip
    return found


def test_every_error_fleetbr_defines_is_in_the_one_tree() -> None:
    found = defined_exceptions()
    assert {BackendRefusal, GuestRefusal, PlanRefused, UnsafeHistoryPath} <= set(found)
    outside = [f"{e.__module__}.{e.__name__}" for e in found if not issubclass(e, FleetbrError)]
    assert outside == []


def test_refusals_of_a_plan_are_plan_refusals() -> None:
    assert issubclass(BackendRefusal, PlanRefused) and issubclass(GuestRefusal, PlanRefused)
    assert not issubclass(PlanRefused, UsageError)  # a refused host is not the operator's typo


def test_the_planner_turns_a_guest_refusal_into_the_plans_refusal() -> None:
    plan = plan_host(task(MOVE_ALL), facts(), min_timeout=20)  # no libvirt on this host
    assert plan.refusal == "guests: libvirt is not on the host (no virsh)"
    assert plan.steps == ()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GuestRefusal("guests: libvirt is not on the host (no virsh)"), 1),
        (BackendRefusal("persist: networkd is not running"), 1),
        (HistoryError("cannot open the history"), 1),
        (TaskError("tasks/x.yaml: bridge.name: required"), 2),
    ],
)
def test_the_cli_prints_an_error_as_one_line_with_its_exit_code(
    error: FleetbrError, code: int, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    def handler(args: object) -> int:
        raise error

    monkeypatch.setitem(cli.HANDLERS, "facts", handler)
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli.main(["facts"]) == code
    out, err = capsys.readouterr()
    assert out == "" and err == f"error: {error}\n"
