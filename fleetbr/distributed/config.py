"""Where the broker is and what a worker accepts: ``$FLEETBR_BROKER``, else the config file
(``$FLEETBR_DISTRIBUTED_CONFIG``, default ``$XDG_CONFIG_HOME/fleetbr/distributed.yaml``), which
must not be readable by group or others (it may carry the broker's password). Never a command
line option: a URL with a password there is visible to every user of the machine (``ps``)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetbr.errors import UsageError, ValidationError
from fleetbr.history.location import masked
from fleetbr.validate import bounded_yaml

CONFIG_VALUES = 10_000  # a config of a few keys: far more is a mistake or an alias bomb

BROKER_ENV = "FLEETBR_BROKER"
CONFIG_ENV = "FLEETBR_DISTRIBUTED_CONFIG"
EXECUTOR_ENV = "FLEETBR_EXECUTOR"
EXECUTORS = ("local", "celery")
DEFAULT_KINDS = ("bridge",)  # ad-hoc commands (the ``command`` kind) only when listed
START_WAIT = 60.0  # seconds a chunk may wait for its site's worker to start it
VISIBILITY_TIMEOUT = 3600.0  # seconds before Redis hands an unacknowledged chunk out again


@dataclass(frozen=True)
class Settings:
    """The distributed settings (module docstring)."""

    broker: str
    kinds: tuple[str, ...] = DEFAULT_KINDS  # change kinds a worker runs
    start_wait: float = START_WAIT
    visibility_timeout: float = VISIBILITY_TIMEOUT


def config_path() -> Path:
    """The config file's path (it need not exist)."""
    given = os.environ.get(CONFIG_ENV, "").strip()
    if given:
        return Path(given)
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "fleetbr" / "distributed.yaml"


def load_settings() -> Settings:
    """The settings from the environment and the config file; UsageError (one line, the URL's
    password masked) when there is no broker or the file is unsafe or malformed."""
    path = config_path()
    raw = _read(path) if path.exists() or os.environ.get(CONFIG_ENV) else {}
    broker = os.environ.get(BROKER_ENV, "").strip() or raw.get("broker")
    if not isinstance(broker, str) or not broker.startswith(("redis://", "rediss://")):
        shown = masked(broker) if isinstance(broker, str) else broker
        raise UsageError(
            f"no Redis broker: set ${BROKER_ENV} or `broker: redis://...` in {path} "
            f"(got {shown!r:.80})"
        )
    return Settings(broker, kinds=_kinds(raw.get("kinds", list(DEFAULT_KINDS)), path),
                    start_wait=_seconds(raw, "start_wait", START_WAIT, path),
                    visibility_timeout=_seconds(raw, "visibility_timeout", VISIBILITY_TIMEOUT,
                                                path))  # fmt: skip


def executor(option: str | None) -> str:
    """``--executor``, else ``$FLEETBR_EXECUTOR``, else ``local``; UsageError for another."""
    chosen = option or os.environ.get(EXECUTOR_ENV, "").strip() or "local"
    if chosen not in EXECUTORS:
        raise UsageError(f"executor {chosen!r:.40}: expected one of {', '.join(EXECUTORS)}")
    return chosen


def _read(path: Path) -> dict[str, Any]:
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the distributed config ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path}: readable by group or others; chmod 600 it (it may hold the "
                         "broker's password)")  # fmt: skip
    try:
        loaded = bounded_yaml(text, CONFIG_VALUES, str(path)) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(loaded, dict):
        raise UsageError(f"{path}: expected a mapping (broker, kinds, start_wait, ...)")
    return loaded


def _kinds(value: object, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(kind, str) for kind in value):
        raise UsageError(f"{path}: kinds: expected a list of change kind names")
    return tuple(value)


def _seconds(raw: dict[str, Any], key: str, default: float, path: Path) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UsageError(f"{path}: {key}: expected a positive number of seconds")
    return float(value)
