"""The engine: the one object the service (or any Python program) talks to.

    engine = Engine(load_program("seed"), store_from_url("sqlite:///questline.db"))
    result = await engine.record(Event(id="e1", player_id="ada", type="purchase"))
    progress = await engine.progress("ada")

It checks events, plans them with the current program and hands each plan to
the store, which executes it atomically. A program can be swapped while the
engine serves (hot reload); an event is always planned against one program.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.caches import LRU
from engine.errors import (
    BatchTooLargeError,
    ConfigurationError,
    ConflictError,
    EventError,
    InvalidArgumentError,
)
from engine.events import Event, check_identifier, checked
from engine.leaderboards import Standings, standings
from engine.periods import resolve_timezone
from engine.planner import Planner
from engine.profiles import PROFILES_KEPT, Profile
from engine.program.program import ALL_TIME, Program
from engine.progress import PlayerProgress, StreakState, player_progress, streak_states
from engine.store import keys
from engine.store.base import Applied, OutboxEntry, Plan, Read, Store
from engine.store.ops import Claim
from engine.unlocks import Descriptions, Unlock, unlock_value

Clock = Callable[[], datetime]

#: How often a plan is rebuilt when another process keeps changing the profile.
MAX_REPLANS = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording one event did; a duplicate reports the original unlocks.

    It also carries the facts everything downstream (points, analytics, the
    journal) works from, so nothing there re-reads the clock or re-checks the
    event: the event as checked (`occurred_at` resolved), the moment it was
    recorded at, and the version of the program that planned it.
    """

    event_id: str
    duplicate: bool
    unlocks: list[Unlock]
    event: Event
    recorded_at: datetime
    program_version: str
    #: What the sender should know, e.g. that no rule listens to its event type.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineSettings:
    default_timezone: str = "UTC"
    late_tolerance: timedelta = timedelta(days=7)
    future_tolerance: timedelta = timedelta(minutes=5)
    max_batch: int = 1000


