"""Site workers on Celery with real lab hosts, a real redis-server (tests/redisserver.py), a
real PostgreSQL history (tests/pgserver.py) and `fleetbr worker` processes, each with its own
inventory of its site's hosts: one rollout across two sites, and the faults of docs/scale.md.
Every host must end confirmed or rolled back (or, never started, untouched) with exactly one
transaction, and the history must say which worker did what."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetbr.distributed.app import CHUNK_TASK, make_app, queue_of
from fleetbr.distributed.config import BROKER_ENV, CONFIG_ENV, load_settings
from fleetbr.distributed.message import ChangeSpec, Chunk, Left
from fleetbr.history.lease import LEASE, MARGIN
from fleetbr.history.location import DatabaseUrl, open_store
from fleetbr.history.store import STARTED, HostRow, RunRecord
from fleetbr.lab import Lab
from tests.integration.barrier import Gate
from tests.integration.helpers import (
    armed_txid,
    derived_inventory,
    fleetbr,
    sh,
    task_file,
    wait_for,
)
from tests.pgserver import PgServer
from tests.redisserver import RedisServer

READY_WAIT = 60.0  # seconds a worker may take to start (2 shared cores, other tests running)
CUT = '{% if host.data.cut | default(false) %}["203.0.113.250/32"]{% else %}move{% endif %}'


@dataclass
class Worker:
    """One `fleetbr worker` process (its own process group: its pool dies with it)."""

    site: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Sites:
    """The lab split across sites: inventories, settings, workers."""

    lab: Lab
    tmp: Path
    history: str
    sites: dict[str, list[str]]
    workers: list[Worker]

    @property
    def inventory(self) -> Path:
        return self.tmp / "inventory-all"

    def worker(self, site: str, *, gate: Gate | None = None) -> Worker:
        """Start a worker of ``site`` on an inventory of that site's hosts; wait until ready."""
        inventory = self.tmp / f"inventory-{site}"
        log = self.tmp / f"worker-{site}-{len(self.workers)}.log"
        args = ["-i", str(inventory), "--history", self.history, "worker", "--site", site]
        argv = gate.argv("confirm", *args) if gate else [sys.executable, "-m", "fleetbr", *args]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True,
                                       env=gate.env if gate else None)  # fmt: skip
        worker = Worker(site, process, log)
        self.workers.append(worker)
        wait_for(lambda: " ready." in worker.text() or process.poll() is not None, READY_WAIT,
                 f"a worker of site {site}")  # fmt: skip
        assert process.poll() is None, worker.text()
        return worker

    def rows(self, run_id: int) -> dict[str, HostRow]:
        store = open_store(DatabaseUrl(self.history))
        try:
            return {row.host: row for row in store.hosts_of(run_id)}
        finally:
            store.close()

    def run(self, run_id: int) -> RunRecord:
        store = open_store(DatabaseUrl(self.history))
        try:
            return store.run(run_id)
        finally:
            store.close()


