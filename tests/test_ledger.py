"""The points ledger in SQL, on SQLite and on PostgreSQL alike: grants once per
source, caps, expiry oldest first, adjustments, tiers; balance == sum(ledger)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from app import points, tiers
from app.grants import Grant, fixed, grant_now
from app.migrations import upgrade_database
from app.points import ACCOUNTS, ENTRIES
from app.sql import make_database
from engine.errors import InsufficientPointsError, PointsError
from engine.events import Event
from engine.points import LedgerReason, earnings
from engine.program.loader import load_program
from engine.program.program import Program, TierLadder
from tests.support.loyalty import START, empty_economy
from tests.support.programs import LOYALTY

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(LOYALTY)


@pytest.fixture(scope="module")
def ladder(program: Program) -> TierLadder:
    assert program.tiers is not None
    return program.tiers


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    upgrade_database(database_url)
    engine = make_database(database_url)
    empty_economy(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def player() -> str:
    return f"player-{uuid.uuid4().hex[:12]}"


def purchase(program: Program, player: str, event_id: str, amount: float, at: datetime) -> Grant:
    event = Event(event_id, player, "purchase", occurred_at=at, properties={"amount": amount})
    return Grant(
        player,
        LedgerReason.EARN,
        event_id,
        lambda multiplier: earnings(program, event, PARIS, multiplier),
        at,
    )


def review_event(program: Program, player: str, event_id: str, at: datetime) -> Grant:
    event = Event(event_id, player, "review", occurred_at=at)
    return Grant(
        player,
        LedgerReason.EARN,
        event_id,
        lambda multiplier: earnings(program, event, PARIS, multiplier),
        at,
    )


def credit(db: Engine, program: Program, *grants: Grant, at: datetime = START) -> list[str]:
    """Grant in a transaction of its own, every grant recorded `at`."""
    timed = [replace(item, at=at) for item in grants]
    return [a.key for a in grant_now(db, timed, program, PARIS).announcements]


def assert_consistent(db: Engine, player: str) -> int:
    """The account's balance is the sum of the player's ledger; returns it."""
    with db.connect() as connection:
        total = connection.execute(
            select(func.coalesce(func.sum(ENTRIES.c.delta), 0)).where(ENTRIES.c.player_id == player)
        ).scalar_one()
        balance = connection.execute(
            select(ACCOUNTS.c.balance).where(ACCOUNTS.c.player_id == player)
        ).scalar_one_or_none()
    assert (balance or 0) == total
    assert total >= 0
    return int(total)


def test_an_event_earns_once_however_often_it_is_granted(
    db: Engine, program: Program, player: str
) -> None:
    credit(db, program, purchase(program, player, "e1", 4.35, START))
    credit(db, program, purchase(program, player, "e1", 4.35, START))
    credit(
        db,
        program,
        purchase(program, player, "e1", 4.35, START),
        purchase(program, player, "e1", 4.35, START),
    )
    lines = points.entries(db, player, None, 10, START)
    assert [(line.delta, line.reason, line.reference) for line in lines] == [
        (43, LedgerReason.EARN, "e1")
    ]
    assert points.balance(db, player, START).balance == 43 == assert_consistent(db, player)


def test_unlock_points_are_granted_once_by_key(db: Engine, program: Program, player: str) -> None:
    reward = Grant(player, LedgerReason.REWARD, "milestone:coffee-lover:2", fixed(100), START)
    credit(db, program, reward)
    credit(db, program, reward)
    balance = points.balance(db, player, START)
    assert (balance.balance, balance.lifetime_earned) == (100, 100)


def test_an_event_that_earns_nothing_leaves_no_entry(
    db: Engine, program: Program, player: str
) -> None:
    credit(db, program, purchase(program, player, "e1", 0.05, START))
    assert points.entries(db, player, None, 10, START) == []


def test_a_cap_limits_a_rule_per_local_day(db: Engine, program: Program, player: str) -> None:
    morning = START
    credit(db, program, *(review_event(program, player, f"r{n}", morning) for n in range(3)))
    next_day = START + timedelta(days=1)
    credit(db, program, review_event(program, player, "r3", next_day), at=next_day)
    deltas = [line.delta for line in reversed(points.entries(db, player, None, 10, START))]
    assert deltas == [5, 5, 2, 5]  # the cap of 12 a day leaves 2 for the third review


def test_a_tier_is_reached_at_once_and_its_multiplier_applies_after(
    db: Engine, program: Program, ladder: TierLadder, player: str
) -> None:
    announced = credit(db, program, purchase(program, player, "e1", 20, START))
    assert announced == ["tier:gold:2026-11-02"]  # 200 qualifying points reach Gold
    credit(db, program, purchase(program, player, "e2", 10, START))
    assert [line.delta for line in points.entries(db, player, None, 1, START)] == [150]  # x1.5
    status = tiers.tier_status(db, player, ladder, START)
    assert (status.level.id, status.qualifying_points, status.since) == ("gold", 350, START)


def test_a_tier_change_stays_pending_until_announced(
    db: Engine, program: Program, player: str
) -> None:
    credit(db, program, purchase(program, player, "e1", 20, START))
    [pending] = tiers.pending(db, [player])
    assert credit(db, program, Grant(player, LedgerReason.REWARD, "x", fixed(1), START)) == [
        pending.key
    ]
    tiers.announced(db, pending)
    assert tiers.pending(db, [player]) == []


def test_unspent_points_expire_soonest_first(db: Engine, program: Program, player: str) -> None:
    credit(db, program, Grant(player, LedgerReason.REWARD, "a", fixed(100), START), at=START)
    day = timedelta(days=1)
    credit(
        db, program, Grant(player, LedgerReason.REWARD, "b", fixed(50), START), at=START + 10 * day
    )
    points.adjust(db, player, -30, "broken cup", "adj-1", START + 5 * day, None)
    soon = points.balance(db, player, START + 5 * day)
    assert (soon.balance, soon.expiring_soon) == (120, 70)  # a's 100, less the 30 spent

    after_a = points.balance(db, player, START + 31 * day)
    assert (after_a.balance, after_a.lifetime_earned, after_a.expiring_soon) == (50, 150, 50)
    after_b = points.balance(db, player, START + 41 * day)
    assert after_b.balance == 0 == assert_consistent(db, player)
    expired = [
        line.delta
        for line in points.entries(db, player, None, 10, START)
        if line.reason == "expire"
    ]
    assert expired == [-50, -70]


def test_expiring_everyone_touches_only_lapsed_points(
    db: Engine, program: Program, player: str
) -> None:
    other = player + "-b"
    credit(db, program, Grant(player, LedgerReason.REWARD, "a", fixed(100), START))
    later = START + timedelta(days=20)
    credit(db, program, Grant(other, LedgerReason.REWARD, "a", fixed(100), START), at=later)
    assert points.expire_all(db, START + timedelta(days=31)) == (1, 100)
    assert points.expire_all(db, START + timedelta(days=31)) == (0, 0)
    assert assert_consistent(db, player) == 0 and assert_consistent(db, other) == 100


def test_an_adjustment_is_idempotent_and_never_overdraws(
    db: Engine, program: Program, player: str
) -> None:
    first = points.adjust(db, player, 40, "welcome gift", "gift-1", START, timedelta(days=30))
    again = points.adjust(db, player, 40, "welcome gift", "gift-1", START, timedelta(days=30))
    assert again == first and first.note == "welcome gift"
    assert first.expires_at == START + timedelta(days=30)
    with pytest.raises(InsufficientPointsError, match=r"balance .* is 40"):
        points.adjust(db, player, -41, "too much", "take-1", START, None)
    with pytest.raises(PointsError, match="must not be 0"):
        points.adjust(db, player, 0, "nothing", "zero", START, None)
    assert assert_consistent(db, player) == 40


def test_the_ledger_pages_newest_first(db: Engine, program: Program, player: str) -> None:
    for n in range(5):
        credit(db, program, Grant(player, LedgerReason.REWARD, f"k{n}", fixed(n + 1), START))
    first = points.entries(db, player, None, 2, START)
    rest = points.entries(db, player, first[-1].id, 10, START)
    assert [line.reference for line in first + rest] == ["k4", "k3", "k2", "k1", "k0"]


def test_a_review_moves_down_only_players_below_their_level(
    db: Engine, program: Program, ladder: TierLadder, player: str
) -> None:
    active, idle = player + "-active", player + "-idle"
    for who in (active, idle):
        credit(db, program, purchase(program, who, "e1", 25, START))
    review_day = START + timedelta(days=95)
    day_before = review_day - timedelta(days=1)
    credit(db, program, purchase(program, active, "e2", 20, day_before), at=day_before)

    result = tiers.review(db, ladder, review_day, date(2027, 2, 1))
    assert (result.downgraded, result.upgraded) == (1, 0)
    assert tiers.tier_status(db, idle, ladder, review_day).level.id == "green"
    assert tiers.tier_status(db, active, ladder, review_day).level.id == "gold"
    assert tiers.Announcement(idle, "tier:green:2027-02-01") in result.announcements
    again = tiers.review(db, ladder, review_day, date(2027, 2, 1))
    assert again.reviewed == 0


def test_no_tier_moves_down_between_reviews(
    db: Engine, program: Program, ladder: TierLadder, player: str
) -> None:
    credit(db, program, purchase(program, player, "e1", 25, START))
    much_later = START + timedelta(days=200)
    credit(db, program, Grant(player, LedgerReason.REWARD, "k", fixed(1), START), at=much_later)
    assert tiers.tier_status(db, player, ladder, much_later).level.id == "gold"
