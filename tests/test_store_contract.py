"""The store contract: every backend gives the same answer to every plan.

Each test runs against every store (fixture `store`). Op results (registers)
are observed through `probe`: claims gated on the register, one per
threshold, so the highest claimed threshold is the register's value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import redis
import redis.asyncio

from app.launch import free_port, real_time_environ, wait_for_port
from engine.errors import ConfigurationError, CursorError, StoreError
from engine.store import keys, sqlite_path, store_from_url
from engine.store import sqlite as sqlite_store
from engine.store.base import Applied, Plan, Read, Shape, Store, cursor_order
from engine.store.encoder import APPLY_LUA
from engine.store.ops import (
    OPS,
    Add,
    Arg,
    Card,
    Claim,
    Condition,
    Distinct,
    Extra,
    Get,
    Max,
    Step,
    Steps,
    Streak,
)
from engine.store.sqlite import SqliteStore

PLAYER = "ada"


@dataclass(frozen=True)
class Explode:
    """An operation no store knows."""

    name: ClassVar[str] = "explode"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = store_from_url(store_url)
    yield opened
    await opened.close()


def new_plan(event: str, player: str = PLAYER, version: int = 0) -> Plan:
    return Plan(
        player,
        [
            keys.event(player, event),
            keys.profile(player),
            keys.unlocks(player),
            keys.outbox(player),
        ],
        profile_version=version,
    )


def metric(name: str, player: str = PLAYER) -> str:
    return keys.metric(player, name)


def probe(plan: Plan, register: int, low: int = -5, high: int = 30) -> None:
    """Reveal `register` in the plan's outbox: see `probed`."""
    for threshold in range(low, high + 1):
        field = f"probe:{plan.keys[0]}:{register}:{threshold}"
        plan.op(Claim(field, (Condition(register, threshold),), (), json.dumps(threshold), ()))


def probed(applied: Applied, plan: Plan, register: int) -> int:
    prefix = f"probe:{plan.keys[0]}:{register}:"
    values = [int(e.unlock) for e in applied.entries if e.key.startswith(prefix)]
    assert values, "the register was below every probed threshold"
    return max(values)


def unlocks_of(applied: Applied) -> list[tuple[str, str]]:
    return [(entry.key, entry.unlock) for entry in applied.entries]


async def value(store: Store, key: str) -> int:
    result: int = (await store.read([Read("int", key)]))[0]
    return result


async def add(store: Store, event: str, key: str, amount: int, expire_at: int = 0) -> int:
    plan = new_plan(event)
    register = plan.op(Add(plan.key_index(key), amount, expire_at))
    probe(plan, register)
    return probed(await store.apply(plan), plan, register)


# --- counters -------------------------------------------------------------------


async def test_add_increments_and_returns_the_new_value(store: Store) -> None:
    assert await add(store, "e1", metric("coffees"), 3) == 3
    assert await add(store, "e2", metric("coffees"), 4) == 7
    assert await add(store, "e3", metric("coffees"), -2) == 5
    assert await value(store, metric("coffees")) == 5


async def test_add_with_an_expiry_keeps_the_value_until_then(store: Store, store_now: int) -> None:
    bucket = keys.metric(PLAYER, "coffees", "day:1")
    later = store_now + 3600
    assert await add(store, "e1", bucket, 2, later) == 2
    assert await add(store, "e2", bucket, 2, later) == 4
    assert await value(store, bucket) == 4


async def test_a_bucket_past_its_expiry_reads_as_missing_and_starts_over(
    store: Store, store_now: int
) -> None:
    bucket = keys.metric(PLAYER, "coffees", "day:1")
    past = store_now - 60
    assert await add(store, "e1", bucket, 5, past) == 5
    assert await value(store, bucket) == 0
    assert await add(store, "e2", bucket, 5, past) == 5


async def test_max_keeps_the_larger_value(store: Store) -> None:
    results = []
    for index, candidate in enumerate([5, 3, 9, 9, -1]):
        plan = new_plan(f"e{index}")
        register = plan.op(Max(plan.key_index(metric("biggest")), candidate, 0))
        probe(plan, register)
        results.append(probed(await store.apply(plan), plan, register))
    assert results == [5, 5, 9, 9, 9]
    assert await value(store, metric("biggest")) == 9


async def test_max_compares_with_its_key_as_earlier_ops_of_the_plan_left_it(
    store: Store,
) -> None:
    plan = new_plan("e1")
    plan.op(Add(plan.key_index(metric("peak")), 5, 0))
    first = plan.op(Max(plan.key_index(metric("peak")), 3, 0))
    second = plan.op(Max(plan.key_index(metric("peak")), 8, 0))
    probe(plan, first)
    probe(plan, second)
    applied = await store.apply(plan)
    assert (probed(applied, plan, first), probed(applied, plan, second)) == (5, 8)


async def test_max_on_a_missing_key_takes_the_value_even_below_zero(store: Store) -> None:
    plan = new_plan("e1")
    register = plan.op(Max(plan.key_index(metric("coldest")), -3, 0))
    probe(plan, register)
    assert probed(await store.apply(plan), plan, register) == -3
    assert await value(store, metric("coldest")) == -3


async def test_distinct_counts_each_member_once(store: Store) -> None:
    results = []
    for index, member in enumerate(["paris", "lyon", "paris", "nice"]):
        plan = new_plan(f"e{index}")
        register = plan.op(Distinct(plan.key_index(metric("cities")), member, 0))
        probe(plan, register)
        results.append(probed(await store.apply(plan), plan, register))
    assert results == [1, 2, 2, 3]
    assert await store.read([Read("card", metric("cities"))]) == [3]


