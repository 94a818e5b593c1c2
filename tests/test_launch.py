"""Starting private services (app.launch): a redis-server or a Questline
server of our own, on a free port even when another process takes the port
found free before the child could bind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis

from app import launch
from tests.support.graphql_client import production_env


def test_private_redis_server_is_not_the_shared_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    assert not redis_url.startswith("redis://127.0.0.1:6379")
    client.close()


def test_a_missing_redis_server_fails_with_install_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUESTLINE_TEST_REDIS_SERVER", "/nonexistent/redis-server")
    with (
        pytest.raises(launch.ServiceUnavailable, match="apt-get install redis-server"),
        launch.redis_server(),
    ):
        pass


def test_redis_server_is_started_without_libfaketime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under libfaketime (the suite's date-proof runs) redis-server would hang at start."""
    faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    monkeypatch.setenv("LD_PRELOAD", f"/opt/libother.so:{faketime}")
    monkeypatch.setenv("FAKETIME", "@2026-12-24 23:30:00")
    monkeypatch.setenv("FAKETIME_SHARED", "/faketime_sem_1 /faketime_shm_1")
    environ = launch.real_time_environ()
    assert environ["LD_PRELOAD"] == "/opt/libother.so"
    assert not [name for name in environ if "FAKETIME" in name]
    monkeypatch.setenv("LD_PRELOAD", faketime)
    assert "LD_PRELOAD" not in launch.real_time_environ()


class AnswersEverything(BaseHTTPRequestHandler):
    """Another process's web server: 200 to any GET, /healthz included."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def taken_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A port a web server of someone else's listens on, which the launcher's
    next free-port pick returns anyway (as when it was taken just after)."""
    squatter = ThreadingHTTPServer((launch.HOST, 0), AnswersEverything)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    port = squatter.server_address[1]
    picks = iter([port])
    free_port = launch.free_port
    monkeypatch.setattr(launch, "free_port", lambda: next(picks, None) or free_port())
    try:
        yield port
    finally:
        squatter.shutdown()
        squatter.server_close()


def test_redis_server_moves_to_another_port_when_its_port_is_taken(taken_port: int) -> None:
    with launch.redis_process() as (url, process), redis.Redis.from_url(url) as client:
        assert f":{taken_port}/" not in url
        assert client.info("server")["process_id"] == process.pid


def test_a_server_moves_to_another_port_and_is_not_fooled_by_the_squatter(
    taken_port: int, tmp_path: Path
) -> None:
    with launch.running_servers([production_env(tmp_path)], tmp_path) as (server,):
        assert server.port != taken_port
        answer = httpx.get(f"{server.url}/healthz", trust_env=False)
        assert answer.json() == {"status": "ok"}
        assert answer.headers[launch.TOKEN_HEADER] == server.token
