"""Start a local redis-server or Questline server as a child process, on a
free loopback port, and stop it: what the tests and the benchmarks run.

Neither service can be handed a listening socket (redis-server has no such
option; uvicorn's `--fd` labels the socket a Unix one, so its connections would
lose TCP_NODELAY), so each is given a port found free a moment before, which
another process may take meanwhile. A launch therefore counts a child as up
only once it is the one listening (redis-server logged that it accepts
connections and still runs; a server answered `/healthz` with this launch's own
token header), and starts it again on another free port when it exited because
its port was taken.

A Questline server is `uvicorn --factory app.main:app_from_env`, configured
only by the `QUESTLINE_*` variables the caller gives (the caller's own are not
inherited, so a developer's shell cannot change what runs). Its output goes to
a log file, and a server that dies or never answers raises `ServerFailed` with
that log in the message: a startup failure reads as the traceback the server
printed, not as a connection refused.

redis-server runs without libfaketime (see `real_time_environ`) in a throwaway
directory, never on the shared 6379.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
#: Tries on a fresh port when the one found free was taken before the child bound it.
ATTEMPTS = 5
#: Long enough for migrations on a loaded two-core machine.
STARTUP_TIMEOUT = 30.0
REDIS_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
#: What both redis-server and uvicorn log when their port is taken.
PORT_TAKEN = "address already in use"
#: The response header by which a server proves it is the one this launch started.
TOKEN_HEADER = "x-questline-launch"
REDIS_HELP = (
    "a private Redis needs a `redis-server` binary (Redis 6.2 or newer). Install it with "
    "`sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), "
    "or point QUESTLINE_TEST_REDIS_SERVER at one."
)
_ROOT = Path(__file__).resolve().parent.parent


class ServiceUnavailable(RuntimeError):
    """A service could not be started; the message says how to install it or why."""


class ServerFailed(RuntimeError):
    """A Questline server died or never answered; the message holds its log."""


def free_port() -> int:
    """A loopback port free right now (another process may take it: see the module doc)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def real_time_environ() -> dict[str, str]:
    """This process's environment without libfaketime.

    The suite also runs under libfaketime (`.ci/run`) to prove it does not
    depend on today's date; preloaded into redis-server, libfaketime clashes
    with its allocator and the server hangs at start. So Redis keeps real time,
    and a test comparing its expiries with the test's clock reads Redis's TIME.
    """
    environ = {name: value for name, value in os.environ.items() if "FAKETIME" not in name}
    preload = [
        lib
        for lib in environ.pop("LD_PRELOAD", "").replace(":", " ").split()
        if "faketime" not in lib
    ]
    if preload:
        environ["LD_PRELOAD"] = " ".join(preload)
    return environ


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], timeout: float = REDIS_TIMEOUT
) -> None:
    """Return once something accepts connections on `port`, while `process` runs
    (for a process started on a port of its own, such as a cluster node)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(
                f"{process.args!r} exited with code {process.returncode} before listening"
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable(f"{process.args!r} did not listen on port {port} within {timeout}s")


@contextmanager
def redis_server(durable: bool = False) -> Iterator[str]:
    """Start a throwaway redis-server on a free port; yield its URL. A durable
    one writes every command to its append-only file before answering."""
    with redis_process(durable) as (url, _):
        yield url


@contextmanager
def redis_process(durable: bool = False) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start a throwaway redis-server on a free port; yield its URL and process
    (to pause it with SIGSTOP, as a hung server would be)."""
    binary = shutil.which(os.environ.get("QUESTLINE_TEST_REDIS_SERVER") or "redis-server")
    if binary is None:
        raise ServiceUnavailable(REDIS_HELP)
    with tempfile.TemporaryDirectory(prefix="questline-redis-") as directory:
        port, process = _start_redis(binary, durable, Path(directory))
        try:
            yield f"redis://{HOST}:{port}/0", process
        finally:
            process.send_signal(signal.SIGCONT)  # a paused server cannot take SIGTERM
            process.terminate()
            process.wait(timeout=10)


