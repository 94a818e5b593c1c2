"""Real Questline servers for end-to-end tests and benchmarks.

A server is `uvicorn --factory app.main:app_from_env` in a process of its own,
on a free loopback port, configured only by the `QUESTLINE_*` variables the
caller gives (the caller's own `QUESTLINE_*` variables are not inherited, so a
developer's shell cannot change what a test runs against). Its output goes to
a log file, and a server that dies or never answers `/healthz` raises
`ServerFailed` with that log in the message: a startup failure then reads as
the traceback the server printed, not as a connection refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from tests.services import free_port, repo_root

HOST = "127.0.0.1"
#: Long enough for migrations on a loaded two-core machine.
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class ServerFailed(RuntimeError):
    pass


@dataclass
class Server:
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def graphql_ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Return once /healthz answers 200 (uvicorn only listens after the
        lifespan started, so the store, feed and database are up by then)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise self.failure(f"exited with code {self.process.returncode}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise self.failure(f"did not answer /healthz within {timeout:.0f}s")

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
    port = free_port()
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("QUESTLINE_")
    }
    environ.update(env)
    if "FAKETIME" in environ:
        # Under libfaketime a "start at" clock restarts in every new process;
        # the server continues the test process's clock instead, so that the
        # tokens and event dates a test makes are as fresh for the server.
        environ["FAKETIME_DONT_RESET"] = "1"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        HOST,
        "--port",
        str(port),
        *uvicorn_args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=environ, cwd=repo_root(), stdout=log, stderr=subprocess.STDOUT
        )
    return Server(port=port, log_path=log_path, process=process)


def production_env(folder: Path, **overrides: str) -> dict[str, str]:
    """A production server's variables, on SQLite files in `folder`, the test program."""
    from tests.graphql_client import API_KEY, JWT_SECRET, PROGRAM

    return {
        "QUESTLINE_ENV": "production",
        "QUESTLINE_STORE_URL": f"sqlite:///{folder / 'store.db'}",
        "QUESTLINE_DATABASE_URL": f"sqlite:///{folder / 'history.db'}",
        "QUESTLINE_MIGRATE_ON_START": "true",
        "QUESTLINE_SEED_PATH": str(PROGRAM.resolve()),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
        **overrides,
    }


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
