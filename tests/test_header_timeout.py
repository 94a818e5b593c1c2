"""Connections that never finish their request headers (slowloris) are closed
after QUESTLINE_HEADER_TIMEOUT, on a real uvicorn with Questline's protocol,
while well-behaved clients are served throughout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from app.launch import HOST, Server, running_servers
from tests.support.graphql_client import production_env

TIMEOUT = 2.0
SLOW_CLIENTS = 200
PROTOCOL = ["--http", "app.header_timeout:HeaderTimeoutProtocol"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("slowloris")
    env = production_env(folder, QUESTLINE_HEADER_TIMEOUT=f"{int(TIMEOUT * 1000)}ms")
    with running_servers([env], folder, PROTOCOL) as (server,):
        yield server


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed the connection (a read returns nothing)."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def test_connections_that_trickle_their_headers_are_closed_after_the_timeout(
    server: Server,
) -> None:
    slow = []
    # Each connection's deadline starts when it is accepted: from the first one on.
    started = time.monotonic()
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection((HOST, server.port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: questline\r\n")
        sock.setblocking(False)
        slow.append(sock)
    try:
        # A byte now and then does not buy more time; other clients are served meanwhile.
        while time.monotonic() - started < TIMEOUT * 0.5:
            for sock in slow:
                sock.send(b"X")
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
            time.sleep(0.2)
        assert not any(closed_by_server(sock) for sock in slow)
        time.sleep(max(0.0, started + TIMEOUT + 1.0 - time.monotonic()))
        assert all(closed_by_server(sock) for sock in slow)
    finally:
        for sock in slow:
            sock.close()
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_request(
    server: Server,
) -> None:
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: questline\r\n\r\n")
        response = b""
        while not response.endswith(b'{"status":"ok"}'):  # headers and body may come apart
            response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
        started = time.monotonic()
        assert sock.recv(4096) == b""
        assert time.monotonic() - started < TIMEOUT + 1.0


def test_a_request_that_finishes_its_headers_in_time_takes_its_time_for_the_body(
    server: Server,
) -> None:
    body = b'{"query": "{ __typename }"}'
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: questline\r\ncontent-type: application/json\r\n"
            + b"content-length: %d\r\n\r\n" % len(body)
        )
        time.sleep(TIMEOUT + 0.3)
        sock.sendall(body)
        assert sock.recv(4096).startswith(b"HTTP/1.1 ")