async def test_get_and_card_read_inside_a_plan_and_missing_is_zero(store: Store) -> None:
    await add(store, "e1", metric("coffees"), 4)
    plan = new_plan("e2")
    present = plan.op(Get(plan.key_index(metric("coffees"))))
    missing = plan.op(Get(plan.key_index(metric("teas"))))
    empty = plan.op(Card(plan.key_index(metric("cities"))))
    for register in (present, missing, empty):
        probe(plan, register)
    applied = await store.apply(plan)
    assert [probed(applied, plan, r) for r in (present, missing, empty)] == [4, 0, 0]


async def test_reading_missing_keys_gives_zero_and_empty(store: Store) -> None:
    reads = [Read("int", metric("none")), Read("card", metric("none")), Read("hash", "nope")]
    assert await store.read(reads) == [0, 0, {}]


async def test_read_returns_each_kind_in_order(store: Store) -> None:
    plan = new_plan("e1")
    plan.op(Add(plan.key_index(metric("coffees")), 2, 0))
    plan.op(Distinct(plan.key_index(metric("cities")), "paris", 0))
    plan.op(Claim("badge:b", (), (), '{"b":1}', ()))
    await store.apply(plan)
    reads = [
        Read("hash", keys.unlocks(PLAYER)),
        Read("int", metric("coffees")),
        Read("card", metric("cities")),
    ]
    assert await store.read(reads) == [{"badge:b": '{"b":1}'}, 2, 1]


