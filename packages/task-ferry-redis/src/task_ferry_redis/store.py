"""The ``redis`` progress store: redis-py directly, one round trip per flush.

Settings::

    TASK_FERRY = {
        "PROGRESS_STORE": {
            "BACKEND": "redis",
            "OPTIONS": {"URL": "redis://127.0.0.1:6379/0", "KEY_PREFIX": "myproject:ferry:"},
        },
    }

Round trips (each is one request/response exchange with the server):

============================  ======  ==========================================================
operation                     trips   commands
============================  ======  ==========================================================
``write`` (a runner flush)    1       pipeline: ``SET snapshot PX ttl``, ``GET cancel``, ``PUBLISH``
``read_many(ids)``            1       ``MGET`` of every snapshot and cancel key, whatever ``len(ids)``
``request_cancel``            1       pipeline: ``SET cancel PX ttl``, ``PUBLISH``
``clear(job_id, final)``      1       pipeline: ``DEL`` both keys, ``PUBLISH final`` (if given)
``subscribe``                 2       ``SUBSCRIBE``, ``MGET`` of the current snapshot; then messages are pushed
============================  ======  ==========================================================

Pipelines are sent with ``transaction=False``: the three commands of a flush do
not need to be atomic, and ``MULTI``/``EXEC`` would add two commands for nothing.

Keys (``P`` is ``KEY_PREFIX``, default ``"task_ferry:"``): ``P job:<id>:progress``
holds the snapshot as compact JSON (``{"state","percentage","label","updated_at"}``),
``P job:<id>:cancel`` the cancel flag, and the channel ``P job:<id>:events`` carries
every snapshot written, the final one from :meth:`RedisProgressStore.clear`, and
``{"cancel_requested":true}`` from :meth:`RedisProgressStore.request_cancel`. Both
keys expire after ``TIMEOUT`` seconds, so a worker killed mid-job leaves nothing behind
for long.

Failure: every method raises redis-py's errors (``redis.ConnectionError``,
``redis.TimeoutError``) instead of hiding them; core's runner catches them around
flushes, logs one warning per outage and keeps the job running. The client this
store builds has short socket timeouts (1 s by default) and no retries, so a dead
or unreachable Redis costs a flush at most ``SOCKET_CONNECT_TIMEOUT`` /
``SOCKET_TIMEOUT`` and never stalls a job; the next flush is the retry.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterable, Iterator
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from task_ferry import PROTOCOL_VERSION
from task_ferry.plugins import checked_options
from task_ferry.protocols import Snapshot
from task_ferry.states import JOB_STARTED, JOB_STATES_ENDED

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_KEY_PREFIX = "task_ferry:"
DEFAULT_SOCKET_TIMEOUT = 1.0
DEFAULT_TIMEOUT = 3600

#: Every OPTIONS key the store accepts.
OPTION_NAMES = (
    "URL",
    "DB",
    "USERNAME",
    "PASSWORD",
    "KEY_PREFIX",
    "SOCKET_TIMEOUT",
    "SOCKET_CONNECT_TIMEOUT",
    "TIMEOUT",
    "CLIENT",
    "CONNECTION_KWARGS",
)
# OPTIONS that configure a connection this store builds; meaningless next to CLIENT.
_CONNECTION_OPTIONS = (
    "URL",
    "DB",
    "USERNAME",
    "PASSWORD",
    "SOCKET_TIMEOUT",
    "SOCKET_CONNECT_TIMEOUT",
    "CONNECTION_KWARGS",
)
# ConnectionPool arguments that URL and the named OPTIONS set; CONNECTION_KWARGS may not.
_NAMED_KWARGS = ("host", "port", "path", "db", "username", "password", "socket_timeout", "socket_connect_timeout")

_CANCEL_MESSAGE = b'{"cancel_requested":true}'


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}.")
    return value


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return parts._replace(netloc=netloc).geturl()
    except ValueError:
        pass
    return url


def _dumps(snapshot: Snapshot) -> bytes:
    return json.dumps(
        {
            "state": snapshot.state,
            "percentage": snapshot.percentage,
            "label": snapshot.label,
            "updated_at": snapshot.updated_at,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def _loads(job_id: int, raw: bytes | str | None, cancel: bool) -> Snapshot | None:
    data: dict = {}
    if raw is not None:
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}  # not ours (or truncated): treat as no snapshot rather than fail a whole list
        if not isinstance(data, dict):
            data = {}
    if not data and not cancel:
        return None
    updated = data.get("updated_at", 0.0)
    return Snapshot(
        job_id,
        str(data.get("state", JOB_STARTED)),
        int(data.get("percentage", 0)),
        str(data.get("label", "")),
        float(updated) if isinstance(updated, int | float) else 0.0,
        cancel,
    )


class RedisProgressStore:
    """Progress store on Redis through redis-py (see the module docstring for the wire format).

    OPTIONS (all optional):

    ``URL``
        ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS) or
        ``unix:///path/to/redis.sock?db=N``. Default ``redis://127.0.0.1:6379/0``.
        Query-string options of redis-py (``?ssl_cert_reqs=none`` ...) are honoured.
    ``DB`` / ``USERNAME`` / ``PASSWORD``
        Override the URL's database number and credentials.
    ``KEY_PREFIX``
        Prepended to every key and channel; default ``"task_ferry:"``. Give each
        project sharing one Redis its own.
    ``SOCKET_TIMEOUT`` / ``SOCKET_CONNECT_TIMEOUT``
        Seconds; default 1 each, so an unreachable Redis cannot stall a job.
    ``TIMEOUT``
        Seconds a snapshot and a cancel flag live; core fills it from
        ``PROGRESS_CACHE_TIMEOUT``. Default 3600.
    ``CLIENT``
        An existing ``redis.Redis`` (or a Sentinel ``master_for(...)`` client), or
        the dotted path to one; excludes the connection options above.
    ``CONNECTION_KWARGS``
        Extra keyword arguments for redis-py's ``ConnectionPool`` (for example
        ``ssl_ca_certs``, ``max_connections``, ``health_check_interval``).

    Unknown keys raise ``ValueError`` naming the accepted ones. The client is
    built on first use: constructing the store (as Django's checks do) never
    connects.
    """

    protocol_version = PROTOCOL_VERSION
    supports_cross_process = True
    supports_mid_transaction = True
    supports_subscribe = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        options = checked_options(options, OPTION_NAMES, "redis store")
        self.timeout = _positive_number("TIMEOUT", options.get("TIMEOUT", DEFAULT_TIMEOUT))
        self.key_prefix = options.get("KEY_PREFIX", DEFAULT_KEY_PREFIX)
        if not isinstance(self.key_prefix, str):
            raise ValueError(f"KEY_PREFIX must be a string, got {self.key_prefix!r}.")

        self._client_option = options.get("CLIENT")
        if self._client_option is not None:
            clashing = sorted(set(options) & set(_CONNECTION_OPTIONS))
            if clashing:
                raise ValueError(f"CLIENT brings its own connection settings; drop {clashing} or drop CLIENT.")
            if not isinstance(self._client_option, str) and not callable(
                getattr(self._client_option, "pipeline", None)
            ):
                raise ValueError(
                    f"CLIENT must be a redis.Redis instance or a dotted path to one, got {self._client_option!r}."
                )

        self.url = options.get("URL", DEFAULT_URL)
        if not isinstance(self.url, str):
            raise ValueError(f"URL must be a string, got {self.url!r}.")
        db = options.get("DB")
        if db is not None and (isinstance(db, bool) or not isinstance(db, int) or db < 0):
            raise ValueError(f"DB must be a non-negative integer, got {db!r}.")
        extra = options.get("CONNECTION_KWARGS", {})
        if not isinstance(extra, dict):
            raise ValueError(f"CONNECTION_KWARGS must be a dict, got {type(extra).__name__}.")
        overlap = sorted(set(extra) & set(_NAMED_KWARGS))
        if overlap:
            raise ValueError(f"CONNECTION_KWARGS must not set {overlap}; use URL and the named OPTIONS.")
        self._overrides: dict[str, Any] = {
            "socket_timeout": _positive_number("SOCKET_TIMEOUT", options.get("SOCKET_TIMEOUT", DEFAULT_SOCKET_TIMEOUT)),
            "socket_connect_timeout": _positive_number(
                "SOCKET_CONNECT_TIMEOUT", options.get("SOCKET_CONNECT_TIMEOUT", DEFAULT_SOCKET_TIMEOUT)
            ),
        }
        for name in ("DB", "USERNAME", "PASSWORD"):
            if options.get(name) is not None:
                self._overrides[name.lower()] = options[name]
        self._extra = dict(extra)
        self._explicit_timeouts = {k for k in ("SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT") if k in options}

        self._client = None
        self._owns_client = False
        self._lock = threading.Lock()

    # ── Connection ─────────────────────────────────────────────────────────────

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.ConnectionPool`` built from URL and OPTIONS.

        Precedence: named OPTIONS over the URL (its path, credentials and query
        string) over the store's defaults. Raises ``ValueError`` for a URL
        redis-py cannot parse."""
        from redis.connection import parse_url

        try:
            from_url = parse_url(self.url)
        except ValueError as exc:
            raise ValueError(f"URL {_redact(self.url)!r} is not a Redis URL: {exc}") from None
        kwargs = dict(self._overrides)
        for key in ("socket_timeout", "socket_connect_timeout"):
            # A timeout in the URL's query string wins over our default, not over an explicit OPTION.
            option = key.upper()
            if key in from_url and option not in self._explicit_timeouts:
                kwargs[key] = from_url[key]
        kwargs = {**from_url, **kwargs, **self._extra}
        return kwargs

    @property
    def client(self):
        """The ``redis.Redis`` client, built (or imported) on first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client, self._owns_client = self._make_client()
                client = self._client
        return client

    def _make_client(self):
        import redis

        option = self._client_option
        if isinstance(option, str):
            module_path, _, attr = option.rpartition(".")
            try:
                return getattr(import_module(module_path), attr), False
            except (ImportError, AttributeError, ValueError) as exc:
                raise ValueError(f"CLIENT {option!r} cannot be imported: {exc}") from exc
        if option is not None:
            return option, False
        # No retries (the pool's default when built directly): the runner's next flush is the retry,
        # and a retry loop against a dead server would stall the job's own thread.
        pool = redis.ConnectionPool(**self.connection_kwargs())
        return redis.Redis(connection_pool=pool), True

    def close(self) -> None:
        """Disconnect the pool this store built (a ``CLIENT`` given in OPTIONS is left alone)."""
        with self._lock:
            client, owned = self._client, self._owns_client
            self._client, self._owns_client = None, False
        if client is not None and owned:
            client.connection_pool.disconnect()

    # ── Keys ───────────────────────────────────────────────────────────────────

    def key(self, job_id: int) -> str:
        return f"{self.key_prefix}job:{job_id}:progress"

    def cancel_key(self, job_id: int) -> str:
        return f"{self.key_prefix}job:{job_id}:cancel"

    def channel(self, job_id: int) -> str:
        return f"{self.key_prefix}job:{job_id}:events"

    # ── Protocol ───────────────────────────────────────────────────────────────

    def write(self, snapshot: Snapshot) -> bool:
        payload = _dumps(snapshot)
        job_id = snapshot.job_id
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key(job_id), payload, px=int(self.timeout * 1000))
        pipe.get(self.cancel_key(job_id))
        pipe.publish(self.channel(job_id), payload)
        _, cancel, _ = pipe.execute()
        return bool(cancel)

    def read_many(self, job_ids: Iterable[int]) -> dict[int, Snapshot]:
        ids = list(dict.fromkeys(int(i) for i in job_ids))
        if not ids:
            return {}
        values = self.client.mget([self.key(i) for i in ids] + [self.cancel_key(i) for i in ids])
        out = {}
        for job_id, raw, cancel in zip(ids, values[: len(ids)], values[len(ids) :]):
            snap = _loads(job_id, raw, bool(cancel))
            if snap is not None:
                out[job_id] = snap
        return out

    def request_cancel(self, job_id: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.cancel_key(job_id), 1, px=int(self.timeout * 1000))
        pipe.publish(self.channel(job_id), _CANCEL_MESSAGE)
        pipe.execute()

    def clear(self, job_id: int, final: Snapshot | None = None) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.key(job_id), self.cancel_key(job_id))
        if final is not None:
            pipe.publish(self.channel(job_id), _dumps(final))
        pipe.execute()

    def subscribe(self, job_id: int, timeout: float) -> Iterator[Snapshot]:
        """Yield the job's current snapshot (if any), then each one written, until a
        snapshot with an ended state arrives (``clear(job_id, final)`` publishes it)
        or ``timeout`` seconds pass without a message.

        A cancel request is yielded as the last known snapshot with
        ``cancel_requested=True``, and later snapshots keep that flag. The
        subscription is confirmed before the current snapshot is read, so no
        write falls between the two (one written meanwhile may come twice)."""
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.channel(job_id))
            deadline = time.monotonic() + timeout
            while True:  # wait for the server's confirmation
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "subscribe":
                    break
            last = self.read_many([job_id]).get(job_id)
            cancelled = last is not None and last.cancel_requested
            if last is not None:
                yield last
                if last.state in JOB_STATES_ENDED:
                    return
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                message = pubsub.get_message(timeout=remaining)
                if message is None or message["type"] != "message":
                    continue
                deadline = time.monotonic() + timeout
                data = message["data"]
                if (data.encode() if isinstance(data, str) else data) == _CANCEL_MESSAGE:
                    cancelled = True
                    base = last or Snapshot(job_id, JOB_STARTED, 0, "", 0.0)
                    snap = dataclasses.replace(base, updated_at=time.time(), cancel_requested=True)
                else:
                    snap = _loads(job_id, data, cancelled)
                    if snap is None:
                        continue
                last = snap
                yield snap
                if snap.state in JOB_STATES_ENDED:
                    return
        finally:
            pubsub.close()

    def check(self) -> list:
        """Configuration errors, found without connecting to Redis."""
        from django.core.checks import Error

        if isinstance(self._client_option, str):
            try:
                self._make_client()
            except ValueError as exc:
                return [
                    Error(
                        f"The redis progress store's {exc}",
                        hint='Set TASK_FERRY["PROGRESS_STORE"]["OPTIONS"]["CLIENT"] to the dotted path of a '
                        "redis.Redis instance.",
                        id="task_ferry_redis.E002",
                    )
                ]
            return []
        if self._client_option is not None:
            return []
        try:
            self.connection_kwargs()
        except ValueError as exc:
            return [
                Error(
                    f"The redis progress store's {exc}",
                    hint="Use redis://[user:password@]host:port/db, rediss://... (TLS) or unix:///path/to/redis.sock.",
                    id="task_ferry_redis.E001",
                )
            ]
        return []
