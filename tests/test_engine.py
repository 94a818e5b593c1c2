"""The rules engine end to end, on every store backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import planner
from engine.engine import MAX_REPLANS, Engine, EngineSettings
from engine.errors import (
    BatchTooLargeError,
    ConflictError,
    EventError,
    EventInFutureError,
    EventTooOldError,
)
from engine.events import Event
from engine.periods import Granularity, period_of
from engine.program.loader import load_program
from engine.program.models import Streak
from engine.progress import streak_progress
from engine.store import keys, store_from_url
from engine.store.base import Applied, Plan
from tests.support.clock import MONDAY, TODAY, WEDNESDAY, Clock, paris
from tests.support.engines import Sender, engine_on
from tests.support.programs import CAFE


@pytest.fixture
async def engine(store_url: str, clock: Clock) -> AsyncIterator[Engine]:
    async with engine_on(CAFE, store_url, clock) as engine:
        yield engine


@pytest.fixture
def send(engine: Engine) -> Sender:
    return Sender(engine)


async def test_metrics_count_sum_max_and_distinct_with_where(engine: Engine, send: Sender) -> None:
    await send(category="coffee", amount=4.5, store="rue-a")
    await send(category="coffee", amount=6, store="rue-b")
    await send(category="tea", amount=3.25, store="rue-a")
    progress = await engine.progress("ada")
    milestones = {m.id: m for m in progress.milestones}
    assert milestones["coffee-lover"].value == 2
    assert milestones["big-spender"].value == 13.75
    assert milestones["big-spender"].progress.completed
    explorer = next(c for c in progress.challenges if c.id == "explorer")
    assert [goal.progress.current for goal in explorer.goals] == [2, 0]


async def test_a_purchase_without_the_summed_property_still_counts(
    engine: Engine, send: Sender
) -> None:
    await send(category="coffee")
    progress = await engine.progress("ada")
    milestones = {m.id: m for m in progress.milestones}
    assert (milestones["coffee-lover"].value, milestones["big-spender"].value) == (1, 0)


async def test_each_milestone_tier_unlocks_once_with_its_badge(send: Sender) -> None:
    assert await send(category="coffee") == ["milestone:coffee-lover:1", "badge:first-sip"]
    assert "milestone:coffee-lover:2" not in await send(category="coffee")
    third = await send(category="coffee")
    assert "milestone:coffee-lover:2" in third and "badge:regular" in third
    fourth = await send(category="coffee")
    assert not any(key.startswith(("milestone:", "badge:")) for key in fourth)


async def test_a_repeated_event_id_is_a_duplicate_and_changes_nothing(
    engine: Engine, send: Sender
) -> None:
    event = Event(id="same", player_id="ada", type="purchase", properties={"category": "coffee"})
    first = await engine.record(event)
    again = await engine.record(event)
    assert not first.duplicate and again.duplicate
    assert [u.key for u in again.unlocks] == [u.key for u in first.unlocks]
    assert [u.id for u in again.unlocks] == [u.id for u in first.unlocks]
    progress = await engine.progress("ada")
    assert next(m for m in progress.milestones if m.id == "coffee-lover").value == 1
    assert len(await engine.unlocks("ada")) == len(first.unlocks)


async def test_a_recurring_challenge_is_a_fresh_instance_each_week(
    engine: Engine, send: Sender, clock: Clock
) -> None:
    keys = [key for _ in range(3) for key in await send(category="coffee")]
    assert f"challenge:three-this-week:week:{MONDAY}" in keys
    clock.advance(days=7)
    progress = await engine.progress("ada")
    weekly = next(c for c in progress.challenges if c.id == "three-this-week")
    assert (weekly.progress.current, weekly.progress.completed) == (0, False)
    next_week = MONDAY + timedelta(days=7)
    assert weekly.unlock_key == f"challenge:three-this-week:week:{next_week}"
    keys = [key for _ in range(3) for key in await send(category="coffee")]
    assert f"challenge:three-this-week:week:{next_week}" in keys


async def test_a_late_event_counts_in_the_period_it_occurred_in(
    engine: Engine, send: Sender, clock: Clock
) -> None:
    await send(category="coffee")
    await send(category="coffee")
    clock.set(paris(MONDAY + timedelta(days=8), 10))  # the next Tuesday
    late = await send(category="coffee", at=paris(MONDAY + timedelta(days=6), 21))  # Sunday
    assert f"challenge:three-this-week:week:{MONDAY}" in late
    weekly = next(c for c in (await engine.progress("ada")).challenges if c.id == "three-this-week")
    assert weekly.progress.current == 0


async def test_events_too_old_or_in_the_future_are_refused_and_change_nothing(
    engine: Engine, send: Sender
) -> None:
    with pytest.raises(EventTooOldError, match="late-event tolerance of 7 days"):
        await send(category="coffee", at=WEDNESDAY - timedelta(days=8))
    with pytest.raises(EventInFutureError, match="ahead of the server clock"):
        await send(category="coffee", at=WEDNESDAY + timedelta(minutes=6))
    assert await send(category="coffee", at=WEDNESDAY + timedelta(minutes=4))
    progress = await engine.progress("ada")
    assert next(m for m in progress.milestones if m.id == "coffee-lover").value == 1


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (Event(id="", player_id="ada", type="purchase"), "id must be a non-empty string"),
        (Event(id="x", player_id="a{b}", type="purchase"), "playerId must not contain"),
        (Event(id="x", player_id="ada", type=""), "type must be a non-empty string"),
        (Event(id="x", player_id="ada", type="t", value=float("nan")), "finite number"),
    ],
)
async def test_malformed_events_get_a_clear_error(
    engine: Engine, event: Event, message: str
) -> None:
    with pytest.raises(EventError, match=message) as raised:
        await engine.record(event)
    assert raised.value.code == "BAD_REQUEST"


async def test_a_fixed_window_challenge_counts_only_inside_its_window(
    engine: Engine, send: Sender, clock: Clock
) -> None:
    window = engine.program.challenges["advent"].window
    assert window is not None
    opens = window.start  # a date: the window opens at midnight in Paris
    assert not isinstance(opens, datetime)
    clock.set(paris(opens - timedelta(days=1), 23, 30))
    await send(category="coffee")
    clock.set(paris(opens, 0, 30))
    assert "challenge:advent" not in await send(category="coffee")
    unlocked = await send(category="coffee")
    assert "challenge:advent" in unlocked and "badge:advent" in unlocked
    advent = next(c for c in (await engine.progress("ada")).challenges if c.id == "advent")
    assert advent.progress.completed
    assert advent.starts_at == paris(opens)


async def test_a_challenge_with_several_goals_needs_all_of_them(
    engine: Engine, send: Sender
) -> None:
    await send(category="tea", store="a")
    await send(category="tea", store="b")
    explorer = next(c for c in (await engine.progress("ada")).challenges if c.id == "explorer")
    assert (explorer.progress.current, explorer.progress.target) == (1, 2)
    assert explorer.progress.percent == 50
    assert await send(type="review") == [f"challenge:explorer:month:{TODAY:%Y-%m}"]


async def test_a_challenge_waits_for_its_prerequisite(engine: Engine, send: Sender) -> None:
    first = await send(category="coffee")
    assert not any(key.startswith("challenge:loyal") for key in first)
    await send(category="coffee")
    third = await send(category="coffee")
    assert "milestone:coffee-lover:2" in third
    assert f"challenge:loyal:week:{MONDAY}" in third


async def test_an_audience_limits_who_can_take_a_challenge(engine: Engine, send: Sender) -> None:
    await engine.set_player("vip", attributes={"vip": True})
    assert f"challenge:vip-only:day:{TODAY}" in await send("vip", category="coffee")
    assert not any("vip-only" in key for key in await send("ada", category="coffee"))
    listed = {c.id for c in (await engine.progress("ada")).challenges}
    assert "vip-only" not in listed and "vip-only" in {
        c.id for c in (await engine.progress("vip")).challenges
    }


async def test_a_streak_uses_an_earned_freeze_to_bridge_a_missed_day(
    engine: Engine, send: Sender, clock: Clock
) -> None:
    await send(category="coffee")
    clock.advance(days=1)
    await send(category="coffee")  # two days: a freeze is earned
    clock.advance(days=1)
    streak = (await engine.progress("ada")).streaks[0]
    assert (streak.current, streak.at_risk, streak.freezes) == (2, True, 1)
    clock.advance(days=1)  # day 3 missed; the freeze still covers it
    streak = (await engine.progress("ada")).streaks[0]
    assert (streak.current, streak.at_risk, streak.freezes) == (2, True, 0)
    unlocked = await send(category="coffee")
    assert "streak:daily-coffee:3" in unlocked and "badge:streaker" in unlocked
    streak = (await engine.progress("ada")).streaks[0]
    assert (streak.current, streak.longest, streak.at_risk, streak.freezes) == (3, 3, False, 0)
    assert streak.progress.completed
    clock.advance(days=2)
    streak = (await engine.progress("ada")).streaks[0]
    assert (streak.current, streak.longest, streak.at_risk) == (0, 3, False)
    await send(category="coffee")
    assert (await engine.progress("ada")).streaks[0].current == 1


async def test_periods_follow_the_players_own_timezone(engine: Engine, send: Sender) -> None:
    await engine.set_player("nyc", timezone="America/New_York")
    yesterday = TODAY - timedelta(days=1)
    at = datetime.combine(yesterday, time(22), ZoneInfo("America/New_York"))  # Wednesday in Paris
    await send("nyc", category="coffee", at=at)
    assert f"challenge:daily-double:day:{yesterday}" in await send("nyc", category="coffee", at=at)


async def test_day_boundaries_hold_across_the_autumn_dst_switch(
    engine: Engine, send: Sender, clock: Clock
) -> None:
    clock.set(datetime(2026, 10, 26, 12, 0, tzinfo=UTC))
    # 00:30 on Oct 25 (CEST, UTC+2) and 23:30 on Oct 25 (CET, UTC+1): one 25-hour day.
    await send(category="coffee", at=datetime(2026, 10, 24, 22, 30, tzinfo=UTC))
    assert "challenge:daily-double:day:2026-10-25" in await send(
        category="coffee", at=datetime(2026, 10, 25, 22, 30, tzinfo=UTC)
    )
    assert not any(
        "daily-double" in key
        for key in await send(category="coffee", at=datetime(2026, 10, 25, 23, 30, tzinfo=UTC))
    )


async def test_a_batch_gives_the_same_results_as_one_event_at_a_time(
    engine: Engine, store_url: str, clock: Clock
) -> None:
    events = [
        Event(id=f"b{n}", player_id=f"p{n % 3}", type="purchase", properties={"category": "coffee"})
        for n in range(12)
    ]
    batch = await engine.record_many(events)
    keys: dict[str, list[str]] = {}
    for event, result in zip(events, batch, strict=True):
        keys.setdefault(event.player_id, []).extend(u.key for u in result.unlocks)
    assert keys["p0"][:2] == ["milestone:coffee-lover:1", "badge:first-sip"]
    assert f"challenge:three-this-week:week:{MONDAY}" in keys["p1"]
    assert all(keys[p].count("milestone:coffee-lover:2") == 1 for p in ("p0", "p1", "p2"))
    again = await engine.record_many(events)
    assert all(result.duplicate for result in again)


async def test_a_bad_event_refuses_the_whole_batch(engine: Engine) -> None:
    events = [
        Event(id="ok", player_id="ada", type="purchase", properties={"category": "coffee"}),
        Event(id="bad", player_id="ada", type="", properties={}),
    ]
    with pytest.raises(EventError, match=r"events\[1\] \('bad'\)"):
        await engine.record_many(events)
    assert (await engine.progress("ada")).milestones[0].value == 0


async def test_a_batch_larger_than_the_limit_is_refused(engine: Engine) -> None:
    events = [Event(id=str(n), player_id="ada", type="purchase") for n in range(1001)]
    with pytest.raises(BatchTooLargeError, match="at most 1000"):
        await engine.record_many(events)


async def test_unlocks_page_through_the_outbox_in_order(engine: Engine, send: Sender) -> None:
    for _ in range(3):
        await send(category="coffee")
    everything = await engine.unlocks("ada")
    assert [u.key for u in everything][:2] == ["milestone:coffee-lover:1", "badge:first-sip"]
    first_two = await engine.unlocks("ada", limit=2)
    rest = await engine.unlocks("ada", after=first_two[-1].id)
    assert first_two + rest == everything
    regular = next(u for u in everything if u.key == "milestone:coffee-lover:2")
    assert (regular.kind, regular.badge, regular.points) == ("MILESTONE", "regular", 100)
    assert regular.unlocked_at == WEDNESDAY


async def test_a_profile_changed_by_another_engine_is_picked_up(
    engine: Engine, store_url: str, clock: Clock
) -> None:
    await engine.record(Event(id="1", player_id="ada", type="purchase"))
    other = Engine(engine.program, store_from_url(store_url), engine.settings, clock)
    await other.set_player("ada", attributes={"vip": True})
    result = await engine.record(
        Event(id="2", player_id="ada", type="purchase", properties={"category": "coffee"})
    )
    assert f"challenge:vip-only:day:{TODAY}" in [u.key for u in result.unlocks]
    await other.store.close()


async def test_players_without_a_timezone_live_in_the_programs(
    store_url: str, clock: Clock
) -> None:
    store = store_from_url(store_url)
    engine = Engine(load_program(CAFE), store, EngineSettings(default_timezone="UTC"), clock)
    at = paris(TODAY, 0, 30)  # still the day before in UTC
    keys = []
    for n in range(2):
        event = Event(
            id=f"tz{n}",
            player_id="ada",
            type="purchase",
            occurred_at=at,
            properties={"category": "coffee"},
        )
        keys += [unlock.key for unlock in (await engine.record(event)).unlocks]
    assert f"challenge:daily-double:day:{TODAY}" in keys
    await store.close()


async def test_a_batch_spanning_days_counts_each_event_in_its_own_day(
    engine: Engine, clock: Clock
) -> None:
    days = [WEDNESDAY - timedelta(days=2), WEDNESDAY - timedelta(days=1), WEDNESDAY]
    times = [days[0], days[2], days[1], days[0] + timedelta(hours=1), days[2]]
    events = [
        Event(
            id=f"{player}{n}",
            player_id=player,
            type="purchase",
            occurred_at=at + timedelta(minutes=n),
            properties={"category": "coffee"},
        )
        for n, at in enumerate(times)
        for player in ("ada", "bob")
    ]
    results = await engine.record_many(events)
    for player in ("ada", "bob"):
        unlocked = [
            unlock.key
            for event, result in zip(events, results, strict=True)
            if event.player_id == player
            for unlock in result.unlocks
        ]
        doubles = sorted(key for key in unlocked if key.startswith("challenge:daily-double"))
        assert doubles == [
            f"challenge:daily-double:day:{MONDAY}",
            f"challenge:daily-double:day:{TODAY}",
        ]


async def test_a_window_opening_within_a_quarter_hour_counts_from_its_first_second(
    store_url: str, clock: Clock, tmp_path: Path
) -> None:
    program = tmp_path / "program.yaml"
    program.write_text(
        "program: {name: Opening, timezone: Europe/Paris}\n"
        "metrics:\n  visits: {event: visit}\n"
        "challenges:\n"
        "  opening:\n"
        "    metric: visits\n    target: 1\n"
        f"    window: {{start: {TODAY}T11:07:00, end: {TODAY + timedelta(days=1)}T00:00:00}}\n"
    )
    store = store_from_url(store_url)
    engine = Engine(load_program(program), store, clock=clock)
    clock.advance(minutes=10)
    before, after = [
        await engine.record(
            Event(id=str(n), player_id="ada", type="visit", occurred_at=WEDNESDAY + at)
        )
        for n, at in enumerate((timedelta(minutes=6, seconds=59), timedelta(minutes=7)))
    ]
    assert (before.unlocks, [u.key for u in after.unlocks]) == ([], ["challenge:opening"])
    await store.close()


async def test_events_of_different_days_share_one_plan_shape(engine: Engine) -> None:
    def plan(at: datetime) -> Plan:
        return engine.plan(
            Event(
                id=at.isoformat(),
                player_id="ada",
                type="purchase",
                occurred_at=at,
                properties={"category": "coffee", "amount": 4.5},
            )
        )

    monday, wednesday = plan(WEDNESDAY - timedelta(days=2)), plan(WEDNESDAY)
    assert monday.shape is not None and monday.shape is wednesday.shape
    assert monday.keys != wednesday.keys and monday.args != wednesday.args
    assert f"challenge:daily-double:day:{TODAY}" in wednesday.args


async def test_plans_stay_right_when_the_planners_caches_start_over(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner, "MAX_SKELETONS", 1)
    events = [
        Event(
            id=f"e{n}",
            player_id="ada",
            type=kind,
            occurred_at=WEDNESDAY - timedelta(days=n % 2, minutes=n),
            properties={"category": "coffee", "amount": 3, "store": f"s{n % 3}"},
        )
        for n, kind in enumerate(["purchase", "review", "purchase", "purchase", "review"] * 2)
    ]
    unlocked = [u.key for result in await engine.record_many(events) for u in result.unlocks]
    assert sorted(key for key in unlocked if "daily-double" in key) == [
        f"challenge:daily-double:day:{TODAY - timedelta(days=1)}",
        f"challenge:daily-double:day:{TODAY}",
    ]
    progress = await engine.progress("ada")
    assert next(m for m in progress.milestones if m.id == "coffee-lover").value == 6
    assert f"challenge:explorer:month:{TODAY:%Y-%m}" in unlocked


async def test_unlocks_are_described_by_the_program_in_use(
    engine: Engine, send: Sender, tmp_path: Path
) -> None:
    await send(category="coffee")
    [entry, *_] = await engine.store.outbox("ada", None, 10)
    assert engine.describe("ada", entry).title == "First sip"
    renamed = tmp_path / "cafe.yaml"
    renamed.write_text(CAFE.read_text().replace("name: First sip", "name: First cup"))
    engine.use_program(load_program(renamed))
    assert engine.describe("ada", entry).title == "First cup"
    assert [u.title for u in await engine.unlocks("ada", limit=1)] == ["First cup"]


async def test_an_event_whose_profile_keeps_changing_is_refused_after_a_few_replans(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = []

    async def always_stale(plan: Plan) -> Applied:
        attempts.append(plan.keys[0])
        return Applied("stale", [])

    monkeypatch.setattr(engine.store, "apply", always_stale)
    with pytest.raises(ConflictError, match="keeps changing"):
        await engine.record(Event(id="e1", player_id="ada", type="purchase"))
    assert len(attempts) == MAX_REPLANS + 1


def test_a_broken_streak_aims_at_the_next_milestone_not_yet_unlocked(clock: Clock) -> None:
    program = load_program(CAFE)
    streak = Streak.model_validate(
        {"metric": "coffees", "per": "day", "milestones": [{"at": 2}, {"at": 7}]}
    )
    now = clock()
    today = period_of(now, Granularity.DAY, ZoneInfo("Europe/Paris"), program.week_start).index
    broken = {"current": "2", "longest": "2", "freezes": "0", "last": str(today - 3)}
    earned = {keys.streak_unlock("walks", 2): "0"}
    paris = ZoneInfo("Europe/Paris")
    progress = streak_progress("walks", streak, broken, program, paris, now, earned).progress
    assert (progress.current, progress.target, progress.completed) == (0, 7, False)
    both = {**earned, keys.streak_unlock("walks", 7): "0"}
    assert streak_progress("walks", streak, broken, program, paris, now, both).progress.completed