async def test_sqlite_buckets_keep_the_expiry_they_started_with(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = SqliteStore(str(tmp_path / "store.db"), clock=lambda: now[0])
    bucket = keys.metric(PLAYER, "coffees", "day:1")
    assert await add(store, "e1", bucket, 2, 1_000_100) == 2
    assert await add(store, "e2", bucket, 2, 1_000_900) == 4
    now[0] = 1_000_100.5
    assert await value(store, bucket) == 0
    await store.close()


async def test_get_reads_its_key_as_it_was_before_later_ops_of_the_plan(store: Store) -> None:
    await add(store, "e1", metric("coffees"), 4)
    plan = new_plan("e2")
    before = plan.op(Get(plan.key_index(metric("coffees"))))
    plan.op(Add(plan.key_index(metric("coffees")), 10, 0))
    after = plan.op(Get(plan.key_index(metric("coffees"))))
    probe(plan, before)
    probe(plan, after)
    applied = await store.apply(plan)
    assert (probed(applied, plan, before), probed(applied, plan, after)) == (4, 14)


async def test_a_distinct_count_nobody_reads_is_still_kept(store: Store) -> None:
    for index, member in enumerate(["paris", "lyon", "paris"]):
        plan = new_plan(f"e{index}")
        plan.op(Distinct(plan.key_index(metric("cities")), member, 0))
        await store.apply(plan)
    assert await store.read([Read("card", metric("cities"))]) == [2]


# --- shapes ---------------------------------------------------------------------


def shaped_plans(players: list[str]) -> list[Plan]:
    """Plans of one shape: a coffee (the amount is args[1]) and a tier at 2
    coffees whose unlock (args[0]) carries the player's name."""
    coffees = metric("coffees", "")[len(keys.player_tag("")) :]
    shape = Shape(
        [
            Add(4, Arg(1), 0),
            Claim(
                "milestone:coffee:2", (Condition(0, 2),), (), Arg(0), (Extra("badge:b", Arg(0)),)
            ),
        ]
    )
    plans = []
    for index, player in enumerate(players):
        plan = new_plan(f"e{index}", player)
        plan.keys.append(keys.player_tag(player) + coffees)
        plans.append(Plan(player, plan.keys, shape.ops, 0, 3600, [f'"{player}"', index], shape))
    return plans


async def test_plans_of_one_shape_each_use_their_own_keys_and_args(store: Store) -> None:
    results = await store.apply_many(shaped_plans(["ada", "bob", "cy", "ada", "cy"]))
    assert [unlocks_of(applied) for applied in results] == [
        [],
        [],
        [("milestone:coffee:2", '"cy"'), ("badge:b", '"cy"')],
        [("milestone:coffee:2", '"ada"'), ("badge:b", '"ada"')],
        [],
    ]
    totals = await store.read([Read("int", metric("coffees", p)) for p in ("ada", "bob", "cy")])
    assert totals == [3, 1, 6]


async def test_a_plan_of_a_shape_cannot_add_ops(store: Store) -> None:
    [plan] = shaped_plans(["ada"])
    with pytest.raises(ValueError, match="shape"):
        plan.op(Get(4))


# --- streaks --------------------------------------------------------------------


async def extend(
    store: Store,
    event: str,
    period: int,
    amount: int = 1,
    minimum: int = 1,
    freeze_max: int = 1,
    earn_every: int = 3,
) -> int:
    plan = new_plan(event)
    counted = plan.op(Add(plan.key_index(metric(f"daily:{period}")), amount, 0))
    length = plan.op(
        Streak(
            plan.key_index(keys.streak(PLAYER, "daily")),
            period,
            counted,
            minimum,
            freeze_max,
            earn_every,
        ),
    )
    probe(plan, length)
    return probed(await store.apply(plan), plan, length)


async def streak_state(store: Store) -> dict[str, int]:
    state = (await store.read([Read("hash", keys.streak(PLAYER, "daily"))]))[0]
    return {field: int(number) for field, number in state.items()}


def state(last: int, current: int, longest: int, freezes: int) -> dict[str, int]:
    return {"last": last, "current": current, "longest": longest, "freezes": freezes}


async def test_a_streak_starts_and_the_same_period_changes_nothing(store: Store) -> None:
    assert await extend(store, "e1", 10) == 1
    assert await extend(store, "e2", 10) == 1
    assert await streak_state(store) == state(10, 1, 1, 0)


async def test_the_next_period_extends_and_earns_a_freeze_every_n(store: Store) -> None:
    lengths = [await extend(store, f"e{p}", p) for p in (10, 11, 12)]
    assert lengths == [1, 2, 3]
    assert await streak_state(store) == state(12, 3, 3, 1)


async def test_an_older_period_changes_nothing(store: Store) -> None:
    for period in (10, 11):
        await extend(store, f"e{period}", period)
    assert await extend(store, "late", 9) == 2
    assert await streak_state(store) == state(11, 2, 2, 0)


async def test_a_gap_covered_by_freezes_is_bridged_and_consumes_them(store: Store) -> None:
    for period in (10, 11, 12):
        await extend(store, f"e{period}", period, freeze_max=2)
    assert await extend(store, "e14", 14, freeze_max=2) == 4
    assert await streak_state(store) == state(14, 4, 4, 0)


async def test_a_gap_longer_than_the_freezes_restarts_but_keeps_the_longest(
    store: Store,
) -> None:
    for period in (10, 11, 12, 13):
        await extend(store, f"e{period}", period)
    assert await extend(store, "e16", 16) == 1
    assert await streak_state(store) == state(16, 1, 4, 1)


async def test_freezes_earned_stop_at_the_maximum(store: Store) -> None:
    for period in range(10, 19):
        await extend(store, f"e{period}", period, freeze_max=2, earn_every=2)
    assert await streak_state(store) == state(18, 9, 9, 2)


async def test_a_period_below_the_minimum_does_not_extend(store: Store) -> None:
    assert await extend(store, "e1", 10, amount=1, minimum=3) == 0
    assert await extend(store, "e2", 10, amount=2, minimum=3) == 1
    assert await extend(store, "e3", 11, amount=1, minimum=3) == 1
    assert await streak_state(store) == state(10, 1, 1, 0)


# --- claims ---------------------------------------------------------------------


def coffee_plan(event: str) -> Plan:
    """One coffee; tier 1 at 1 coffee (with a badge and a marker), tier 2 at 2."""
    plan = new_plan(event)
    coffees = plan.op(Add(plan.key_index(metric("coffees")), 1, 0))
    plan.op(
        Claim(
            "milestone:coffee:1",
            (Condition(coffees, 1),),
            (),
            '{"tier":1}',
            (
                Extra("badge:first-sip", '{"badge":"first-sip"}'),
                Extra("done:milestone:coffee", None),
            ),
        ),
    )
    plan.op(Claim("milestone:coffee:2", (Condition(coffees, 2),), (), '{"tier":2}', ()))
    return plan


async def test_a_claim_met_unlocks_with_its_extras_in_order(store: Store) -> None:
    applied = await store.apply(coffee_plan("e1"))
    assert applied.status == "ok"
    assert unlocks_of(applied) == [
        ("milestone:coffee:1", '{"tier":1}'),
        ("badge:first-sip", '{"badge":"first-sip"}'),
    ]
    assert await store.read([Read("hash", keys.unlocks(PLAYER))]) == [
        {
            "milestone:coffee:1": '{"tier":1}',
            "badge:first-sip": '{"badge":"first-sip"}',
            "done:milestone:coffee": "",
        }
    ]


async def test_each_claim_is_granted_exactly_once_across_plans(store: Store) -> None:
    first = await store.apply(coffee_plan("e1"))
    second = await store.apply(coffee_plan("e2"))
    third = await store.apply(coffee_plan("e3"))
    assert [k for k, _ in unlocks_of(first)] == ["milestone:coffee:1", "badge:first-sip"]
    assert unlocks_of(second) == [("milestone:coffee:2", '{"tier":2}')]
    assert third.entries == []
    assert await value(store, metric("coffees")) == 3


async def test_an_unmet_condition_claims_nothing(store: Store) -> None:
    plan = new_plan("e1")
    coffees = plan.op(Add(plan.key_index(metric("coffees")), 1, 0))
    claimed = plan.op(Claim("milestone:coffee:5", (Condition(coffees, 5),), (), '{"tier":5}', ()))
    probe(plan, claimed, low=0, high=1)
    applied = await store.apply(plan)
    assert probed(applied, plan, claimed) == 0
    assert [k for k, _ in unlocks_of(applied) if not k.startswith("probe:")] == []


async def test_a_claim_waits_for_its_required_fields(store: Store) -> None:
    def plan_for(event: str) -> Plan:
        plan = new_plan(event)
        plan.op(Claim("challenge:advanced", (), ("done:challenge:basic",), '{"c":2}', ()))
        plan.op(Claim("done:challenge:basic", (), (), None, ()))
        return plan

    first = await store.apply(plan_for("e1"))
    second = await store.apply(plan_for("e2"))
    assert first.entries == []
    assert unlocks_of(second) == [("challenge:advanced", '{"c":2}')]


async def test_a_claim_sees_fields_claimed_earlier_in_the_same_plan(store: Store) -> None:
    plan = new_plan("e1")
    first = plan.op(Claim("done:challenge:basic", (), (), None, ()))
    plan.op(
        Claim(
            "challenge:advanced", (Condition(first, 1),), ("done:challenge:basic",), '{"c":2}', ()
        )
    )
    assert unlocks_of(await store.apply(plan)) == [("challenge:advanced", '{"c":2}')]


async def test_extras_already_present_are_not_granted_again(store: Store) -> None:
    plan = new_plan("e1")
    plan.op(Claim("badge:regular", (), (), '{"b":"regular"}', ()))
    await store.apply(plan)
    plan = new_plan("e2")
    plan.op(Claim("milestone:m:2", (), (), '{"t":2}', (Extra("badge:regular", '{"b":"regular"}'),)))
    assert unlocks_of(await store.apply(plan)) == [("milestone:m:2", '{"t":2}')]


async def test_outbox_ids_increase_in_claim_order(store: Store) -> None:
    entries = []
    for index in range(3):
        plan = new_plan(f"e{index}")
        for tier in range(3):
            plan.op(Claim(f"milestone:m:{index}:{tier}", (), (), f'{{"t":{tier}}}', ()))
        entries.extend((await store.apply(plan)).entries)
    ids = [entry.id for entry in entries]
    assert len(set(ids)) == 9
    assert sorted(ids, key=cursor_order) == ids


async def test_steps_claim_each_threshold_reached_in_order(store: Store) -> None:
    def plan_for(event: str, coffees: int) -> tuple[Plan, int]:
        plan = new_plan(event)
        total = plan.op(Add(plan.key_index(metric("coffees")), coffees, 0))
        claimed = plan.op(
            Steps(
                total,
                (
                    Step(1, "milestone:m:1", '{"t":1}', (Extra("badge:first", '{"b":1}'),)),
                    Step(3, "milestone:m:2", '{"t":2}', ()),
                    Step(5, "milestone:m:3", '{"t":3}', ()),
                ),
            ),
        )
        probe(plan, claimed, low=0, high=3)
        return plan, claimed

    results = []
    for event, coffees in (("e1", 3), ("e2", 1), ("e3", 2)):
        plan, claimed = plan_for(event, coffees)
        applied = await store.apply(plan)
        unlocked = [key for key, _ in unlocks_of(applied) if not key.startswith("probe:")]
        results.append((unlocked, probed(applied, plan, claimed)))
    assert results == [
        (["milestone:m:1", "badge:first", "milestone:m:2"], 2),
        ([], 0),
        (["milestone:m:3"], 1),
    ]


async def test_steps_grant_a_lower_step_added_after_higher_ones(store: Store) -> None:
    plan = new_plan("e1")
    total = plan.op(Add(plan.key_index(metric("coffees")), 5, 0))
    plan.op(Steps(total, (Step(5, "milestone:m:5", '{"t":5}', ()),)))
    await store.apply(plan)
    plan = new_plan("e2")
    total = plan.op(Add(plan.key_index(metric("coffees")), 1, 0))
    plan.op(
        Steps(total, (Step(2, "milestone:m:2", '{"t":2}', ()), Step(5, "milestone:m:5", "x", ())))
    )
    assert unlocks_of(await store.apply(plan)) == [("milestone:m:2", '{"t":2}')]


async def test_every_value_of_an_op_may_come_from_the_args(store: Store) -> None:
    later = int(time.time()) + 3600
    plan = new_plan("e1")
    plan.args = [3, later, "milestone:a", '{"a":1}', 2, 10, 1, "done:x", "badge:b"]
    bucket = plan.key_index(metric("coffees", "ada") + ":day:1")
    total = plan.op(Add(bucket, Arg(0), Arg(1)))
    length = plan.op(
        Streak(plan.key_index(keys.streak(PLAYER, "s")), Arg(5), total, Arg(6), Arg(6), Arg(6))
    )
    plan.op(Claim(Arg(7), (), (), None, ()))
    plan.op(Claim(Arg(2), (Condition(total, Arg(4)),), (Arg(7),), Arg(3), (Extra(Arg(8), Arg(3)),)))
    plan.op(Steps(length, (Step(Arg(6), "streak:s:1", Arg(3), ()),)))
    assert unlocks_of(await store.apply(plan)) == [
        ("milestone:a", '{"a":1}'),
        ("badge:b", '{"a":1}'),
        ("streak:s:1", '{"a":1}'),
    ]
    assert await store.read([Read("hash", keys.streak(PLAYER, "s"))]) == [
        {"last": "10", "current": "1", "longest": "1", "freezes": "1"}
    ]
    assert await value(store, metric("coffees", "ada") + ":day:1") == 3


# --- idempotency and staleness -------------------------------------------------------


async def test_a_repeated_event_id_returns_the_original_entries_and_changes_nothing(
    store: Store,
) -> None:
    original = await store.apply(coffee_plan("e1"))
    again = await store.apply(coffee_plan("e1"))
    assert again.status == "duplicate"
    assert again.entries == original.entries
    assert await value(store, metric("coffees")) == 1
    assert len(await store.outbox(PLAYER, None, 100)) == 2


async def test_a_repeated_event_without_unlocks_is_still_a_duplicate(store: Store) -> None:
    plan = new_plan("e1")
    plan.op(Add(plan.key_index(metric("coffees")), 1, 0))
    assert await store.apply(plan) == Applied("ok", [])
    assert await store.apply(plan) == Applied("duplicate", [])
    assert await value(store, metric("coffees")) == 1


async def test_a_plan_built_on_a_stale_profile_does_nothing(store: Store) -> None:
    assert await store.set_profile(PLAYER, {"timezone": "Europe/Paris"}) == 1
    stale = coffee_plan("e1")
    assert await store.apply(stale) == Applied("stale", [])
    assert await value(store, metric("coffees")) == 0
    fresh = coffee_plan("e1")
    fresh.profile_version = 1
    assert (await store.apply(fresh)).status == "ok"
    assert await value(store, metric("coffees")) == 1


async def test_set_profile_bumps_the_version_and_stores_the_fields(store: Store) -> None:
    assert await store.set_profile(PLAYER, {"timezone": "Europe/Paris"}) == 1
    assert await store.set_profile(PLAYER, {"attributes": '{"vip":true}'}) == 2
    assert await store.set_profile(PLAYER, {}) == 3
    assert await store.read([Read("hash", keys.profile(PLAYER))]) == [
        {"timezone": "Europe/Paris", "attributes": '{"vip":true}', "version": "3"}
    ]


async def test_set_profile_refuses_to_overwrite_the_version(store: Store) -> None:
    with pytest.raises(ValueError, match="version"):
        await store.set_profile(PLAYER, {"version": "7"})


async def test_an_unknown_operation_is_refused_as_a_store_error(store: Store) -> None:
    plan = new_plan("e1")
    plan.op(Explode())  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="explode"):
        await store.apply(plan)
    assert await store.outbox(PLAYER, None, 10) == []


