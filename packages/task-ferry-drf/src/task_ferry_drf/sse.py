"""``GET /<id>/events/``: a job's progress as server-sent events, until it ends.

Wire format (``text/event-stream``)::

    retry: 3000

    event: progress
    data: {"id": 17, "state": "started", "progress_percentage": 43, ...}

    : keep-alive

    event: end
    data: {"id": 17, "state": "finished", "progress_percentage": 100, ...}

Each ``data`` is the job as ``GET /`` lists it (:func:`task_ferry_drf.live.summary`),
by the same live rule. A ``progress`` event is sent when that changes; ``end``
(from the database row) when the job has ended, and the stream closes. A
job that has already ended gets its ``end`` event at once.

How changes are noticed:

* under WSGI, with a store that has a live channel (``supports_subscribe``, e.g.
  the ``redis`` store): pushed snapshots, no polling. Every end is announced on
  the channel (the runner's, and core's cancel of a pending job). The
  subscription is renewed every ``SSE_KEEPALIVE`` seconds, and the database row
  is read then too, so an end whose announcement was lost (the store was down)
  is still seen;
* otherwise, and always under ASGI: the store and the row are read every
  ``SSE_POLL_INTERVAL`` seconds. Under ASGI the stream is an async iterator
  that awaits between reads, so no thread is blocked while it waits (the reads
  run on the request's sync thread, idle in between; the store's ``subscribe``
  is a blocking iterator and would block one per stream).

A keep-alive comment goes out after ``SSE_KEEPALIVE`` seconds without an
event; writing it is also how a WSGI server finds out that a client has gone.
A client that disconnects closes the response, which closes the generator
(and with it the store subscription); under ASGI Django cancels the stream
as soon as the disconnect arrives. After ``SSE_MAX_DURATION`` seconds the
stream closes and an ``EventSource`` reconnects by itself.

Serve the stream with a server that does not give one worker to one request
for its whole life: gunicorn ``-k gthread`` (or gevent), uvicorn/daphne, or
``runserver``; exclude it from ``GZipMiddleware``, which buffers the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing

from asgiref.sync import sync_to_async
from rest_framework.utils.encoders import JSONEncoder

from task_ferry.conf import get_progress_store
from task_ferry.models import Job
from task_ferry.protocols import Snapshot
from task_ferry.states import JOB_STATES_ENDED

from . import conf
from .live import SUMMARY_COLUMNS, live_of, read_snapshots, summary

logger = logging.getLogger("task_ferry_drf")

RETRY_MS = 3000
KEEPALIVE = b": keep-alive\n\n"

_open = 0
_open_lock = threading.Lock()


def open_streams() -> int:
    """Event streams open in this process (reported by the health endpoint)."""
    return _open


def _track(delta: int) -> None:
    global _open
    with _open_lock:
        _open += delta


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, cls=JSONEncoder, separators=(',', ':'))}\n\n".encode()


class _Watch:
    """What both drivers share: read a job, decide which events to send."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.row: dict | None = None
        self.sent: dict | None = None
        self.last_write = time.monotonic()
        self.deadline = self.last_write + float(conf.get("SSE_MAX_DURATION"))
        self.keepalive = float(conf.get("SSE_KEEPALIVE"))
        self.poll = float(conf.get("SSE_POLL_INTERVAL"))

    def read(self) -> Snapshot | None:
        """Store first, then the row (see :mod:`task_ferry_drf.live`). Sets ``self.row``
        (None if the job was deleted)."""
        snap = read_snapshots([self.job_id]).get(self.job_id)
        self.row = Job._base_manager.filter(pk=self.job_id).values(*SUMMARY_COLUMNS).first()
        return snap

    def events(self, snap: Snapshot | None) -> tuple[list[bytes], bool]:
        """Events for the current row and ``snap``, and whether the stream is done."""
        if self.row is None:
            return [], True  # deleted meanwhile: a reconnecting client gets a 404
        data = summary(self.row, live_of(self.row, snap))
        if self.row["state"] in JOB_STATES_ENDED:
            return [self._wrote(_event("end", data))], True
        if data != self.sent:
            self.sent = data
            return [self._wrote(_event("progress", data))], False
        return [], False

    def pushed(self, snap: Snapshot) -> list[bytes]:
        """Events for a snapshot pushed by the store's live channel (row as last read)."""
        out, _ = self.events(snap)
        return out

    def idle_ping(self) -> list[bytes]:
        if time.monotonic() - self.last_write >= self.keepalive:
            return [self._wrote(KEEPALIVE)]
        return []

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def _wrote(self, chunk: bytes) -> bytes:
        self.last_write = time.monotonic()
        return chunk


def _announces_end(snap: Snapshot) -> bool:
    # An ended state or a cancel request: the database row decides what happened.
    return snap.state in JOB_STATES_ENDED or snap.cancel_requested


def stream(job_id: int) -> Iterator[bytes]:
    """The event stream for WSGI servers (a blocking generator)."""
    _track(1)
    try:
        watch = _Watch(job_id)
        store = get_progress_store()
        yield f"retry: {RETRY_MS}\n\n".encode()
        while True:
            chunks, done = watch.events(watch.read())
            yield from chunks
            if done or watch.expired():
                return
            yield from watch.idle_ping()
            if getattr(store, "supports_subscribe", False):
                yield from _follow(store, watch)
            else:
                time.sleep(watch.poll)
    finally:
        _track(-1)


def _follow(store, watch: _Watch) -> Iterator[bytes]:
    """Relay pushed snapshots for up to ``SSE_KEEPALIVE`` seconds, then hand back to the
    caller's database check. A store error falls back to one poll interval."""
    started = time.monotonic()
    try:
        # closing(): a client that leaves while we wait here closes the subscription too.
        with closing(store.subscribe(watch.job_id, watch.keepalive)) as pushed:
            for snap in pushed:
                if _announces_end(snap):
                    return
                yield from watch.pushed(snap)
                if time.monotonic() - started >= watch.keepalive or watch.expired():
                    return
                yield from watch.idle_ping()
    except GeneratorExit:
        raise
    except Exception as exc:
        logger.warning("task-ferry-drf: live channel of job %s failed (%s); polling instead.", watch.job_id, exc)
        time.sleep(watch.poll)


async def astream(job_id: int) -> AsyncIterator[bytes]:
    """The event stream for ASGI servers: polls, awaiting between reads (no thread blocked)."""
    _track(1)
    try:
        watch = _Watch(job_id)
        read = sync_to_async(watch.read)
        yield f"retry: {RETRY_MS}\n\n".encode()
        while True:
            chunks, done = watch.events(await read())
            for chunk in chunks:
                yield chunk
            if done or watch.expired():
                return
            for chunk in watch.idle_ping():
                yield chunk
            await asyncio.sleep(watch.poll)
    finally:
        _track(-1)
