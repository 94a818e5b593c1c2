"""A subscriber that stops reading cannot make the server's memory grow: when
it falls QUESTLINE_SUBSCRIBER_BACKLOG deliveries behind, its WebSocket is
closed with 4413 ("too slow: subscribe again with `since`"), and subscribing
again from the last unlock it received delivers the rest, nothing lost."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.launch import Server, running_servers
from tests.support.graphql_client import API_KEY, production_env

#: Unlocks produced while the client does not read: each step reaches the next
#: tier of every milestone, so an event unlocks MILESTONES of them.
MILESTONES, TIERS = 20, 150
UNLOCKS = MILESTONES * TIERS
BACKLOG = 50
#: Events per call: a burst smaller than the backlog, so only not reading overflows it.
BATCH = 10
PROTOCOL: Any = "graphql-transport-ws"
#: Fields asked many times over, as a rich client screen would: messages of about
#: 2 KB fill the socket buffers within the test's unlocks.
SUBSCRIBE = (
    'subscription($since: String) { unlocks(playerId: "walker", since: $since) { id key '
    + " ".join(f"k{n}: key" for n in range(60))
    + " } }"
)
RECORD = "mutation($events: [EventInput!]!) { recordEvents(events: $events) { eventId } }"


def steps_program(folder: Path) -> Path:
    """A program where every step unlocks the next tier of one long milestone."""
    tiers = [{"at": n} for n in range(1, TIERS + 1)]
    program = {
        "program": {"name": "Steps"},
        "metrics": {"steps": {"event": "step"}},
        "milestones": {f"m{k}": {"metric": "steps", "tiers": tiers} for k in range(MILESTONES)},
    }
    folder.mkdir()
    (folder / "program.yaml").write_text(yaml.safe_dump(program))
    return folder


async def subscribe(server: Server, since: str | None, stalled: bool = False) -> ClientConnection:
    """A subscription; a stalled one keeps a tiny receive buffer and queue, so
    that not reading it soon stops the server's writes, as a phone in a tunnel."""
    sock = socket.socket()
    if stalled:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    ws = await connect(
        server.graphql_ws_url,
        subprotocols=[PROTOCOL],
        sock=sock,
        max_queue=1 if stalled else 16,
        compression=None,  # repeated fields would compress to nothing on the wire
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"token": API_KEY}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": SUBSCRIBE, "variables": {"since": since}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def read_until_closed_or(ws: ClientConnection, keys: list[str], wanted: int) -> str:
    """Append pushed unlock keys; return the last unlock id. Stops at `wanted` keys
    or when the server closes the socket."""
    last = ""
    try:
        while len(keys) < wanted:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert message["type"] == "next", message
            unlock = message["payload"]["data"]["unlocks"]
            keys.append(unlock["key"])
            last = unlock["id"]
    except ConnectionClosed:
        pass
    return last


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


async def test_a_subscriber_that_stops_reading_is_closed_as_too_slow_and_resumes_losslessly(
    tmp_path: Path,
) -> None:
    env = production_env(
        tmp_path,
        QUESTLINE_SEED_PATH=str(steps_program(tmp_path / "seed")),
        QUESTLINE_SUBSCRIBER_BACKLOG=str(BACKLOG),
    )
    with running_servers([env], tmp_path) as (server,):
        async with httpx.AsyncClient(trust_env=False, timeout=60) as http:
            # The client reads nothing: past a few messages, it stops reading its socket.
            stalled = await subscribe(server, None, stalled=True)
            await asyncio.sleep(0.5)  # the subscription is registered
            before = rss_kib(server.process.pid)
            for first in range(0, TIERS, BATCH):
                events = [
                    {"id": f"s{n}", "playerId": "walker", "type": "step"}
                    for n in range(first, min(first + BATCH, TIERS))
                ]
                response = await http.post(
                    f"{server.url}/graphql",
                    json={"query": RECORD, "variables": {"events": events}},
                    headers={"authorization": f"Bearer {API_KEY}"},
                )
                assert "errors" not in response.json()
            grown = rss_kib(server.process.pid) - before

            keys: list[str] = []
            last = await read_until_closed_or(stalled, keys, UNLOCKS)
            assert stalled.close_code == 4413, (stalled.close_code, len(keys))
            assert stalled.close_reason.startswith("TOO_SLOW: subscribe again with since")
            assert 0 < len(keys) < UNLOCKS

            resumed = await subscribe(server, last)
            await read_until_closed_or(resumed, keys, UNLOCKS)
            await resumed.close()
            expected = {
                f"milestone:m{k}:{n}" for k in range(MILESTONES) for n in range(1, TIERS + 1)
            }
            assert len(keys) == UNLOCKS and set(keys) == expected  # each once: nothing lost
            print(f"server RSS grew {grown} KiB while {UNLOCKS} unlocks went unread")
            metrics = (await http.get(f"{server.url}/metrics")).text
            assert "questline_active_subscriptions 0.0" in metrics
