"""Backfill end to end: a real server records a realistic journal on the example
program, the program is reloaded with a new metric (and a milestone and a
weekly challenge on it) and a new milestone on an existing metric, then
`backfill` gives players exactly what they already met, counted here
independently from the events sent; on both stores, through GraphQL and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from app import journal, program_metrics
from app.auth import issue_player_token
from app.backfill import backfill
from app.launch import Server, running_servers
from app.migrations import upgrade_database
from app.settings import Settings
from app.sql import make_database, writing
from engine.engine import Engine
from engine.events import Event
from engine.program.loader import load_program
from engine.store import store_from_url
from engine.unlocks import Unlock
from tests.support.graphql_client import API_KEY, JWT_SECRET
from tests.support.histories import (
    coffees_per_week,
    history,
    player_id,
    post,
    send,
    timezone_of,
    utc_now,
)
from tests.support.programs import SEED

PLAYERS = 30
EVENTS = 500

#: What the reload adds: a metric, a milestone and a weekly challenge on it, and
#: a milestone on a metric players have counted all along.
LATTES = """  lattes:
    description: Lattes bought.
    event: purchase
    where: {category: coffee, drink: latte}
"""
MILESTONES = """  latte-lover:
    name: Latte lover
    metric: lattes
    tiers:
      - {at: 1, reward: {points: 20}}
      - {at: 4, reward: {points: 40}}
  coffee-marathon:
    name: Coffee marathon
    metric: coffees
    tiers:
      - {at: 8, reward: {points: 25}}
"""
CHALLENGE = """  latte-week:
    name: Latte week
    every: week
    metric: lattes
    target: 2
    reward: {points: 15}
"""
POINTS = {
    "milestone:latte-lover:1": 20,
    "milestone:latte-lover:2": 40,
    "milestone:coffee-marathon:1": 25,
    "challenge:latte-week": 15,
    "challenge:barista-pick": 75,
}
BACKFILL = """mutation($dry: Boolean!) { backfill(dryRun: $dry) {
  dryRun metrics { metric events } rules { id name unlocks players } unlocks points
  unknownEvents } }"""
PLAYER = """query($id: ID!) { player(id: $id) {
  points { balance }
  milestones { milestone { id } value }
  unlocks(first: 100) { edges { node { key backfilled } } pageInfo { hasNextPage } } } }"""
RELOAD = "mutation { reloadProgram { version changed } }"
ALL_UNLOCKS = "subscription { allUnlocks { key kind playerId backfilled } }"
PROTOCOL = Subprotocol("graphql-transport-ws")


def is_latte(event: dict[str, Any]) -> bool:
    properties = event["properties"]
    return (
        event["type"] == "purchase"
        and properties["category"] == "coffee"
        and properties["drink"] == "latte"
    )


def is_coffee(event: dict[str, Any]) -> bool:
    return event["type"] == "purchase" and event["properties"]["category"] == "coffee"


def expected(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Rule -> the player of each unlock it owes, from the events alone."""
    lattes = Counter(e["playerId"] for e in events if is_latte(e))
    coffees = Counter(e["playerId"] for e in events if is_coffee(e))
    weeks: Counter[tuple[str, tuple[int, int]]] = Counter()
    for event in filter(is_latte, events):
        at = datetime.fromisoformat(event["occurredAt"]).astimezone(timezone_of(event["playerId"]))
        year, week, _ = at.isocalendar()
        weeks[(event["playerId"], (year, week))] += 1
    owed = {
        "milestone:latte-lover:1": sorted(p for p, n in lattes.items() if n >= 1),
        "milestone:latte-lover:2": sorted(p for p, n in lattes.items() if n >= 4),
        "milestone:coffee-marathon:1": sorted(p for p, n in coffees.items() if n >= 8),
        "challenge:latte-week": sorted(p for (p, _), n in weeks.items() if n >= 2),
    }
    return {rule: players for rule, players in owed.items() if players}