class Engine:
    def __init__(
        self,
        program: Program,
        store: Store,
        settings: EngineSettings | None = None,
        clock: Clock = utc_now,
    ) -> None:
        _check_leaderboards(program, store)
        self.store = store
        self.settings = settings or EngineSettings()
        self.clock = clock
        self._default_timezone = self._timezone_of(program)
        self._profiles: LRU[str, Profile] = LRU(PROFILES_KEPT)
        # Events may be retried as long as they could still be accepted.
        self._dedupe_ttl = (
            int((self.settings.late_tolerance + self.settings.future_tolerance).total_seconds())
            + 86400
        )
        self._planner = Planner(program, self.settings.late_tolerance)
        self._descriptions = Descriptions(program)

    @property
    def program(self) -> Program:
        return self._planner.program

    def use_program(self, program: Program) -> None:
        """Serve a new program from the next event on (hot reload)."""
        _check_leaderboards(program, self.store)
        timezone = self._timezone_of(program)
        if timezone != self._default_timezone:
            self._default_timezone = timezone
            self._profiles.clear()  # they carry the old default
        self._planner = Planner(program, self.settings.late_tolerance)
        self._descriptions = Descriptions(program)

    def _timezone_of(self, program: Program) -> ZoneInfo:
        """Players without a timezone of their own live in the program's,
        else in the settings' default."""
        return resolve_timezone(program.info.timezone or self.settings.default_timezone)

    async def record(self, event: Event) -> Recorded:
        """Record one event in one atomic store call (one round trip on Redis)."""
        return (await self.record_many([event]))[0]

    async def record_many(self, events: Sequence[Event]) -> list[Recorded]:
        """Record a batch: every event is checked first, so one bad event
        refuses the whole batch and changes nothing."""
        if len(events) > self.settings.max_batch:
            raise BatchTooLargeError(
                f"{len(events)} events in one call; send at most {self.settings.max_batch} "
                "per batch"
            )
        return await self._record(events, [self.clock()] * len(events))

    async def replay(
        self, events: Sequence[Event], moments: Sequence[datetime], backfilled: bool = False
    ) -> list[Recorded]:
        """Record events as they were recorded before, each at its own moment
        (`questline rebuild` replays the journal this way): the checks, period
        buckets, expiries and unlock times are those of the original recording.

        With `backfilled` (`questline backfill`), what they claim is claimed
        now and flagged so: it is news to the player today, not back then.
        """
        unlock = unlock_value(self.clock(), backfilled=True) if backfilled else None
        return await self._record(events, moments, unlock)

    async def settle(self, player_id: str, run: str) -> list[Unlock]:
        """Claim now, flagged as backfilled, every milestone tier and current
        challenge instance the player's counters already meet and they lack
        (`Planner.settle`); `run` names the backfill run, and the same run
        twice is a duplicate."""
        check_identifier("playerId", player_id)
        for _ in range(MAX_REPLANS + 1):
            profile = await self.profile(player_id)
            now = self.clock()
            plan = self._planner.settle(
                player_id, profile, now, keys.claim(player_id, run), self._dedupe_ttl
            )
            plan.args[0] = unlock_value(now, backfilled=True)
            applied = await self.store.apply(plan)
            if applied.status != "stale":
                return [self.describe(player_id, entry) for entry in applied.entries]
            await self.profile(player_id, refresh=True)
        raise ConflictError("the player's profile keeps changing; retry the backfill")

    async def _record(
        self, events: Sequence[Event], moments: Sequence[datetime], unlock: str | None = None
    ) -> list[Recorded]:
        accepted = [
            self._check(event, now, index, len(events))
            for index, (event, now) in enumerate(zip(events, moments, strict=True))
        ]
        planner, descriptions = self._planner, self._descriptions
        version = planner.program.version

        def plans(indexes: Sequence[int]) -> Iterator[Plan]:
            # Planned as the store consumes them, so Redis runs the first
            # plans while the next are being planned.
            for i in indexes:
                event = accepted[i]
                profile = self._cached_profile(event.player_id)
                plan = planner.plan(event, profile, moments[i], self._dedupe_ttl)
                if unlock is not None and plan.args:
                    plan.args[0] = unlock  # Plan.args[0] is what a claim stores
                yield plan

        outcomes = await self._apply(plans(range(len(accepted))), len(accepted))
        stale = [i for i, outcome in enumerate(outcomes) if outcome.status == "stale"]
        for _ in range(MAX_REPLANS):
            if not stale:
                break
            for player_id in {accepted[i].player_id for i in stale}:
                await self.profile(player_id, refresh=True)
            again = await self._apply(plans(stale), len(stale))
            for i, outcome in zip(stale, again, strict=True):
                outcomes[i] = outcome
            stale = [
                i for i, outcome in zip(stale, again, strict=True) if outcome.status == "stale"
            ]
        if stale:
            raise ConflictError("the player's profile keeps changing; retry the event")
        describe = descriptions.unlock
        program = planner.program
        return [
            Recorded(
                event.id,
                outcome.status == "duplicate",
                [describe(event.player_id, entry) for entry in outcome.entries]
                if outcome.entries
                else [],
                event,
                now,
                version,
                tuple(filter(None, [program.unheard(event.type)])),
            )
            for event, outcome, now in zip(accepted, outcomes, moments, strict=True)
        ]

    async def progress(self, player_id: str) -> PlayerProgress:
        """Every challenge, milestone, streak and badge of a player, read at once."""
        check_identifier("playerId", player_id)
        profile = await self.profile(player_id)
        return await player_progress(self.program, self.store, player_id, profile, self.clock())

    async def streak_states(self, player_ids: Sequence[str]) -> dict[str, dict[str, StreakState]]:
        """Every streak of each player as it stands now (player id -> streak id ->
        state), as their progress shows it: for reports over many players, in
        one store round trip, so pass them a few hundred at a time."""
        for player_id in player_ids:
            check_identifier("playerId", player_id)
        return await streak_states(
            self.program, self.store, player_ids, self._default_timezone, self.clock()
        )

    async def unlocks(
        self, player_id: str, after: str | None = None, limit: int = 100
    ) -> list[Unlock]:
        """A player's unlocks from the outbox, oldest first, strictly after `after`."""
        check_identifier("playerId", player_id)
        entries = await self.store.outbox(player_id, after, limit)
        return [self.describe(player_id, entry) for entry in entries]

    async def leaderboard(
        self,
        board_id: str,
        period: str = ALL_TIME,
        first: int = 10,
        around: str | None = None,
    ) -> Standings:
        """A board's current period, as the program's timezone sees it: its
        `first` players and, when `around` names one, where they stand."""
        if around is not None:
            check_identifier("around", around)
        return await standings(
            self.program,
            self.store,
            board_id,
            period,
            first,
            around,
            self.clock(),
            self._default_timezone,
        )

    async def claim(self, player_id: str, key: str) -> list[Unlock]:
        """Claim an unlock that no counter decides (a tier reached): once, ever,
        into the outbox and the live feed like any other unlock.

        Returns the unlock; claiming the same key again returns it again (for
        as long as an event result is kept), or nothing once that has lapsed.
        """
        check_identifier("playerId", player_id)
        for _ in range(MAX_REPLANS + 1):
            profile = await self.profile(player_id)
            plan = Plan(
                player_id=player_id,
                keys=[
                    keys.claim(player_id, key),
                    keys.profile(player_id),
                    keys.unlocks(player_id),
                    keys.outbox(player_id),
                ],
                profile_version=profile.version,
                dedupe_ttl=self._dedupe_ttl,
            )
            plan.op(Claim(key, unlock=unlock_value(self.clock())))
            applied = await self.store.apply(plan)
            if applied.status != "stale":
                return [self.describe(player_id, entry) for entry in applied.entries]
            await self.profile(player_id, refresh=True)
        raise ConflictError("the player's profile keeps changing; retry the claim")

    def plan(self, event: Event) -> Plan:
        """The store operations an event would cause, without applying them
        (previews, benchmarks); uses the cached profile of its player."""
        now = self.clock()
        checked_event = self._check(event, now, 0, 1)
        profile = self._cached_profile(checked_event.player_id)
        return self._planner.plan(checked_event, profile, now, self._dedupe_ttl)

    def describe(self, player_id: str, entry: OutboxEntry) -> Unlock:
        """An outbox entry as an unlock, described by the current program."""
        return self._descriptions.unlock(player_id, entry)

    async def set_player(
        self,
        player_id: str,
        *,
        timezone: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Profile:
        """Describe a player: their timezone and the attributes audiences test."""
        check_identifier("playerId", player_id)
        fields: dict[str, str] = {}
        if timezone is not None:
            try:
                resolve_timezone(timezone)
            except ConfigurationError as error:
                raise InvalidArgumentError(f"timezone: {error}") from None
            fields["timezone"] = timezone
        if attributes is not None:
            fields["attributes"] = json.dumps(dict(attributes))
        await self.store.set_profile(player_id, fields)
        return await self.profile(player_id, refresh=True)

    async def profile(self, player_id: str, refresh: bool = False) -> Profile:
        cached = None if refresh else self._profiles.get(player_id)
        if cached is not None:
            return cached
        [fields] = await self.store.read([Read("hash", keys.profile(player_id))])
        profile = Profile.from_fields(fields, self._default_timezone)
        self._profiles.put(player_id, profile)
        return profile

    def _check(self, event: Event, now: datetime, index: int, count: int) -> Event:
        try:
            return checked(event, now, self.settings.late_tolerance, self.settings.future_tolerance)
        except EventError as error:
            if count == 1:
                raise
            raise type(error)(f"events[{index}] ({event.id!r}): {error}") from None

    def _cached_profile(self, player_id: str) -> Profile:
        """Plan optimistically with what we know; a stale guess costs one re-plan.

        A player never seen is taken to have no profile (version 0) and
        remembered so: if that is wrong the store says the plan is stale and
        `profile(refresh=True)` replaces the guess.
        """
        profile = self._profiles.get(player_id)
        if profile is None:
            profile = Profile(0, self._default_timezone)
            self._profiles.put(player_id, profile)
        return profile

    async def _apply(self, plans: Iterator[Plan], count: int) -> list[Applied]:
        if count == 1:
            return [await self.store.apply(next(plans))]
        return await self.store.apply_many(plans)


def _check_leaderboards(program: Program, store: Store) -> None:
    """Refuse a program whose boards the store cannot keep in an event's atomic step."""
    if program.leaderboards and store.leaderboards_unsupported is not None:
        raise ConfigurationError(
            f"the program has leaderboards ({', '.join(program.leaderboards)}) that this "
            f"store cannot keep: {store.leaderboards_unsupported}; or remove the "
            "`leaderboards` section"
        )
