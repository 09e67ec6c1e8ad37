"""The Celery application both sides use: JSON only, late acknowledgement, one chunk at a time.

``celery -A fleetbr.distributed.app inspect active`` (and Flower) find the app here: it is built
on first use from the distributed settings (:mod:`.config`)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from fleetbr.distributed.config import Settings, load_settings

CHUNK_TASK = "fleetbr.chunk"
RESULT_EXPIRES = 7 * 24 * 3600  # seconds a chunk's result stays in Redis


def queue_of(site: str) -> str:
    """The queue a site's workers consume."""
    return f"fleetbr.{site}"


def make_app(settings: Settings) -> Celery:
    """A Celery app on ``settings.broker`` (also the result backend)."""
    app = Celery("fleetbr", set_as_current=False)
    # an unacknowledged chunk of a lost worker goes back to the queue once visibility_timeout
    # has passed: sweep for such chunks often enough to notice (kombu's default: ~100 s)
    sweep = max(1.0, min(10.0, settings.visibility_timeout / 4))
    # the sweep takes a Redis lock that expires after unacked_mutex_expire (kombu: 300 s): a
    # worker SIGKILLed while it held it would hold every other worker's sweep back that long
    transport = {"visibility_timeout": settings.visibility_timeout,
                 "unacked_restore_interval": sweep, "unacked_restore_throttle": 1,
                 "unacked_mutex_expire": max(5, round(3 * sweep))}  # fmt: skip
    app.conf.update(
        broker_url=settings.broker, result_backend=settings.broker,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_accept_content=["json"], event_serializer="json",
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        broker_transport_options=transport, result_backend_transport_options=transport,
        task_track_started=True, result_expires=RESULT_EXPIRES,
        worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
        task_default_queue="fleetbr.default", worker_send_task_events=True,
    )  # fmt: skip
    app.task(name=CHUNK_TASK, bind=True)(_chunk)
    return app


def _chunk(task: Any, body: object) -> dict[str, Any]:
    """The chunk task: see :func:`fleetbr.distributed.worker.handle`."""
    from fleetbr.distributed.worker import handle  # noqa: PLC0415 (the worker side only)

    return handle(body, redelivered=bool(task.request.delivery_info.get("redelivered")))


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``app``: built once from the settings (for ``celery -A``)."""
    global _app  # noqa: PLW0603 (one app per process, built when first asked for)
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = make_app(load_settings())
    return _app