def barista_picks_pending(
    events: list[dict[str, Any]], held: dict[str, set[str]], now: datetime
) -> list[str]:
    """Players owed this week's Barista's pick by the claim pass, an existing
    rule: three different drinks this (local) week and both prerequisites now
    (a week of three coffees, ten coffees in all), yet not claimed, because the
    prerequisite came after the drinks (events are sent in no particular
    order); `held` is each player's unlock keys before the backfill. Whether
    any player is in that case depends on the day the test runs."""
    drinks: dict[str, set[str]] = {}
    coffees = Counter(e["playerId"] for e in events if is_coffee(e))
    weekly = coffees_per_week(events)
    three = {player for (player, _), count in weekly.items() if count >= 3}
    pending = []
    for event in events:
        if event["type"] == "purchase":
            local = datetime.fromisoformat(event["occurredAt"]).astimezone(
                timezone_of(event["playerId"])
            )
            today = now.astimezone(timezone_of(event["playerId"]))
            if local.isocalendar()[:2] == today.isocalendar()[:2]:
                drinks.setdefault(event["playerId"], set()).add(event["properties"]["drink"])
    for player, tried in drinks.items():
        today = now.astimezone(timezone_of(player)).date()
        key = f"challenge:barista-pick:week:{(today - timedelta(days=today.weekday())).isoformat()}"
        due = len(tried) >= 3 and player in three and coffees[player] >= 10
        if due and key not in held.get(player, set()):
            pending.append(player)
    return sorted(pending)


def owed_points(owed: dict[str, list[str]]) -> Counter[str]:
    points: Counter[str] = Counter()
    for rule, players in owed.items():
        for player in players:
            points[player] += POINTS[rule]
    return points


def as_rows(owed: dict[str, list[str]]) -> list[tuple[str, int, int]]:
    return sorted((rule, len(players), len(set(players))) for rule, players in owed.items())


def rows_of(answer: dict[str, Any]) -> list[tuple[str, int, int]]:
    return sorted((row["id"], row["unlocks"], row["players"]) for row in answer["rules"])


def add_rules(seed: Path) -> None:
    """The reload's edit: append to each section, as a designer would."""
    for name, text in (
        ("metrics.yaml", LATTES),
        ("milestones.yaml", MILESTONES),
        ("challenges.yaml", CHALLENGE),
    ):
        path = seed / name
        path.write_text(path.read_text().rstrip("\n") + "\n\n" + text)


