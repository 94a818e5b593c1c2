"""A Redis that stops answering without closing its sockets (paused with
SIGSTOP, as an overloaded or partitioned server would look) cannot hang the
service: under load, every request fails with STORE_UNAVAILABLE within the
deadline, /readyz says 503, and once Redis answers again (SIGCONT) the
service recovers by itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from app.launch import Server, redis_process, running_servers
from tests.support.graphql_client import API_KEY, production_env

#: The store deadline of the server under test (QUESTLINE_STORE_TIMEOUT).
DEADLINE = 1.0
#: Waiting for a free pooled connection and then the command may each take a deadline.
WORST = 2 * DEADLINE + 1.0
#: Requests per second while Redis is paused, and how long it stays paused.
RATE, PAUSE = 50, 6.0
RECORD = """mutation($event: EventInput!) { recordEvent(event: $event) { eventId } }"""


@dataclass
class Outcome:
    started: float
    seconds: float
    codes: list[str] = field(default_factory=list)
    retryable: list[bool] = field(default_factory=list)


@pytest.fixture
def paused_redis() -> Iterator[tuple[str, int]]:
    """A redis-server of this test alone: pausing the shared one would stall others."""
    with redis_process() as (url, process):
        yield url, process.pid


async def record(client: httpx.AsyncClient, server: Server, number: int) -> Outcome:
    event = {"id": f"e{number}", "playerId": f"p{number % 20}", "type": "purchase"}
    started = time.monotonic()
    response = await client.post(
        f"{server.url}/graphql",
        json={"query": RECORD, "variables": {"event": event}},
        headers={"authorization": f"Bearer {API_KEY}"},
    )
    errors = json.loads(response.content).get("errors") or []
    return Outcome(
        started,
        time.monotonic() - started,
        [error["extensions"]["code"] for error in errors],
        [error["extensions"]["retryable"] for error in errors],
    )


async def load(
    client: httpx.AsyncClient, server: Server, seconds: float, first: int
) -> list[Outcome]:
    """RATE requests a second for `seconds`, each on its own (none waits for another)."""
    tasks = []
    for number in range(int(seconds * RATE)):
        tasks.append(asyncio.create_task(record(client, server, first + number)))
        await asyncio.sleep(1 / RATE)
    return list(await asyncio.gather(*tasks))


async def test_a_paused_redis_fails_requests_within_the_deadline_and_the_service_recovers(
    paused_redis: tuple[str, int], tmp_path: Path
) -> None:
    url, pid = paused_redis
    env = production_env(
        tmp_path, QUESTLINE_STORE_URL=url, QUESTLINE_STORE_TIMEOUT=f"{int(DEADLINE * 1000)}ms"
    )
    with running_servers([env], tmp_path) as (server,):
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
        async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as client:
            before = await load(client, server, 1.0, 0)
            assert all(not outcome.codes for outcome in before)

            paused_at = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            try:
                during, ready = await asyncio.gather(
                    load(client, server, PAUSE - WORST, 10_000),
                    client.get(f"{server.url}/readyz"),
                )
            finally:
                os.kill(pid, signal.SIGCONT)
            resumed_at = time.monotonic()

            assert ready.status_code == 503
            assert "did not answer within 1s" in ready.json()["reason"]
            slowest = max(outcome.seconds for outcome in during)
            assert slowest < WORST, f"a request took {slowest:.2f}s while Redis was paused"
            assert all(outcome.codes == ["STORE_UNAVAILABLE"] for outcome in during)
            assert all(outcome.retryable == [True] for outcome in during)

            # Recovery by itself: within a few deadlines every request succeeds again.
            deadline = time.monotonic() + 5 * DEADLINE
            while True:
                after = await load(client, server, 0.5, 20_000 + int(time.monotonic() * 1000))
                if all(not outcome.codes for outcome in after):
                    break
                assert time.monotonic() < deadline, "the service did not recover"
            recovered_in = time.monotonic() - resumed_at
            assert (await client.get(f"{server.url}/readyz")).status_code == 200
            assert max(outcome.seconds for outcome in after) < DEADLINE
            print(
                f"paused {resumed_at - paused_at:.1f}s: {len(during)} requests, "
                f"all STORE_UNAVAILABLE, slowest {slowest:.2f}s; "
                f"recovered {recovered_in:.2f}s after SIGCONT"
            )
        assert "Traceback" not in server.log()
