"""Test helpers: a round-trip-counting redis-py connection, a private ``redis-server``
the tests can kill and restart, and an executor that dispatches nothing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

from task_ferry.executors.base import BaseExecutor


class CountingConnection(redis.Connection):
    """Counts round trips: one per ``send_packed_command`` (a pipeline sends all its
    commands in one call, then reads the replies). The connection handshake
    (``SELECT``, ``CLIENT SETINFO``, ...) is not counted: it happens once per
    connection, not per operation."""

    round_trips = 0
    _lock = threading.Lock()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._handshaking = False

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls.round_trips = 0

    def _handshake(self, connect, *args, **kwargs):
        outer = self._handshaking
        self._handshaking = True
        try:
            return connect(*args, **kwargs)
        finally:
            self._handshaking = outer

    def connect(self, *args, **kwargs):
        return self._handshake(super().connect, *args, **kwargs)

    if hasattr(redis.Connection, "connect_check_health"):  # redis-py >= 6 connects from inside sends

        def connect_check_health(self, *args, **kwargs):
            return self._handshake(super().connect_check_health, *args, **kwargs)

    def send_packed_command(self, command, *args, **kwargs):
        if not self._handshaking:
            with CountingConnection._lock:
                CountingConnection.round_trips += 1
        return super().send_packed_command(command, *args, **kwargs)


class ParkingExecutor(BaseExecutor):
    """Accepts every dispatch and runs nothing: jobs stay pending until a test runs
    them with ``run_job`` (in a thread of its choosing)."""

    supports_defer_on_commit = True
    out_of_process = True

    def submit(self, dispatch):
        return None


PARKING = "ferry_redis_testproject.support.ParkingExecutor"

#: KEY_PREFIX of the stores under test (the settings use it too).
TEST_PREFIX = "ferry_redis_test:"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` on a free loopback port (and a unix socket), with no
    persistence, so a test can kill it and start it again on the same port.

    ``tls=True`` serves TLS only on that port (a self-signed certificate for
    127.0.0.1 is made with ``openssl``; ``ca_file`` is its path).
    ``sentinel_for=server`` runs a Sentinel that monitors ``server`` as ``mymaster``."""

    def __init__(self, *, tls: bool = False, sentinel_for: RedisServer | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed; these tests start their own. "
                "Install it with `apt-get install redis-server`."
            )
        self.binary = binary
        self.tls = tls
        self.sentinel_for = sentinel_for
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ferry-redis-"))
        self.socket_path = self.dir / "redis.sock"
        self.ca_file = self.dir / "cert.pem"
        self.proc: subprocess.Popen | None = None
        if tls:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-keyout", str(self.dir / "key.pem"), "-out", str(self.ca_file),
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True,
            )  # fmt: skip

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        common = ["--bind", "127.0.0.1", "--dir", str(self.dir)]
        if self.sentinel_for is not None:
            config = self.dir / "sentinel.conf"  # Sentinel rewrites its config file: give it its own
            config.write_text(f"sentinel monitor mymaster 127.0.0.1 {self.sentinel_for.port} 1\n")
            return [self.binary, str(config), "--sentinel", "--port", str(self.port), *common]
        command = [self.binary, *common, "--save", "", "--appendonly", "no"]
        command += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        if self.tls:
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            command += ["--tls-cert-file", str(self.ca_file), "--tls-key-file", str(self.dir / "key.pem")]
            command += ["--tls-ca-cert-file", str(self.ca_file)]
        else:
            command += ["--port", str(self.port)]
        return command

    def start(self) -> None:
        command = self._command()
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.sentinel_for is not None:
            client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.2)
        else:  # the unix socket answers whether or not the port speaks TLS
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start: {' '.join(command)}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the server vanishes as in a crash, open connections break."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