@pytest.fixture
def sites_of(
    lab: Lab, fresh_host: Any, tmp_path: Path, pg_url: str, redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Sites]]:  # fmt: skip
    """``sites_of({"east": [...], "west": [...]}, cut=[...], history=URL, **settings)``:
    inventories with ``data.site`` (the coordinator's: every host; a site's: its own hosts
    only), the broker and settings in the environment (a 0600 config file), fresh hosts; the
    history is ``pg_url``'s database unless given."""
    made: list[Sites] = []

    def make(
        split: dict[str, list[str]], cut: Sequence[str] = (), history: str = pg_url,
        **settings: Any,
    ) -> Sites:  # fmt: skip
        config = tmp_path / "distributed.yaml"
        config.write_text(yaml.safe_dump({"start_wait": 30, "visibility_timeout": 120} | settings))
        config.chmod(0o600)
        monkeypatch.setenv(CONFIG_ENV, str(config))
        monkeypatch.setenv(BROKER_ENV, redis_server.url)
        site_of = {host: site for site, hosts in split.items() for host in hosts}

        def edit(keep: set[str]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
            def change(hosts: dict[str, Any], _defaults: dict[str, Any]) -> None:
                for name in list(hosts):
                    if name not in keep:
                        del hosts[name]
                        continue
                    data = hosts[name].setdefault("data", {})
                    data["site"] = site_of[name]
                    data["cut"] = name in cut

            return change

        derived_inventory(lab, tmp_path / "inventory-all", edit(set(site_of)))
        for site, hosts in split.items():
            derived_inventory(lab, tmp_path / f"inventory-{site}", edit(set(hosts)))
        for host in site_of:
            fresh_host(host)
        made.append(Sites(lab, tmp_path, history, split, []))
        return made[-1]

    yield make
    for sites in made:
        for worker in sites.workers:
            worker.stop()
        for host in {h for hosts in sites.sites.values() for h in hosts}:
            fresh_host(host)


def cut_task(tmp_path: Path) -> Path:
    """tasks/bridge.yaml, hosts with ``data.cut`` given a wrong address (cut off: rolled back)."""
    return task_file(tmp_path, addresses="CUT")


def with_cut(path: Path) -> Path:
    text = path.read_text().replace("addresses: CUT", f"addresses: {CUT}")
    path.write_text(text)
    return path


def transactions(lab: Lab, host: str) -> list[str]:
    """The transactions staged on ``host`` (fleetbr's state folder)."""
    out = sh(lab, host, "ls /var/lib/fleetbr/tx 2>/dev/null || true")
    return out.split()


def decision(lab: Lab, host: str, txid: str) -> str:
    """The decision the host recorded for ``txid`` ("" while undecided)."""
    return sh(lab, host, f"readlink /var/lib/fleetbr/tx/{txid}/decision || true").strip()


def coordinator_of(sites: Sites, task: Path, *args: str) -> subprocess.Popen[str]:
    """``fleetbr --json apply TASK --executor celery ARGS`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "--json", "-i", str(sites.inventory), "--history",
         sites.history, "apply", str(task), "--executor", "celery", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def apply(sites: Sites, task: Path, *args: str) -> tuple[int, Any, str]:
    return fleetbr("-i", str(sites.inventory), "--history", sites.history, "apply", str(task),
                   "--executor", "celery", *args, timeout=240)  # fmt: skip


def new_run(
    sites: Sites, hosts: list[str], change: ChangeSpec, *, resumed_from: int | None = None,
    left: dict[str, str] | None = None,
) -> int:  # fmt: skip
    """A running apply of ``change`` on ``hosts`` in the history, as a coordinator starts it
    (for chunks a test sends itself); ``left``: rows ``started`` with these txids."""
    store = open_store(DatabaseUrl(sites.history))
    try:
        record = RunRecord("apply", hosts, {}, time.time(), {"pid": os.getpid()},
                           task_sha256=change.sha256, resumed_from=resumed_from)  # fmt: skip
        run_id = store.create_run(record)
        for host, txid in (left or {}).items():
            store.put_host(run_id, HostRow(host, STARTED, txid=txid))
        return run_id
    finally:
        store.close()


def run_id_of(sites: Sites) -> int:
    store = open_store(DatabaseUrl(sites.history))
    try:
        latest = store.latest_run_id()
    finally:
        store.close()
    assert latest is not None
    return latest


def test_one_rollout_across_two_sites(sites_of: Callable[..., Sites], tmp_path: Path) -> None:
    sites = sites_of({"east": ["hv01", "hv02"], "west": ["hv03"]}, cut=["hv02"])
    east, west = sites.worker("east"), sites.worker("west")
    task = with_cut(cut_task(tmp_path))
    code, doc, err = apply(sites, task)
    assert code == 1, (err, doc)
    statuses = {name: doc[name]["status"] for name in ("hv01", "hv02", "hv03")}
    assert statuses == {"hv01": "confirmed", "hv02": "rolled_back", "hv03": "confirmed"}, doc
    assert {doc[name]["site"] for name in ("hv01", "hv02")} == {"east"}
    run_id = run_id_of(sites)
    run, rows = sites.run(run_id), sites.rows(run_id)
    assert (run.state.value, run.exit_code) == ("finished", 1)
    for name, status in statuses.items():
        row = rows[name]
        assert (row.status.value, row.txid) == (status, doc[name]["txid"])
        assert row.worker and row.worker.split(":")[1] != str(run.controller["pid"]), row
        assert {"prepare", "window"} <= set(row.phases), row
        assert transactions(sites.lab, name) == [row.txid], "exactly one transaction"
    assert rows["hv01"].worker != rows["hv03"].worker, "each site's own worker"
    assert "not staged again" not in east.text() + west.text()
    code, doc, err = fleetbr("-i", str(sites.inventory), "--history", sites.history, "check",
                             str(task), "--executor", "celery")  # fmt: skip
    checked = {name: doc[name]["status"] for name in ("hv01", "hv02", "hv03")}
    assert checked == {"hv01": "in_sync", "hv02": "drifted", "hv03": "in_sync"}, (err, doc)
    assert code == 3


def test_the_same_chunk_delivered_twice_at_once_stages_one_transaction_per_host(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    sites = sites_of({"east": ["hv04", "hv05"]})
    first, second = sites.worker("east"), sites.worker("east")
    task = task_file(tmp_path)
    change = ChangeSpec.of("bridge", task.read_text(), task.name)
    run_id = new_run(sites, ["hv04", "hv05"], change)
    chunk = Chunk(run_id, "apply", "east", ("hv04", "hv05"), change, 0, time.time() + 60, 5)
    app = make_app(load_settings())
    sent = [app.send_task(CHUNK_TASK, args=[chunk.to_json()], queue=queue_of("east"))
            for _ in range(2)]  # fmt: skip
    results = [result.get(timeout=180) for result in sent]
    by_delivery = [{r["host"]: r["status"] for r in got["results"]} for got in results]
    assert by_delivery == [{"hv04": "confirmed", "hv05": "confirmed"}] * 2, results
    assert results[0]["worker"] != results[1]["worker"], "both workers ran it, at once"
    rows = sites.rows(run_id)
    for host in ("hv04", "hv05"):
        assert transactions(sites.lab, host) == [rows[host].txid], "exactly one transaction"
        assert rows[host].status.value == "confirmed"
    duplicates = [r for got in results for r in got["results"] if "duplicate" in r["data"]]
    assert len(duplicates) == 2, "each host was taken once; the other delivery read its row"
    assert "not staged again" in first.text() + second.text()


def test_a_resume_chunk_delivered_twice_resolves_and_applies_each_host_once(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    """A chunk of ``apply --resume`` whose hosts have a transaction to resolve (here: txids the
    earlier run recorded but never staged), delivered twice at once: each host is claimed once,
    resolved once and applied once; the other delivery reports its row."""
    sites = sites_of({"east": ["hv04", "hv05"]})
    first, second = sites.worker("east"), sites.worker("east")
    task = task_file(tmp_path)
    change = ChangeSpec.of("bridge", task.read_text(), task.name)
    hosts = ["hv04", "hv05"]
    left = {"hv04": "20261206T120000-00a004", "hv05": "20261206T120000-00a005"}
    earlier = new_run(sites, hosts, change, left=left)
    run_id = new_run(sites, hosts, change, resumed_from=earlier)
    chunk = Chunk(run_id, "apply", "east", tuple(hosts), change, 0, time.time() + 60, 5,
                  {host: Left(txid, earlier) for host, txid in left.items()})  # fmt: skip
    app = make_app(load_settings())
    sent = [app.send_task(CHUNK_TASK, args=[chunk.to_json()], queue=queue_of("east"))
            for _ in range(2)]  # fmt: skip
    results = [result.get(timeout=180) for result in sent]
    by_delivery = [{r["host"]: r["status"] for r in got["results"]} for got in results]
    assert by_delivery == [{"hv04": "confirmed", "hv05": "confirmed"}] * 2, results
    rows = sites.rows(run_id)
    for host in hosts:
        assert rows[host].status.value == "confirmed"
        assert rows[host].txid not in (None, left[host])
        assert transactions(sites.lab, host) == [rows[host].txid], "exactly one transaction"
        assert rows[host].data["resolved"] == (f"{left[host]} of run {earlier} is not on the "
                                               "host (never staged)")  # fmt: skip
    duplicates = [r for got in results for r in got["results"] if "duplicate" in r["data"]]
    assert len(duplicates) == 2, "each host was taken once; the other delivery read its row"
    assert "not staged again" in first.text() + second.text()


def test_a_forged_chunk_is_refused_and_stages_nothing(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    sites = sites_of({"east": ["hv01"], "west": ["hv03"]})
    east = sites.worker("east")
    task = task_file(tmp_path)
    change = ChangeSpec.of("bridge", task.read_text(), task.name)
    run_id = new_run(sites, ["hv01", "hv03"], change)
    app = make_app(load_settings())
    forged = [
        Chunk(run_id, "apply", "east", ("hv03",), change, 0, time.time() + 60, 5),  # west's host
        Chunk(run_id, "apply", "east", ("hv01",),
              ChangeSpec.of("command", "argv: [reboot]\n", "x"), 0, time.time() + 60, 5),
    ]  # fmt: skip
    sent = [app.send_task(CHUNK_TASK, args=[c.to_json()], queue=queue_of("east")) for c in forged]
    outsider, kind = (result.get(timeout=60)["results"] for result in sent)
    assert [(r["host"], r["status"]) for r in outsider] == [("hv03", "refused")]
    assert "not in its inventory" in outsider[0]["message"]
    assert [(r["host"], r["status"]) for r in kind] == [("hv01", "refused")]
    assert "'command' is not allowed" in kind[0]["message"]
    assert transactions(sites.lab, "hv01") == transactions(sites.lab, "hv03") == []
    assert sites.rows(run_id) == {}, "nothing claimed"
    log = east.text()
    assert "host hv03 refused: not in this worker's inventory" in log
    assert "change kind 'command' is not allowed" in log


def test_a_site_without_a_worker_ends_not_started_after_a_bounded_wait(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    sites = sites_of({"east": ["hv01"], "north": ["hv06"]}, start_wait=6)
    sites.worker("east")
    began = time.monotonic()
    code, doc, err = apply(sites, task_file(tmp_path))
    assert time.monotonic() - began < 90
    assert code == 1, (err, doc)
    assert doc["hv01"]["status"] == "confirmed"
    assert doc["hv06"]["status"] == "skipped", doc
    assert doc["hv06"]["message"].startswith("not started: no worker of site north"), doc
    run_id = run_id_of(sites)
    run, rows = sites.run(run_id), sites.rows(run_id)
    assert rows["hv06"].status.value == "skipped"
    assert rows["hv06"].worker is not None
    assert rows["hv06"].worker.split(":")[1] == str(run.controller["pid"]), "the coordinator's"
    assert transactions(sites.lab, "hv06") == []


def test_a_worker_killed_with_a_host_armed_is_taken_over_and_the_host_rolled_back(
    sites_of: Callable[..., Sites], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = sites_of({"east": ["hv02"]}, visibility_timeout=8)
    gate = Gate(tmp_path / "barrier")  # never released: the host stays armed
    held = sites.worker("east", gate=gate)
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "--json", "-i", str(sites.inventory), "--history",
         sites.history, "apply", str(task_file(tmp_path)), "--executor", "celery"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gate.reached("confirm", timeout=90) == "hv02"
        txid = armed_txid(sites.lab, "hv02")
        held.kill()
        # the host's timer decides first: the taker finds it rolled back, never armed with
        # time left (that one is confirmed: the next test)
        wait_for(lambda: decision(sites.lab, "hv02", txid).startswith("rolled_back"), 60,
                 "hv02's timer to roll it back")  # fmt: skip
        sites.worker("east")
        out, err = coordinator.communicate(timeout=180)
    finally:
        coordinator.kill()
    doc = json.loads(out)
    assert coordinator.returncode == 1, (err, doc)
    assert doc["hv02"]["status"] == "rolled_back", doc
    assert "not staged again" in doc["hv02"]["message"]
    assert transactions(sites.lab, "hv02") == [txid], "exactly one transaction"
    rows = sites.rows(run_id_of(sites))
    assert (rows["hv02"].status.value, rows["hv02"].txid) == ("rolled_back", txid)


def test_a_broker_restarted_mid_run_loses_nothing(
    sites_of: Callable[..., Sites], tmp_path: Path, redis_server: RedisServer
) -> None:
    sites = sites_of({"east": ["hv03"]})
    gate = Gate(tmp_path / "barrier")
    sites.worker("east", gate=gate)
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "--json", "-i", str(sites.inventory), "--history",
         sites.history, "apply", str(task_file(tmp_path)), "--executor", "celery"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gate.reached("confirm", timeout=90) == "hv03"
        txid = armed_txid(sites.lab, "hv03")
        redis_server.restart()  # SIGKILL: the append-only file keeps the queue and the unacked
        gate.open("confirm")
        out, err = coordinator.communicate(timeout=180)
    finally:
        coordinator.kill()
    doc = json.loads(out)
    assert coordinator.returncode == 0, (err, doc)
    assert doc["hv03"]["status"] == "confirmed", doc
    assert transactions(sites.lab, "hv03") == [txid], "exactly one transaction"
    rows = sites.rows(run_id_of(sites))
    assert (rows["hv03"].status.value, rows["hv03"].txid) == ("confirmed", txid)


def test_a_killed_coordinator_is_resumed_from_another_process(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    sites = sites_of({"east": ["hv04", "hv05"]})
    gate = Gate(tmp_path / "barrier")
    sites.worker("east", gate=gate)
    task = task_file(tmp_path)
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "--json", "-i", str(sites.inventory), "--history",
         sites.history, "apply", str(task), "--executor", "celery", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gate.reached("confirm", timeout=90) == "hv04"
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait()
    finally:
        coordinator.kill()
        coordinator.communicate()
    run_id = run_id_of(sites)
    gate.open("confirm")  # the worker finishes its chunk without its coordinator
    wait_for(lambda: sites.rows(run_id)["hv04"].status.value == "confirmed", 60,
             "the worker to record hv04")  # fmt: skip
    assert sites.run(run_id).state.value == "running", "its coordinator is gone"
    assert set(sites.rows(run_id)) == {"hv04"}, "the second batch never started"
    resume = ["--resume", str(run_id), "--executor", "celery"]
    code, doc, err = fleetbr("-i", str(sites.inventory), "--history", sites.history, "apply",
                             *resume, timeout=240)  # fmt: skip
    assert code == 0, (err, doc)
    assert err.startswith(f"resuming run {run_id} (apply started "), err
    assert doc["hv04"]["status"] == doc["hv05"]["status"] == "confirmed", doc
    assert doc["hv04"]["from_run"] == run_id, "carried over, not touched again"
    resumed = run_id_of(sites)
    assert sites.run(resumed).resumed_from == run_id
    assert sites.rows(resumed)["hv05"].worker not in (None, "")
    for host in ("hv04", "hv05"):
        assert len(transactions(sites.lab, host)) == 1, "exactly one transaction"


def test_a_redelivered_chunk_whose_holder_died_confirms_its_armed_applied_host(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    sites = sites_of({"east": ["hv05"]}, visibility_timeout=8)
    gate = Gate(tmp_path / "barrier")  # never released: the host stays armed, applied
    held = sites.worker("east", gate=gate)
    # a long dead-man window: the taker finds the host armed with time left, however slow
    coordinator = coordinator_of(sites, task_file(tmp_path, timeout=600))
    try:
        assert gate.reached("confirm", timeout=90) == "hv05"
        txid = armed_txid(sites.lab, "hv05")
        held.kill()
        taker = sites.worker("east")
        out, err = coordinator.communicate(timeout=180)
    finally:
        coordinator.kill()
    doc = json.loads(out)
    assert coordinator.returncode == 0, (err, doc)
    assert doc["hv05"]["status"] == "confirmed", doc
    assert "was lost" in doc["hv05"]["message"] and "not staged again" in doc["hv05"]["message"]
    assert decision(sites.lab, "hv05", txid) == "confirmed"
    assert sh(sites.lab, "hv05", "readlink /var/lib/fleetbr/armed || true") == "", "disarmed"
    assert transactions(sites.lab, "hv05") == [txid], "exactly one transaction"
    rows = sites.rows(run_id_of(sites))
    assert (rows["hv05"].status.value, rows["hv05"].txid) == ("confirmed", txid)
    assert "already taken in this run" in taker.text()


@pytest.mark.parametrize("cut_off", [0.0, LEASE - MARGIN + 1], ids=["at-once", "lease-lost"])
def test_postgresql_stopped_mid_run_starts_no_new_host_and_the_run_is_resumed(
    sites_of: Callable[..., Sites], tmp_path: Path, own_pg_server: PgServer, cut_off: float
) -> None:
    """PostgreSQL stops while each site's first host is armed (held before its confirm). Gone
    on when the gates open at once: the coordinator's rows for the next batch cannot be written,
    so it sends no chunk. Held until the coordinator's run lease may have run out (its last
    renewal began before the stop): the lease is lost first, so it sends no chunk and says so.
    Either way the armed hosts are confirmed by their workers, the rest skipped, one warning
    line, and the resume from another process finishes the run: one transaction per host."""
    sites = sites_of({"east": ["hv01", "hv03"], "west": ["hv02", "hv04"]},
                     history=own_pg_server.create_database())  # fmt: skip
    gates = {site: Gate(tmp_path / f"barrier-{site}") for site in ("east", "west")}
    for site, gate in gates.items():
        sites.worker(site, gate=gate)
    task = task_file(tmp_path, timeout=120)  # the armed hosts' timers outlive the cut-off
    coordinator = coordinator_of(sites, task, "--batch-size", "2")
    try:
        assert gates["east"].reached("confirm", timeout=90) == "hv01"
        assert gates["west"].reached("confirm", timeout=90) == "hv02"
        run_id = run_id_of(sites)
        wait_for(lambda: all(sites.rows(run_id)[h].txid for h in ("hv01", "hv02")), 30,
                 "the workers to record the txids")  # fmt: skip
        own_pg_server.halt()
        time.sleep(cut_off)
        for gate in gates.values():
            gate.open("confirm")  # armed hosts go on to their confirm without the history
        out, err = coordinator.communicate(timeout=180)
    finally:
        coordinator.kill()
        if not own_pg_server.running():
            own_pg_server.resume()
    doc = json.loads(out)
    assert coordinator.returncode == 1, (err, doc)
    assert {h: doc[h]["status"] for h in ("hv01", "hv02", "hv03", "hv04")} == {
        "hv01": "confirmed",
        "hv02": "confirmed",
        "hv03": "skipped",
        "hv04": "skipped",
    }, doc
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 1, err
    if cut_off:
        for host in ("hv03", "hv04"):
            assert doc[host]["message"] == (
                "not started: the run lease could not be renewed (history unreachable); resume "
                f"with fleetbr apply --resume {run_id}"), doc  # fmt: skip
        assert warnings[0].startswith("warning: run history unreachable ("), err
        assert f"the run lease of run {run_id} could not be renewed for " in warnings[0], err
    else:
        assert doc["hv03"]["message"] == "not started: the run history cannot be written", doc
        assert "run history not recorded" in warnings[0]
    assert "no new host starts" in warnings[0], err
    assert f"fleetbr apply --resume {run_id}" in warnings[0], err
    assert transactions(sites.lab, "hv03") == transactions(sites.lab, "hv04") == []
    armed = {h: transactions(sites.lab, h) for h in ("hv01", "hv02")}
    assert {sites.rows(run_id)[h].status.value for h in armed} == {"started"}, "left to resolve"
    # the resume goes through the site workers too: they resolve hv01 and hv02 (their keys)
    code, resumed, err = apply(sites, task, "--resume", str(run_id))
    assert code == 0, (err, resumed)
    assert {h: resumed[h]["status"] for h in ("hv01", "hv02", "hv03", "hv04")} == dict.fromkeys(
        ("hv01", "hv02", "hv03", "hv04"), "confirmed"), resumed  # fmt: skip
    for host in ("hv01", "hv02"):
        assert resumed[host]["message"] == (f"confirmed {armed[host][0]} (decided on the host "
                                            f"after run {run_id} stopped)"), resumed  # fmt: skip
    resumed_id = run_id_of(sites)
    rows, run = sites.rows(resumed_id), sites.run(resumed_id)
    assert run.resumed_from == run_id
    for host in ("hv01", "hv02"):
        assert transactions(sites.lab, host) == armed[host], "exactly one transaction"
        assert (rows[host].txid, rows[host].from_run) == (armed[host][0], run_id)
    for host in ("hv03", "hv04"):
        assert transactions(sites.lab, host) == [rows[host].txid], "exactly one transaction"
    assert {row.status.value for row in rows.values()} == {"confirmed"}
    pids = {(row.worker or "::").split(":")[1] for row in rows.values()}
    assert len(pids) == 2 and str(run.controller["pid"]) not in pids, "each site's own worker"


def test_transactions_a_lost_coordinator_and_worker_left_are_resolved_by_the_site_worker(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    """``apply --resume --executor celery`` of a run whose coordinator and worker were both
    SIGKILLed with two hosts armed and applied: the new worker of the site confirms hv04 (time
    left on its timer) and finds hv05 rolled back by its own timer, verifies it and applies it
    again; one transaction per host per run."""
    sites = sites_of({"east": ["hv04", "hv05"]})
    gate = Gate(tmp_path / "barrier")  # never released: both hosts stay armed, applied
    held = sites.worker("east", gate=gate)
    # a long dead-man window: hv04 is still armed with time left when the resume reaches it
    coordinator = coordinator_of(sites, task_file(tmp_path, timeout=600))
    try:
        reached = {gate.reached("confirm", number, timeout=90) for number in (1, 2)}
        assert reached == {"hv04", "hv05"}
        run_id = run_id_of(sites)
        left = {host: armed_txid(sites.lab, host) for host in ("hv04", "hv05")}
        wait_for(lambda: {h: r.txid for h, r in sites.rows(run_id).items()} == left, 30,
                 "the worker to record both txids")  # fmt: skip
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait()
        held.kill()
    finally:
        coordinator.kill()
        coordinator.communicate()
    # hv05's timer fires first (run here at once: the same script the timer runs)
    sh(sites.lab, "hv05", f"sh /var/lib/fleetbr/tx/{left['hv05']}/rollback.sh timer >/dev/null")
    wait_for(lambda: decision(sites.lab, "hv05", left["hv05"]).startswith("rolled_back"), 60,
             "hv05's rollback")  # fmt: skip
    assert {r.status.value for r in sites.rows(run_id).values()} == {"started"}, "to resolve"
    sites.worker("east")
    code, doc, err = fleetbr("-i", str(sites.inventory), "--history", sites.history, "apply",
                             "--resume", str(run_id), "--executor", "celery",
                             timeout=240)  # fmt: skip
    assert code == 0, (err, doc)
    assert doc["hv04"]["status"] == doc["hv05"]["status"] == "confirmed", doc
    assert doc["hv04"]["message"].startswith(f"{left['hv04']} of run {run_id} was armed and "
                                             "applied: "), doc  # fmt: skip
    assert decision(sites.lab, "hv04", left["hv04"]) == "confirmed"
    assert sh(sites.lab, "hv04", "readlink /var/lib/fleetbr/armed || true") == "", "disarmed"
    resumed = run_id_of(sites)
    rows, run = sites.rows(resumed), sites.run(resumed)
    assert run.resumed_from == run_id
    assert (rows["hv04"].status.value, rows["hv04"].txid) == ("confirmed", left["hv04"])
    assert transactions(sites.lab, "hv04") == [left["hv04"]], "one transaction: confirmed"
    again = rows["hv05"].txid
    assert again not in (None, left["hv05"]) and rows["hv05"].status.value == "confirmed"
    assert transactions(sites.lab, "hv05") == sorted([left["hv05"], again]), "one per run"
    resolved = rows["hv05"].data["resolved"]
    assert resolved.startswith(f"{left['hv05']} of run {run_id} rolled back ("), resolved
    assert resolved.endswith("; matches its snapshot"), resolved
    for host in ("hv04", "hv05"):
        worker = rows[host].worker
        assert worker and worker.split(":")[1] != str(run.controller["pid"]), "the site's worker"


def test_a_resume_waits_for_the_worker_still_working_on_a_host_of_the_resumed_run(
    sites_of: Callable[..., Sites], tmp_path: Path
) -> None:
    """The coordinator SIGKILLed while its site worker is mid-transaction on hv04 (held armed
    and applied at the confirm barrier), ``apply --resume RUN --executor celery`` started at
    once: the resume waits on hv04's lease (one line), stages and decides nothing there while
    the old worker holds it; once that worker confirmed hv04 (its lease released with its final
    row) the resume carries hv04 over and applies hv05. One transaction per host per run."""
    sites = sites_of({"east": ["hv04", "hv05"]})
    gate = Gate(tmp_path / "barrier")
    worker = sites.worker("east", gate=gate)
    task = task_file(tmp_path, timeout=600)  # the old worker's window outlasts any wait here
    coordinator = coordinator_of(sites, task, "--batch-size", "1")
    try:
        assert gate.reached("confirm", timeout=90) == "hv04"
        run_id = run_id_of(sites)
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait()
    finally:
        coordinator.kill()
        coordinator.communicate()
    errors = tmp_path / "resume.err"
    with errors.open("w") as err_file:
        resume = subprocess.Popen(
            [sys.executable, "-m", "fleetbr", "--json", "-i", str(sites.inventory), "--history",
             sites.history, "apply", "--resume", str(run_id), "--executor", "celery"],
            stdout=subprocess.PIPE, stderr=err_file, text=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "waiting up to" in errors.read_text() or resume.poll() is not None, 90,
                 "the resume to wait for hv04's lease")  # fmt: skip
        waiting = errors.read_text()
        assert resume.poll() is None, waiting
        assert waiting.startswith(f"--resume: run {run_id} still works on hv04 (held by "
                                  f"{sites.rows(run_id)['hv04'].worker}, "), waiting  # fmt: skip
        # while the old worker holds hv04: armed by it alone, undecided, no run resumes it yet
        txid = armed_txid(sites.lab, "hv04")
        assert transactions(sites.lab, "hv04") == [txid] and decision(sites.lab, "hv04", txid) == ""
        assert run_id_of(sites) == run_id, "the resume has not started its run"
        assert sites.rows(run_id)["hv04"].status.value == "started"
        gate.open("confirm")  # the old worker goes on: it confirms hv04, then lets go
        out, _ = resume.communicate(timeout=240)
    finally:
        resume.kill()
    err = errors.read_text()
    doc = json.loads(out)
    assert resume.returncode == 0, (err, doc)
    lines = err.splitlines()
    assert lines[0] == waiting.splitlines()[0] and len(lines) == 2, err
    assert lines[1].startswith(f"resuming run {run_id} (apply started "), err
    assert doc["hv04"]["status"] == doc["hv05"]["status"] == "confirmed", doc
    assert doc["hv04"]["from_run"] == run_id, "carried over: decided by the old worker alone"
    old, resumed = sites.rows(run_id), sites.rows(run_id_of(sites))
    assert (old["hv04"].status.value, old["hv04"].txid) == ("confirmed", txid)
    assert decision(sites.lab, "hv04", txid) == "confirmed"
    assert transactions(sites.lab, "hv04") == [txid], "one transaction: the old worker's"
    assert (resumed["hv04"].txid, resumed["hv04"].from_run) == (txid, run_id)
    assert resumed["hv05"].status.value == "confirmed"
    assert transactions(sites.lab, "hv05") == [resumed["hv05"].txid], "one transaction"
    assert "hv05" not in old, "the old run never reached hv05"
    assert "not staged again" not in worker.text()
