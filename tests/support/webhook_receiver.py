"""A real HTTP receiver of webhooks on loopback, for tests and benchmarks.

It runs `http.server` in a thread of the test process on a free port and
keeps every request it got (time, headers, body). What it answers is decided
by `answer(request, attempt)`, where `attempt` counts the requests carrying
that delivery id (1 for the first), so a test can fail the first N attempts,
answer 429 with Retry-After, or 410. `hang` makes it accept connections and
never answer: a dead receiver.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.launch import HOST
from tests.support.polling import eventually


@dataclass(frozen=True)
class Received:
    at: float  # time.time()
    headers: dict[str, str]
    body: bytes
    attempt: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers["questline-delivery-id"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Answering = Callable[[Received], Answer]


def always_ok(_request: Received) -> Answer:
    return Answer()


class Receiver:
    def __init__(self, port: int | None = None, answer: Answering = always_ok) -> None:
        #: 0 until `start` binds a free one, unless given.
        self.port = port or 0
        self.answer = answer
        self.hang = threading.Event()
        self.received: list[Received] = []
        #: Requests left without an answer while `hang` was set.
        self.hung = 0
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hooks"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.hang.is_set():
                    with receiver._lock:
                        receiver.hung += 1
                    receiver._released.wait(60)
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    delivery = headers.get("questline-delivery-id", "")
                    attempt = receiver._attempts[delivery] = receiver._attempts.get(delivery, 0) + 1
                    request = Received(time.time(), headers, body, attempt)
                    receiver.received.append(request)
                answer = receiver.answer(request)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self.port = self._server.server_address[1]  # the kernel's pick when 0: no race
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def deliveries(self) -> dict[str, list[Received]]:
        """Requests by delivery id."""
        with self._lock:
            found: dict[str, list[Received]] = {}
            for request in self.received:
                found.setdefault(request.delivery_id, []).append(request)
            return found

    def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """Poll until `condition(requests so far)` holds; fail after `timeout` seconds."""
        return eventually(self.snapshot, condition, "the receiver's expected requests", timeout)

    def snapshot(self) -> list[Received]:
        """The requests received so far."""
        with self._lock:
            return list(self.received)


@contextmanager
def receiving(answer: Answering = always_ok, port: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver(port, answer)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
