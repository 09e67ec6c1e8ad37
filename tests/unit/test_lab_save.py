"""lab.json is saved whole even when threads save one lab at once (hosts reset in parallel)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleetbr.lab.model import load, plan, save


def test_parallel_saves_of_one_lab_never_fail_and_leave_one_whole_file(tmp_path: Path) -> None:
    lab = plan(tmp_path, 3, "eth0", "fbrsv")
    tmp_path.mkdir(exist_ok=True)
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(save, lab) for _ in range(400)]:
            future.result()  # before: FileNotFoundError when two renamed the same lab.tmp
    assert load(tmp_path) == lab
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.json"]
    assert (tmp_path / "lab.json").stat().st_mode & 0o777 == 0o644