async def test_a_malformed_operation_is_refused_as_a_store_error(store: Store) -> None:
    plan = new_plan("e1")
    plan.op(Add(plan.key_index(metric("coffees")), None, 0))  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.apply(plan)
    assert await value(store, metric("coffees")) == 0


def test_the_lua_script_numbers_ops_as_ops_py_does() -> None:
    """lua/apply.lua names each op number once, as `Operation.code` defines it."""
    [line] = [line for line in APPLY_LUA.splitlines() if line.startswith("local ADD,")]
    names, _, numbers = line.removeprefix("local ").partition(" = ")
    in_lua = dict(zip(names.split(", "), map(int, numbers.split(", ")), strict=True))
    assert in_lua == {op.name.upper(): op.code for op in OPS}


# --- batches --------------------------------------------------------------------


def random_plans(seed: int, count: int, players: list[str]) -> list[Plan]:
    """Plans mixing every op over few keys, with repeated events."""
    rng = random.Random(seed)
    later = int(time.time()) + 3600
    plans = []
    for index in range(count):
        player = rng.choice(players)
        event = f"e{rng.randrange(count)}" if rng.random() < 0.2 else f"e{index}"
        plan = new_plan(event, player)
        counter = keys.metric(player, "coffees", f"day:{rng.randrange(3)}")
        added = plan.op(Add(plan.key_index(counter), rng.randint(1, 3), later))
        peak = plan.op(Max(plan.key_index(keys.metric(player, "peak")), rng.randint(0, 50), 0))
        cities = keys.metric(player, "cities")
        seen = plan.op(Distinct(plan.key_index(cities), rng.choice("abcdef"), 0))
        plan.op(Streak(plan.key_index(keys.streak(player, "s")), rng.randrange(30), added, 2, 2, 3))
        threshold = rng.randint(1, 12)
        plan.op(
            Claim(
                f"milestone:c:{threshold}",
                (Condition(added, threshold), Condition(seen, rng.randint(1, 4))),
                (),
                json.dumps({"t": threshold}),
                (Extra(f"badge:{threshold % 3}", json.dumps({"b": threshold % 3})),),
            ),
        )
        plan.op(Claim("badge:peak", (Condition(peak, 45),), ("badge:0",), '{"peak":true}', ()))
        plans.append(plan)
    return plans


