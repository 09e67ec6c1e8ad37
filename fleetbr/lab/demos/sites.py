"""``fleetbr demo --sites N``: one rollout across sites (docs/scale.md), all inside the demo's
network namespace: the netns lab split into sites ``a``, ``b``, ... (``data.site``, hosts dealt
in turn), a redis-server, a PostgreSQL history, one ``fleetbr worker`` per site with an
inventory of its own site's hosts only, and the coordinator (``apply --executor celery``) with
every host but no need of their keys. The last host is given a wrong address (cut off): it rolls
back by itself. It shows the report per site (which worker ran which host) and ``fleetbr
history``; tests/integration/sites/test_demo_sites.py judges it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from fleetbr import lab
from fleetbr.distributed.config import CONFIG_ENV
from fleetbr.errors import LabError, LabUsageError
from fleetbr.history.record import ENV as HISTORY_ENV
from fleetbr.lab.demos.services import Postgres, Redis, free_port
from fleetbr.output import Human, render_results
from fleetbr.report import AggregatedResult, HostResult, Status

READY_WAIT = 120.0  # seconds a worker may take to start (a loaded machine)
RUN_WAIT = 600.0  # seconds the coordinator's rollout may take
CUT = '{% if host.data.cut | default(false) %}["203.0.113.250/32"]{% else %}move{% endif %}'


def site_names(count: int) -> list[str]:
    """``a``, ``b``, ... (LabUsageError beyond 26)."""
    if not 1 <= count <= 26:
        raise LabUsageError(f"--sites {count}: expected 1 to 26 sites")
    return [chr(ord("a") + index) for index in range(count)]


def run_sites_demo(lab_dir: Path, *, hosts: int, sites: int, task: Path, timeout: int,
                   keep: bool) -> int:  # fmt: skip
    """Run the demo (module docstring); 0 once it ran to its end, whatever the hosts did."""
    names = site_names(sites)
    if hosts < sites:
        raise LabUsageError(f"--hosts {hosts}: at least one host per site (--sites {sites})")
    out = Human()
    out.line(f"1/5 bringing up a lab of {hosts} SSH hosts in {sites} sites", style="bold")
    built = lab.up(lab_dir, hosts=hosts)
    try:
        split = _split(built.inventory_dir, lab_dir, names)
        demo_task = _task(task, lab_dir / "sites-task.yaml", timeout)
        with ExitStack() as stack:
            out.line("2/5 starting redis-server (broker) and PostgreSQL (history)", style="bold")
            env = stack.enter_context(_services(lab_dir))
            out.line(f"3/5 starting one site worker per site ({', '.join(names)}), each with its "
                     "own site's hosts only", style="bold")  # fmt: skip
            for site in names:
                stack.enter_context(_worker(lab_dir, site, env))
            cut = next(reversed(split.pop("")))
            out.line(f"4/5 the coordinator applies {task} across the sites; {cut} is cut off "
                     f"and must revert by itself within {timeout}s", style="bold")  # fmt: skip
            doc = _coordinate(lab_dir, demo_task, env)
            for site in names:
                _site_report(out, site, split[site], doc)
            out.line("5/5 the run history (PostgreSQL), shared by the coordinator and the workers",
                     style="bold")  # fmt: skip
            subprocess.run([sys.executable, "-m", "fleetbr", "history"], env=env, check=False,
                           timeout=120)  # fmt: skip
        return 0
    finally:
        if keep:
            out.line(f"lab kept: fleetbr -i {lab_dir / 'inventory-all'} status; fleetbr lab down "
                     f"--dir {lab_dir}")  # fmt: skip
        else:
            lab.down(lab_dir)


def _split(inventory: Path, lab_dir: Path, names: list[str]) -> dict[str, list[str]]:
    """Inventories: ``inventory-all`` (every host, with its site; the last one cut off) and
    ``inventory-SITE`` (that site's hosts only); the hosts per site (``""``: every host)."""
    hosts = yaml.safe_load((inventory / "hosts.yaml").read_text())
    order = list(hosts)
    site_of = {host: names[index % len(names)] for index, host in enumerate(order)}
    for host in order:
        data = hosts[host].setdefault("data", {})
        data["site"], data["cut"] = site_of[host], host == order[-1]
    _inventory(inventory, lab_dir / "inventory-all", hosts)
    for site in names:
        _inventory(inventory, lab_dir / f"inventory-{site}",
                   {h: spec for h, spec in hosts.items() if site_of[h] == site})  # fmt: skip
    return {site: [h for h in order if site_of[h] == site] for site in names} | {"": order}


def _inventory(source: Path, dest: Path, hosts: Mapping[str, Any]) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest)
    (dest / "hosts.yaml").write_text(yaml.safe_dump(dict(hosts)))