def player_state(url: str, players: Iterable[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for player in players:
        body = post(url, PLAYER, {"id": player})
        assert "errors" not in body, body
        assert body["data"]["player"]["unlocks"]["pageInfo"]["hasNextPage"] is False
        found[player] = body["data"]["player"]
    return found


async def recorded_then_extended(
    server: Server, env: dict[str, str], events: list[dict[str, Any]], owed: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Record the history, add to `owed` the barista picks it leaves owed (they
    depend on where this week's days fall), then add the new rules and reload.
    Returns every player's state before the reload."""
    players = [player_id(n) for n in range(PLAYERS)]
    await asyncio.to_thread(send, partial(post, server.url), events, PLAYERS)
    before = await asyncio.to_thread(player_state, server.url, players)
    held = {player: unlock_keys(state) for player, state in before.items()}
    if pending := barista_picks_pending(events, held, utc_now()):
        owed["challenge:barista-pick"] = pending
    add_rules(Path(env["QUESTLINE_SEED_PATH"]))
    assert (await mutate(server.url, RELOAD, {}))["reloadProgram"]["changed"] is True
    return before


def unlock_keys(state: dict[str, Any]) -> set[str]:
    return {edge["node"]["key"] for edge in state["unlocks"]["edges"]}


def balance(state: dict[str, Any]) -> int:
    return int(state["points"]["balance"])


def milestone_value(state: dict[str, Any], milestone_id: str) -> float:
    return next(m["value"] for m in state["milestones"] if m["milestone"]["id"] == milestone_id)


async def mutate(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = await asyncio.to_thread(post, url, query, variables)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


@asynccontextmanager
async def every_unlock(server: Server) -> AsyncIterator[ClientConnection]:
    """An operator's live feed of every player's unlocks, subscribed."""
    async with connect(server.graphql_ws_url, subprotocols=[PROTOCOL], proxy=None) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {API_KEY}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        payload = {"query": ALL_UNLOCKS, "variables": {}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        await asyncio.sleep(0.5)  # the subscription is registered before anything is claimed
        yield ws


async def backfilled_pushes(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` backfilled unlocks pushed live; tier changes that their
    points cause are pushed too, as ordinary unlocks, and set aside."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while len(found) < count:
            message = json.loads(await ws.recv())
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            assert message["type"] == "next", message
            unlock = message["payload"]["data"]["allUnlocks"]
            if unlock["kind"] == "TIER":
                assert unlock["backfilled"] is False
            else:
                found.append(unlock)
    return found


def server_env(folder: Path, store_url: str) -> dict[str, str]:
    seed = folder / "seed"
    shutil.copytree(SEED, seed)
    return {
        "QUESTLINE_STORE_URL": store_url,
        "QUESTLINE_DATABASE_URL": f"sqlite:///{folder / 'history.db'}",
        "QUESTLINE_SEED_PATH": str(seed),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
    }


async def test_backfill_through_graphql_gives_exactly_what_history_met_once(
    store_url: str, tmp_path: Path
) -> None:
    env = server_env(tmp_path, store_url)
    events = history(utc_now(), PLAYERS, EVENTS, seed=11)
    players = [player_id(n) for n in range(PLAYERS)]
    owed = expected(events)
    assert {"milestone:latte-lover:1", "challenge:latte-week"} <= owed.keys()
    with running_servers([env], tmp_path) as (server,):
        before = await recorded_then_extended(server, env, events, owed)
        reloaded = await asyncio.to_thread(player_state, server.url, players)

        foreseen = (await mutate(server.url, BACKFILL, {"dry": True}))["backfill"]
        assert foreseen["dryRun"] is True
        assert rows_of(foreseen) == as_rows(owed)
        assert foreseen["metrics"] == [{"metric": "lattes", "events": EVENTS}]
        assert foreseen["unknownEvents"] == 0
        unchanged = await asyncio.to_thread(player_state, server.url, players)
        assert unchanged == reloaded  # a dry run changes nothing

        async with every_unlock(server) as ws:
            done = (await mutate(server.url, BACKFILL, {"dry": False}))["backfill"]
            pushed = await backfilled_pushes(ws, done["unlocks"])
        assert rows_of(done) == as_rows(owed)
        assert done["points"] == sum(owed_points(owed).values()) == foreseen["points"]
        assert all(unlock["backfilled"] is True for unlock in pushed)
        assert Counter(unlock["playerId"] for unlock in pushed) == Counter(
            player for owing in owed.values() for player in owing
        )

        after = await asyncio.to_thread(player_state, server.url, players)
        points = owed_points(owed)
        lattes_of = Counter(e["playerId"] for e in events if is_latte(e))
        for player in players:
            assert balance(after[player]) - balance(before[player]) == points[player], player
            assert milestone_value(after[player], "latte-lover") == lattes_of[player]
            assert milestone_value(after[player], "coffee-lover") == milestone_value(
                before[player], "coffee-lover"
            )  # existing counters untouched
            history_flags = {
                edge["node"]["key"]: edge["node"]["backfilled"]
                for edge in after[player]["unlocks"]["edges"]
            }
            old = unlock_keys(before[player])
            assert all(
                flag is (key not in old)
                for key, flag in history_flags.items()
                if not key.startswith("tier:")
            ), player

        again = (await mutate(server.url, BACKFILL, {"dry": False}))["backfill"]
        assert (again["rules"], again["unlocks"], again["points"], again["metrics"]) == (
            [],
            0,
            0,
            [],
        )
        assert await asyncio.to_thread(player_state, server.url, players) == after
        foreseen_again = (await mutate(server.url, BACKFILL, {"dry": True}))["backfill"]
        assert (foreseen_again["rules"], foreseen_again["metrics"]) == ([], [])


def test_backfill_is_refused_to_a_player_token(tmp_path: Path) -> None:
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    with running_servers([env], tmp_path) as (server,):
        token = issue_player_token(Settings(jwt_secret=JWT_SECRET), player_id(1), 300)
        body = post(server.url, BACKFILL, {"dry": True}, token)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


def questline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `questline` command, in a process of its own."""
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("QUESTLINE_")
    }
    command = [str(Path(sys.executable).parent / "questline"), *args]
    return subprocess.run(
        command, env={**environ, **env}, capture_output=True, text=True, timeout=300
    )


async def test_the_cli_backfills_while_servers_serve_and_subscribers_hear_it(
    clean_redis_url: str, tmp_path: Path
) -> None:
    env = server_env(tmp_path, clean_redis_url)
    events = history(utc_now(), PLAYERS, EVENTS, seed=12)
    owed = expected(events)
    with running_servers([env], tmp_path) as (server,):
        await recorded_then_extended(server, env, events, owed)

        dry = await asyncio.to_thread(questline, env, "backfill", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        total = sum(len(players) for players in owed.values())
        for rule, owing in owed.items():
            assert f"would unlock {rule} " in dry.stdout
            assert f": {len(owing)} unlocks, {len(set(owing))} players" in dry.stdout
        assert f"would unlock {total} in all" in dry.stdout

        async with every_unlock(server) as ws:
            run = await asyncio.to_thread(questline, env, "backfill")
            assert run.returncode == 0, run.stderr
            pushed = await backfilled_pushes(ws, total)
        assert f"did unlock {total} in all" in run.stdout
        assert all(unlock["backfilled"] is True for unlock in pushed)
        assert sorted(u["key"].split(":")[1] for u in pushed) == sorted(
            rule.split(":")[1] for rule, owing in owed.items() for _ in owing
        )

        again = await asyncio.to_thread(questline, env, "backfill")
        assert again.returncode == 0, again.stderr
        assert "no metric of the program lacks journaled events" in again.stdout
        assert "did unlock 0 in all, carrying 0 points" in again.stdout


def journal_event(sent: dict[str, Any]) -> Event:
    return Event(
        id=sent["id"],
        player_id=sent["playerId"],
        type=sent["type"],
        occurred_at=datetime.fromisoformat(sent["occurredAt"]),
        properties=sent["properties"],
    )


async def test_events_of_versions_written_down_nowhere_are_left_alone(
    store_url: str, tmp_path: Path
) -> None:
    """Half the journal was recorded under a version nobody wrote down (before
    migration 0006): its events are not replayed into the new metric, since
    whether they were counted there is unknown; the other half is, once."""
    database_url = f"sqlite:///{tmp_path / 'history.db'}"
    upgrade_database(database_url)
    db = make_database(database_url)
    seed = tmp_path / "seed"
    shutil.copytree(SEED, seed)
    old = load_program(seed)
    add_rules(seed)
    new = load_program(seed)
    store = store_from_url(store_url)
    sent = history(utc_now(), PLAYERS, EVENTS, seed=13)
    try:
        events = [journal_event(e) for e in sent]
        recorded = await Engine(old, store).record_many(events)
        rows = [
            journal.row_of(result, event) for result, event in zip(recorded, events, strict=True)
        ]
        for row in rows[: EVENTS // 2]:
            row["program_version"] = "lost"
        with writing(db) as connection:
            journal.append(connection, rows)
        program_metrics.serving(db, old)
        settled: list[Unlock] = []

        async def settle(unlocks: Sequence[Unlock]) -> int:
            settled.extend(unlocks)
            return len(unlocks)

        engine = Engine(new, store)
        done = await backfill(engine, db, settle)
        assert done.unknown_events == EVENTS // 2
        assert done.metrics == {"lattes": EVENTS - EVENTS // 2}
        known = sent[EVENTS // 2 :]
        lattes = Counter(e["playerId"] for e in known if is_latte(e))
        assert sorted(done.rules["milestone:latte-lover:1"]) == sorted(lattes)
        assert all(unlock.backfilled for unlock in settled)
        for player, count in lattes.items():
            progress = await engine.progress(player)
            [lover] = [m for m in progress.milestones if m.id == "latte-lover"]
            assert lover.value == count

        again = await backfill(engine, db, settle)
        assert (again.metrics, again.unlocks, again.unknown_events) == ({}, 0, EVENTS // 2)
        assert len(settled) == done.unlocks
    finally:
        await store.close()
        db.dispose()
