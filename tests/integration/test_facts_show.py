"""``fleetbr facts --show`` against lab hosts: plain tables per host, and --json cut to them."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from fleetbr.lab import Lab
from tests.integration.helpers import fleetbr


def test_show_prints_the_chosen_sections_per_host(lab: Lab) -> None:
    hv01, hv02 = lab.hosts[0], lab.hosts[1]
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "-i", str(lab.inventory_dir), "-l", "hv01,hv02",
         "facts", "--show", "addresses,routes,daemon"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "30"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "2 hosts: 2 ok"
    first, second = lines.index("==== hv01 ok"), lines.index("==== hv02 ok")
    hv01_part, hv02_part = lines[first:second], lines[second:-1]
    for part, host in ((hv01_part, hv01), (hv02_part, hv02)):
        assert [line for line in part if re.fullmatch(r"  \w+", line)] == [
            "  addresses", "  routes", "  daemons"
        ]  # fmt: skip
        assert any(re.search(rf"\s{re.escape(host.ip4)}/\d+\s+global", line) for line in part)
        assert any(
            re.match(rf"    main\s+v4\s+default\s+{re.escape(lab.gateway4)}\s", line)
            for line in part
        ), part
    assert "\x1b" not in done.stdout


def test_show_with_json_keeps_only_those_sections(lab: Lab) -> None:
    code, document, err = fleetbr(
        "-i", str(lab.inventory_dir), "-l", "hv01", "facts", "--show", "bridges,sysctl"
    )
    assert code == 0, err
    assert set(document["hv01"]["facts"]) == {"bridges", "bridge_nf", "br_netfilter"}
