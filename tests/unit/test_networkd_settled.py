"""The networkd wait every networkd and netplan apply ends with (backends/templates/common.sh.j2,
``networkd_settled``), run by a real POSIX sh against fake ``networkctl``, ``systemctl`` and
``sleep`` commands: it restarts networkd once after 5 s, then reconfigures a link networkd calls
``failed`` as soon as it sees one (networkd never retries it by itself), and gives up at
``$FLEETBR_WAIT``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fleetbr.render import environment

NETWORKCTL = """#!/bin/sh
# networkctl list --no-legend --no-pager -- NAMES: each link's state from STATE/NAME
# networkctl reconfigure -- NAME: logged; a failed link becomes configured if FIXABLE
echo "$*" >> "$STATE/calls"
case "$1" in
list) shift 3; for n in "$@"; do echo "1 $n bridge routable $(cat "$STATE/$n")"; done ;;
reconfigure) [ ! -e "$STATE/fixable" ] || echo configured > "$STATE/$3" ;;
esac
"""
SYSTEMCTL = '#!/bin/sh\necho "systemctl $*" >> "$STATE/calls"\n'


def run(tmp_path: Path, states: dict[str, str], *, fixable: bool) -> tuple[int, list[str]]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, text in (
        ("networkctl", NETWORKCTL),
        ("systemctl", SYSTEMCTL),
        ("sleep", "#!/bin/sh\n"),
    ):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for link, value in states.items():
        (state / link).write_text(value + "\n")
    if fixable:
        (state / "fixable").touch()
    macro = environment().from_string(
        '{% import "backends/common.sh.j2" as c %}{{ c.networkd_settled(names) }}'
    )
    script = macro.render(names=list(states))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STATE": str(state),
        "FLEETBR_WAIT": "30",
    }
    done = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    return done.returncode, (state / "calls").read_text().splitlines()


def test_a_failed_link_is_reconfigured_after_the_restart(tmp_path: Path) -> None:
    code, calls = run(tmp_path, {"br0": "failed", "br9": "failed", "eth0": "configured"},
                      fixable=True)  # fmt: skip
    assert code == 0
    assert "systemctl restart systemd-networkd.service" in calls
    assert calls.index("systemctl restart systemd-networkd.service") < calls.index(
        "reconfigure -- br0"
    )
    assert "reconfigure -- br9" in calls
    assert "reconfigure -- eth0" not in calls


def test_a_link_still_configuring_is_not_reconfigured_and_the_wait_is_bounded(
    tmp_path: Path,
) -> None:
    code, calls = run(tmp_path, {"br0": "configuring"}, fixable=True)
    assert code != 0
    assert not [c for c in calls if c.startswith("reconfigure")]
    assert calls.count("systemctl restart systemd-networkd.service") == 1
    # FLEETBR_WAIT 30 s: 60 looks 0.5 s apart
    assert len([c for c in calls if c.startswith("list")]) == 60


def test_a_link_that_stays_failed_is_retried_at_each_look_until_the_bound(tmp_path: Path) -> None:
    code, calls = run(tmp_path, {"br0": "failed"}, fixable=False)
    assert code != 0
    assert calls.count("reconfigure -- br0") == 50  # each look from the restart (5 s) to 30 s
    first = calls.index("reconfigure -- br0")
    assert calls.index("systemctl restart systemd-networkd.service") < first