def comparable(results: list[Applied]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Results without outbox ids, which only the store that issued them shares."""
    return [(applied.status, unlocks_of(applied)) for applied in results]


async def state_of(store: Store, players: list[str]) -> list[Any]:
    reads = []
    for player in players:
        reads += [Read("int", keys.metric(player, "coffees", f"day:{day}")) for day in range(3)]
        reads += [
            Read("int", keys.metric(player, "peak")),
            Read("card", keys.metric(player, "cities")),
            Read("hash", keys.streak(player, "s")),
            Read("hash", keys.unlocks(player)),
        ]
    return await store.read(reads)


async def test_apply_many_equals_applying_one_by_one(store: Store) -> None:
    one_by_one = [await store.apply(plan) for plan in random_plans(7, 120, ["p1", "p2"])]
    batched = await store.apply_many(random_plans(7, 120, ["p3", "p4"]))
    assert comparable(batched) == comparable(one_by_one)
    assert await state_of(store, ["p3", "p4"]) == await state_of(store, ["p1", "p2"])


async def test_apply_many_with_nothing_returns_nothing(store: Store) -> None:
    assert await store.apply_many([]) == []


async def test_a_failing_plan_in_a_batch_leaves_the_others_applied(store: Store) -> None:
    bad = new_plan("bad")
    bad.op(Explode())  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="plan 1 of the batch"):
        await store.apply_many([coffee_plan("e1"), bad, coffee_plan("e2")])
    retried = await store.apply_many([coffee_plan("e1"), coffee_plan("e2")])
    assert [applied.status for applied in retried] == ["duplicate", "duplicate"]
    assert await value(store, metric("coffees")) == 2


# --- outbox and listening -------------------------------------------------------


async def test_the_outbox_pages_after_a_cursor(store: Store) -> None:
    plan = new_plan("e1")
    for tier in range(5):
        plan.op(Claim(f"milestone:m:{tier}", (), (), f'{{"t":{tier}}}', ()))
    entries = (await store.apply(plan)).entries
    assert await store.outbox(PLAYER, None, 100) == entries
    assert await store.outbox(PLAYER, None, 2) == entries[:2]
    assert await store.outbox(PLAYER, entries[1].id, 2) == entries[2:4]
    assert await store.outbox(PLAYER, entries[4].id, 2) == []
    assert await store.outbox(PLAYER, entries[0].id, 0) == []
    assert await store.outbox("someone-else", None, 10) == []


async def test_a_cursor_that_is_not_an_outbox_id_is_refused(store: Store) -> None:
    with pytest.raises(CursorError, match="not an outbox cursor"):
        await store.outbox(PLAYER, "yesterday", 10)


Listen = Callable[[Callable[[], None]], AsyncIterator[Any]]


async def start_listening(listen: Listen, count: int) -> asyncio.Task[list[Any]]:
    """A task collecting the next `count` items of `listen` (store.listen or
    store.listen_broadcasts), once it is subscribed."""
    ready = asyncio.Event()

    async def collect() -> list[Any]:
        received = []
        stream = cast(AsyncGenerator[Any, None], listen(ready.set))
        async with contextlib.aclosing(stream):
            async for item in stream:
                received.append(item)
                if len(received) == count:
                    break
        return received

    task = asyncio.create_task(collect())
    await asyncio.wait_for(ready.wait(), 5)
    return task


async def test_a_listener_receives_what_apply_commits(store: Store) -> None:
    listening = await start_listening(store.listen, 2)
    first = await store.apply(coffee_plan("e1"))
    await store.apply(coffee_plan("e1"))  # a duplicate publishes nothing
    other = new_plan("e9", player="bob")
    other.op(Claim("badge:b", (), (), '{"b":1}', ()))
    second = await store.apply(other)
    assert await asyncio.wait_for(listening, 5) == [
        (PLAYER, first.entries),
        ("bob", second.entries),
    ]


async def test_every_broadcast_listener_receives_each_broadcast_once(store: Store) -> None:
    first = await start_listening(store.listen_broadcasts, 2)
    second = await start_listening(store.listen_broadcasts, 2)
    await store.broadcast("program", "v2")
    await store.broadcast("other", '{"any": "text"}')
    expected = [("program", "v2"), ("other", '{"any": "text"}')]
    assert await asyncio.wait_for(first, 5) == expected
    assert await asyncio.wait_for(second, 5) == expected


async def test_broadcasts_and_unlocks_reach_only_their_own_listeners(store: Store) -> None:
    unlocks = await start_listening(store.listen, 1)
    broadcasts = await start_listening(store.listen_broadcasts, 1)
    await store.broadcast("program", "v2")
    applied = await store.apply(coffee_plan("e1"))
    assert await asyncio.wait_for(unlocks, 5) == [(PLAYER, applied.entries)]
    assert await asyncio.wait_for(broadcasts, 5) == [("program", "v2")]


async def test_closing_the_store_ends_its_listeners(store: Store) -> None:
    unlocks = await start_listening(store.listen, 5)
    broadcasts = await start_listening(store.listen_broadcasts, 5)
    await store.close()
    assert await asyncio.wait_for(unlocks, 5) == []
    assert await asyncio.wait_for(broadcasts, 5) == []


async def test_outbox_players_names_each_player_with_an_unlock(store: Store) -> None:
    assert [player async for player in store.outbox_players()] == []
    for player in ("ada", "team:7/bob", "carol"):
        plan = new_plan("e1", player=player)
        plan.op(Claim("badge:b", (), (), '{"b":1}', ()))
        await store.apply(plan)
    quiet = new_plan("e1", player="dave")  # counts, but never unlocked anything
    quiet.op(Add(quiet.key_index(metric("coffees", "dave")), 1, 0))
    await store.apply(quiet)
    await store.set_profile("erin", {"timezone": "UTC"})
    named = [player async for player in store.outbox_players()]
    assert set(named) == {"ada", "team:7/bob", "carol"}


# --- the URL --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///questline.db", "questline.db"),
        ("sqlite:///data/questline.db", "data/questline.db"),
        ("sqlite:////var/lib/questline.db", "/var/lib/questline.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_name_a_file_like_sqlalchemy(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["postgresql://localhost/db", "localhost:6379", "sqlite://"])
def test_a_url_naming_no_store_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"sqlite:///"):
        store_from_url(url)


# --- Redis only -----------------------------------------------------------------


@pytest.fixture
async def redis_store(clean_redis_url: str) -> AsyncIterator[Store]:
    opened = store_from_url(clean_redis_url)
    yield opened
    await opened.close()


@pytest.fixture
async def raw_redis(clean_redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(clean_redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_redis_sets_the_expiry_of_buckets_and_event_records(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    bucket = keys.metric(PLAYER, "coffees", "day:1")
    now, _ = await raw_redis.time()  # Redis's clock, real even under libfaketime
    await add(redis_store, "e1", bucket, 1, now + 3600)
    assert 3590 < await raw_redis.ttl(bucket) <= 3600
    assert await raw_redis.ttl(metric("coffees")) == -2
    assert 8 * 24 * 3600 - 10 < await raw_redis.ttl(keys.event(PLAYER, "e1")) <= 8 * 24 * 3600


async def test_redis_buckets_keep_the_expiry_they_started_with(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    now, _ = await raw_redis.time()  # Redis's clock, real even under libfaketime
    soon, later = now + 600, now + 3600
    feeds: tuple[tuple[type[Add | Max | Distinct], int | str], ...] = (
        (Add, 1),
        (Max, 5),
        (Distinct, "paris"),
    )
    for feed, member in feeds:
        kind = feed.name
        bucket = keys.metric(PLAYER, kind, "day:1")
        for index, expire_at in enumerate((soon, later)):
            plan = new_plan(f"{kind}{index}")
            plan.op(feed(plan.key_index(bucket), member if index == 0 else 7, expire_at))
            await redis_store.apply(plan)
        assert 590 < await raw_redis.ttl(bucket) <= 600, kind


async def test_redis_a_plan_failing_on_a_key_of_the_wrong_type_fails_alone(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    await raw_redis.hset(metric("coffees", "bob"), "not", "a counter")
    wrong = new_plan("e1", player="bob")
    wrong.op(Add(wrong.key_index(metric("coffees", "bob")), 1, 0))
    with pytest.raises(StoreError, match=r"plan 1 of the batch \(player 'bob'\).*WRONGTYPE"):
        await redis_store.apply_many([coffee_plan("e1"), wrong, coffee_plan("e2")])
    assert await value(redis_store, metric("coffees")) == 2
    assert await raw_redis.exists(keys.event("bob", "e1")) == 0


async def test_redis_plans_go_on_after_the_server_drops_the_connections(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    await redis_store.apply_many([coffee_plan("e1"), coffee_plan("e2")])
    assert await raw_redis.client_kill_filter(_type="normal", skipme=True) >= 1
    assert (await redis_store.apply(coffee_plan("e3"))).status == "ok"
    assert [
        a.status for a in await redis_store.apply_many([coffee_plan("e3"), coffee_plan("e4")])
    ] == [
        "duplicate",
        "ok",
    ]
    assert await value(redis_store, metric("coffees")) == 4


async def test_redis_reloads_the_script_after_a_flush(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    await redis_store.apply(coffee_plan("e1"))
    await raw_redis.script_flush()
    assert (await redis_store.apply(coffee_plan("e2"))).entries[0].key == "milestone:coffee:2"
    await raw_redis.script_flush()
    results = await redis_store.apply_many([coffee_plan("e3"), coffee_plan("e4")])
    assert [applied.status for applied in results] == ["ok", "ok"]
    assert await value(redis_store, metric("coffees")) == 4


async def test_an_unreachable_redis_says_what_to_check() -> None:
    store = store_from_url(f"redis://:secret@127.0.0.1:{free_port()}/0")
    with pytest.raises(
        StoreError, match=r"cannot reach Redis at .*is redis-server running"
    ) as info:
        await store.apply(coffee_plan("e1"))
    assert "secret" not in str(info.value)
    with pytest.raises(StoreError, match="cannot reach Redis"):
        await store.ping()
    await store.close()


async def test_redis_listener_survives_a_dropped_connection(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    listening = await start_listening(redis_store.listen, 1)
    assert await raw_redis.client_kill_filter(_type="pubsub") == 1
    for _ in range(100):  # until it has subscribed again
        if (await raw_redis.pubsub_numsub(keys.UNLOCK_CHANNEL))[0][1] == 1:
            break
        await asyncio.sleep(0.05)
    applied = await redis_store.apply(coffee_plan("e1"))
    assert await asyncio.wait_for(listening, 5) == [(PLAYER, applied.entries)]
    assert (await raw_redis.pubsub_numsub(keys.UNLOCK_CHANNEL))[0][1] == 0


async def test_redis_broadcasts_reach_every_store_sharing_the_server(
    redis_store: Store, clean_redis_url: str
) -> None:
    other = store_from_url(clean_redis_url)  # as another process would
    try:
        here = await start_listening(redis_store.listen_broadcasts, 1)
        there = await start_listening(other.listen_broadcasts, 1)
        await other.broadcast("program", "v2")
        assert await asyncio.wait_for(here, 5) == [("program", "v2")]
        assert await asyncio.wait_for(there, 5) == [("program", "v2")]
    finally:
        await other.close()


async def pubsub_connections(raw_redis: redis.asyncio.Redis) -> int:
    return len(await raw_redis.client_list(_type="pubsub"))


async def test_redis_listeners_of_a_store_share_one_pub_sub_connection(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    listening = [await start_listening(redis_store.listen, 1) for _ in range(3)]
    listening.append(await start_listening(redis_store.listen_broadcasts, 1))
    assert await pubsub_connections(raw_redis) == 1
    await redis_store.broadcast("program", "v2")
    applied = await redis_store.apply(coffee_plan("e1"))
    for task in listening[:3]:
        assert await asyncio.wait_for(task, 5) == [(PLAYER, applied.entries)]
    assert await asyncio.wait_for(listening[3], 5) == [("program", "v2")]
    assert await pubsub_connections(raw_redis) == 0
    again = await start_listening(redis_store.listen_broadcasts, 1)  # opens it anew
    assert await pubsub_connections(raw_redis) == 1
    await redis_store.broadcast("program", "v3")
    assert await asyncio.wait_for(again, 5) == [("program", "v3")]


async def test_redis_outbox_players_skips_keys_that_only_look_like_outboxes(
    redis_store: Store, raw_redis: redis.asyncio.Redis
) -> None:
    await redis_store.apply(coffee_plan("e1"))
    await raw_redis.set("{p:mallory}:outbox", "not a stream")
    assert [player async for player in redis_store.outbox_players()] == [PLAYER]


# --- both at once ----------------------------------------------------------------


async def test_both_stores_give_the_same_answers_to_the_same_plans(
    tmp_path: Path, clean_redis_url: str
) -> None:
    players = ["p1", "p2", "p3"]
    answers, states = [], []
    for url in (f"sqlite:///{tmp_path / 'store.db'}", clean_redis_url):
        store = store_from_url(url)
        results = await store.apply_many(random_plans(11, 150, players))
        await store.set_profile("p1", {"timezone": "Asia/Tokyo"})
        for plan in random_plans(12, 150, players):
            results.append(await store.apply(plan))
        answers.append(comparable(results))
        states.append(await state_of(store, players))
        await store.close()
    assert answers[0] == answers[1]
    assert states[0] == states[1]
    assert {status for status, _ in answers[0]} == {"ok", "duplicate", "stale"}


# --- SQLite only ----------------------------------------------------------------


async def test_sqlite_expires_keys_by_its_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = SqliteStore(str(tmp_path / "store.db"), clock=lambda: now[0])
    bucket = keys.metric(PLAYER, "coffees", "day:1")
    assert await add(store, "e1", bucket, 2, 1_000_100) == 2
    now[0] = 1_000_100.0
    assert await value(store, bucket) == 2
    now[0] = 1_000_100.5
    assert await value(store, bucket) == 0
    assert await add(store, "e2", bucket, 3, 1_000_200) == 3
    await store.close()


async def test_sqlite_forgets_an_event_after_its_dedupe_ttl(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = SqliteStore(str(tmp_path / "store.db"), clock=lambda: now[0])
    plan = coffee_plan("e1")
    plan.dedupe_ttl = 60
    assert (await store.apply(plan)).status == "ok"
    now[0] += 59
    assert (await store.apply(plan)).status == "duplicate"
    now[0] += 2
    assert (await store.apply(plan)).status == "ok"
    assert await value(store, metric("coffees")) == 2
    await store.close()


async def test_sqlite_purges_expired_sets_with_their_members(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = SqliteStore(str(tmp_path / "store.db"), clock=lambda: now[0])
    cities = keys.metric(PLAYER, "cities", "day:1")
    plan = new_plan("e1")
    plan.op(Distinct(plan.key_index(cities), "paris", 1_000_010))
    await store.apply(plan)
    now[0] += 20
    for index in range(sqlite_store.PURGE_EVERY):
        await store.apply(new_plan(f"filler{index}"))
    await store.apply(new_plan("after"))
    db = sqlite3.connect(tmp_path / "store.db")
    assert db.execute("SELECT count(*) FROM members").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM keyspace WHERE key = ?", (cities,)).fetchone() == (0,)
    db.close()
    await store.close()


async def test_sqlite_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = store_from_url(url)
    original = await store.apply(coffee_plan("e1"))
    await store.close()
    reopened = store_from_url(url)
    assert await reopened.apply(coffee_plan("e1")) == Applied("duplicate", original.entries)
    assert await reopened.outbox(PLAYER, None, 10) == original.entries
    assert await value(reopened, metric("coffees")) == 1
    await reopened.close()


async def test_sqlite_in_memory_works_for_tests() -> None:
    store = store_from_url("sqlite://:memory:")
    assert (await store.apply(coffee_plan("e1"))).status == "ok"
    assert await value(store, metric("coffees")) == 1
    await store.close()


async def test_sqlite_that_cannot_open_its_file_says_where(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path / 'missing' / 'store.db'}")
    with pytest.raises(StoreError, match=r"cannot open the SQLite database at .*missing"):
        await store.ping()
    await store.close()


async def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database at all, just some notes" * 100)
    store = store_from_url(f"sqlite:///{tmp_path / 'notes.txt'}")
    with pytest.raises(StoreError, match="is not a SQLite database"):
        await store.apply(coffee_plan("e1"))
    await store.close()


async def test_sqlite_listeners_end_when_the_store_closes(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path / 'store.db'}")
    listening = await start_listening(store.listen, 5)
    applied = await store.apply(coffee_plan("e1"))
    await store.close()
    assert await asyncio.wait_for(listening, 5) == [(PLAYER, applied.entries)]
    with pytest.raises(StoreError, match="is closed"):
        await store.apply(coffee_plan("e2"))


async def test_sqlite_rolls_back_a_plan_that_fails_half_way(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path / 'store.db'}")
    plan = coffee_plan("e1")
    plan.op(Explode())  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="unknown plan operation: explode"):
        await store.apply(plan)
    assert await value(store, metric("coffees")) == 0
    assert await store.outbox(PLAYER, None, 10) == []
    assert (await store.apply(coffee_plan("e1"))).status == "ok"
    await store.close()


# --- Redis Cluster --------------------------------------------------------------


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free as well."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private three-node Redis Cluster, no replicas."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        pytest.fail("the cluster test needs redis-server and redis-cli on PATH", pytrace=False)
    ports = [cluster_port() for _ in range(3)]
    processes = []
    for port in ports:
        directory = tmp_path_factory.mktemp(f"cluster-{port}")
        options = ["--cluster-enabled", "yes", "--save", "", "--appendonly", "no"]
        processes.append(
            subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", *options],
                cwd=directory,
                stdout=subprocess.DEVNULL,
                env=real_time_environ(),
            )
        )
    try:
        for port, process in zip(ports, processes, strict=True):
            wait_for_port(port, process)
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
            env=real_time_environ(),
        )
        for port in ports:  # every node must agree before the first command
            with redis.Redis(port=port, decode_responses=True) as node:
                for _ in range(100):
                    if node.cluster("info")["cluster_state"] == "ok":
                        break
                    time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
async def cluster_store(redis_cluster_url: str) -> AsyncIterator[Store]:
    opened = store_from_url(redis_cluster_url)
    yield opened
    await opened.close()


async def test_redis_cluster_runs_plans_batches_reads_and_listeners(cluster_store: Store) -> None:
    listening = await start_listening(cluster_store.listen, 1)
    broadcasts = await start_listening(cluster_store.listen_broadcasts, 1)
    first = await cluster_store.apply(coffee_plan("e1"))
    await cluster_store.broadcast("program", "v2")
    assert await asyncio.wait_for(listening, 5) == [(PLAYER, first.entries)]
    assert await asyncio.wait_for(broadcasts, 5) == [("program", "v2")]
    players = [f"p{index}" for index in range(20)]
    results = await cluster_store.apply_many(random_plans(3, 200, players))
    assert await cluster_store.set_profile(PLAYER, {"timezone": "UTC"}) == 1
    assert await cluster_store.outbox(PLAYER, None, 10) == first.entries

    reference = store_from_url("sqlite://:memory:")
    expected = await reference.apply_many(random_plans(3, 200, players))
    assert comparable(results) == comparable(expected)
    assert await state_of(cluster_store, players) == await state_of(reference, players)
    await reference.apply(coffee_plan("e1"))
    everyone = {player async for player in reference.outbox_players()}
    assert {player async for player in cluster_store.outbox_players()} == everyone
    assert len(everyone) > 10  # spread over every node of the cluster
    await reference.close()