def _start_redis(
    binary: str, durable: bool, directory: Path
) -> tuple[int, subprocess.Popen[bytes]]:
    """redis-server listening in `directory`, on another port while its port is taken."""
    for _ in range(ATTEMPTS):
        port = free_port()
        log = directory / f"redis-{port}.log"
        args = [
            binary,
            *("--port", str(port), "--bind", HOST, "--save", ""),
            *("--appendonly", "yes" if durable else "no", "--appendfsync", "always"),
            *("--dir", directory, "--logfile", log),
        ]
        process = subprocess.Popen(
            [str(arg) for arg in args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=directory,
            env=real_time_environ(),
        )
        if _redis_listens(process, log, port):
            return port, process
    raise ServiceUnavailable(f"redis-server found its port taken {ATTEMPTS} times in a row")


def _redis_listens(process: subprocess.Popen[bytes], log: Path, port: int) -> bool:
    """True once redis-server is ready (it binds first and exits when it cannot),
    False when it exited because its port was taken."""
    deadline = time.monotonic() + REDIS_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if process.poll() is not None:
            if PORT_TAKEN in text.lower():
                return False
            raise ServiceUnavailable(
                f"redis-server exited with code {process.returncode}; its log:\n{text[-2000:]}"
            )
        if "Ready to accept connections" in text:
            return True
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise ServiceUnavailable(f"redis-server did not listen on port {port} within {REDIS_TIMEOUT}s")


@dataclass
class Server:
    """A Questline server process; its `port` is final once `wait_until_healthy` returned."""

    env: dict[str, str]
    log_path: Path
    uvicorn_args: tuple[str, ...]
    factory: str
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    process: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self._launch()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def graphql_ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _launch(self) -> None:
        """Start uvicorn on a fresh free port, its output (over)writing the log."""
        self.port = free_port()
        command = [
            sys.executable,
            *("-m", "uvicorn", "--factory", self.factory, "--host", HOST, "--port", str(self.port)),
            *("--header", f"{TOKEN_HEADER}:{self.token}", *self.uvicorn_args),
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=self.env, cwd=_ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Return once this server answers /healthz (uvicorn only listens after the
        lifespan started, so the store, feed and database are up by then)."""
        deadline = time.monotonic() + timeout
        attempts = 1
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if attempts < ATTEMPTS and PORT_TAKEN in self.log().lower():
                    attempts += 1
                    self._launch()
                    continue
                raise self.failure(f"exited with code {self.process.returncode}")
            if self._answers():
                return
            time.sleep(0.05)
        raise self.failure(f"did not answer /healthz within {timeout:.0f}s")

    def _answers(self) -> bool:
        """Whether /healthz answers 200 with our token (not another process on our port)."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            return response.status == 200 and response.getheader(TOKEN_HEADER) == self.token
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def failure(self, what: str) -> ServerFailed:
        return ServerFailed(
            f"server on port {self.port} {what}; its log ({self.log_path}):\n{self.log()}"
        )

    def stop(self) -> None:
        """Terminate (uvicorn shuts down gracefully), kill if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    env: Mapping[str, str],
    log_path: Path,
    uvicorn_args: Sequence[str] = (),
    factory: str = "app.main:app_from_env",
) -> Server:
    """Launch a server without waiting for it; see `running_servers`.

    `uvicorn_args` are appended to the command line, e.g. `--no-access-log`
    for a benchmark, where logging every request would be measured too;
    `factory` is the app factory uvicorn calls (benchmarks add routes).
    """
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("QUESTLINE_")
    }
    environ.update(env)
    if "FAKETIME" in environ:
        # Under libfaketime a "start at" clock restarts in every new process;
        # the server continues the caller's clock instead, so that the tokens
        # and event dates a test makes are as fresh for the server.
        environ["FAKETIME_DONT_RESET"] = "1"
    return Server(environ, log_path, tuple(uvicorn_args), factory)


@contextmanager
def running_servers(
    envs: Sequence[Mapping[str, str]], log_dir: Path, uvicorn_args: Sequence[str] = ()
) -> Iterator[list[Server]]:
    """One healthy server per environment, started side by side, stopped on exit
    (even when starting one of them failed)."""
    servers: list[Server] = []
    try:
        for number, env in enumerate(envs):
            servers.append(start_server(env, log_dir / f"server-{number}.log", uvicorn_args))
        for server in servers:
            server.wait_until_healthy()
        yield servers
    finally:
        for server in servers:
            server.stop()