def _task(source: Path, dest: Path, timeout: int) -> Path:
    """``source`` with the demo's timeout, and a wrong address for the host marked ``cut``."""
    try:
        doc = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LabUsageError(f"{source}: cannot read the task ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("bridge"), dict):
        raise LabUsageError(f"{source}: not a bridge task")
    doc.setdefault("deadman", {})["timeout"] = timeout
    doc["bridge"]["addresses"] = "CUT"
    text = yaml.safe_dump(doc).replace("addresses: CUT", f"addresses: {CUT}")
    dest.write_text(text)
    return dest


@contextmanager
def _services(lab_dir: Path) -> Iterator[dict[str, str]]:
    """redis-server and PostgreSQL up; the environment that points fleetbr at them (the broker
    in a 0600 config file, never on a command line)."""
    redis = Redis(lab_dir / "redis", free_port())
    postgres = Postgres(free_port())
    try:
        redis.start()
        postgres.start()
        config = lab_dir / "distributed.yaml"
        config.write_text(yaml.safe_dump({"broker": redis.url, "start_wait": 120,
                                          "visibility_timeout": 600}))  # fmt: skip
        config.chmod(0o600)
        yield dict(os.environ) | {CONFIG_ENV: str(config), HISTORY_ENV: postgres.url}
    finally:
        postgres.stop()
        redis.stop()


@contextmanager
def _worker(lab_dir: Path, site: str, env: dict[str, str]) -> Iterator[None]:
    """``fleetbr worker --site SITE`` on its own inventory, until it is ready; stopped with
    SIGTERM (Celery's warm shutdown) at the end."""
    log = lab_dir / f"worker-{site}.log"
    argv = [sys.executable, "-m", "fleetbr", "-i", str(lab_dir / f"inventory-{site}"), "worker",
            "--site", site]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + READY_WAIT
        while " ready." not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise LabError(f"the worker of site {site} did not start: {tail[0]} ({log})")
            time.sleep(0.2)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _coordinate(lab_dir: Path, task: Path, env: dict[str, str]) -> dict[str, Any]:
    """The coordinator's run (``--json``); its document."""
    argv = [sys.executable, "-m", "fleetbr", "--json", "-i", str(lab_dir / "inventory-all"),
            "apply", str(task), "--executor", "celery"]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                          timeout=RUN_WAIT)  # fmt: skip
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"the coordinator gave no report (exit {done.returncode}): {last}") from None
    if not isinstance(doc, dict):
        raise LabError("the coordinator's report is not a JSON object")
    return doc


def _site_report(out: Human, site: str, hosts: list[str], doc: Mapping[str, Any]) -> None:
    """One site's hosts as the coordinator reported them, and the worker that ran each."""
    entries = [doc[h] for h in hosts if isinstance(doc.get(h), dict)]
    workers = sorted({str(entry.get("worker") or "?") for entry in entries})
    out.line(f"site {site} ({', '.join(workers) or 'no worker'}):")
    aggregated = AggregatedResult("apply")
    for host in hosts:
        entry = doc.get(host)
        if not isinstance(entry, dict):
            aggregated.add(HostResult(host, Status.FAILED, "not in the coordinator's report"))
            continue
        status = str(entry.get("status"))
        known = status in {s.value for s in Status}
        elapsed = entry.get("elapsed")
        aggregated.add(HostResult(host, Status(status) if known else Status.FAILED,
                                  str(entry.get("message", "")),
                                  elapsed=float(elapsed) if isinstance(elapsed, int | float)
                                  else 0.0))  # fmt: skip
    render_results(aggregated, as_json=False)
