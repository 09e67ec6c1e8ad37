"""``--batch-size 1,10%,50%`` (Ansible's serial list): parsing, the rollout's batches (canary
first, then the sizes in turn, the last repeating), what the history records and what
``--resume`` takes back. Pure: no host, no SSH."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetbr.batchplan import batches, plan_batches
from fleetbr.core.request import HistoryOptions, RolloutOptions, RunRequest, Selection
from fleetbr.counts import Serial, Share, batch_sizes, parse_batch_size
from fleetbr.history.record import file_sha256, run_options
from fleetbr.history.sqlite import SqliteStore
from fleetbr.history.store import RunRecord, RunState
from fleetbr.inventory import HostSpec
from fleetbr.resume import prepare_resume

NAMES = [f"h{i:02d}" for i in range(20)]


def sizes(text: str, total: int) -> tuple[int, ...]:
    return batch_sizes(parse_batch_size(text), total)


def test_a_single_size_stays_a_share_and_a_list_is_a_serial() -> None:
    single = parse_batch_size("10%")
    assert isinstance(single, Share) and single.text == "10%"
    serial = parse_batch_size(" 1, 10% ,50%")
    assert isinstance(serial, Serial) and serial.text == "1,10%,50%"
    assert serial.of(20) == (1, 2, 10)


@pytest.mark.parametrize(
    ("text", "total", "expected"),
    [("1,10%,50%", 20, (1, 2, 10)), ("1,10%,50%", 3, (1, 1, 2)), ("0.1%,100%", 7, (1, 7)),
     ("5,2", 4, (5, 2)), ("3", 10, (3,)), ("25%", 10, (3,))],
)  # fmt: skip
def test_sizes_are_percentages_of_the_selection_rounded_up_at_least_one(
    text: str, total: int, expected: tuple[int, ...]
) -> None:
    assert sizes(text, total) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [("1,0", "size 2: '0' is less than 1"), ("1,-2", "size 2: '-2' is neither"),
     ("1,101%", "size 2: '101%': a percentage from more than 0% to 100%"),
     ("1,0%", "size 2: '0%': a percentage"), ("1,,5", "size 2 of the list is empty"),
     ("1,", "size 2 of the list is empty"), (",1", "size 1 of the list is empty"),
     ("1;2", "neither a whole number"), ("1,x", "size 2: 'x' is neither")],
)  # fmt: skip
def test_nonsense_lists_name_the_bad_size(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_batch_size(text)


@pytest.mark.parametrize("text", ["1,0", "1,,2", "10%,200%", "a,b"])
def test_cli_refuses_nonsense_lists_with_exit_2(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetbr.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--no-history", "apply", str(tmp_path / "t.yaml"), "--batch-size", text])
    assert stop.value.code == 2
    assert "argument --batch-size:" in capsys.readouterr().err


def test_batches_take_the_sizes_in_turn_after_the_canary_and_repeat_the_last() -> None:
    got = plan_batches(NAMES, 1, parse_batch_size("1,10%,50%"))
    assert [len(batch) for batch in got] == [1, 1, 2, 10, 6]
    assert [name for batch in got for name in batch] == NAMES, "every host once, in order"
    assert [len(b) for b in plan_batches(NAMES, 0, parse_batch_size("2,5"))] == [2, 5, 5, 5, 3]
    assert [len(b) for b in batches(NAMES[:3], 0, [5, 1])] == [3]
    assert [len(b) for b in batches(NAMES[:5], 2, [])] == [2, 3]
    assert [len(b) for b in batches(NAMES[:5], 0, 0)] == [5], "0: the rest at once, as before"


def test_the_history_records_the_list_and_resume_takes_its_host_counts(tmp_path: Path) -> None:
    serial = parse_batch_size("1,10%,50%")
    request = RunRequest("apply", Selection(Path("inventory")),
                         rollout=RolloutOptions(canary=1, batch_size=serial))  # fmt: skip
    options = run_options(request, 20)
    assert options["batch_size"] == "1,10%,50%" and options["batch_size_hosts"] == [1, 2, 10]
    task = tmp_path / "t.yaml"
    task.write_text("bridge: {}\n")
    store = SqliteStore(tmp_path / "h.sqlite3")
    run = RunRecord(command="apply", hosts=NAMES, options=options, started=1.0, controller={},
                    task_path=str(task), task_sha256=file_sha256(task),
                    state=RunState.INTERRUPTED)  # fmt: skip
    store.create_run(run)
    store.close()
    asked = RunRequest("apply", Selection(Path("inventory")),
                       history=HistoryOptions(path=tmp_path / "h.sqlite3", resume=1))  # fmt: skip

    def select(_: RunRequest) -> list[HostSpec]:
        from tests.unit.test_rollout_resume import hosts

        return hosts(20)

    resumed, _, _ = prepare_resume(asked, select)
    again = resumed.rollout.batch_size
    assert isinstance(again, Serial) and again.of(20) == (1, 2, 10)
    assert plan_batches(NAMES, resumed.rollout.canary or 0, again) == plan_batches(NAMES, 1, serial)
