"""The service as the GraphQL layer needs it: its protocols and the data they return.

Framework-free on purpose: the app implements these and imports them without
loading Strawberry (`questline db upgrade` has no use for the schema), and the
schema's resolvers see only these methods, never the engine behind them, so no
resolver can record an event without its durable copy, grants and analytics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from engine.backfill import Backfilled
from engine.engine import Recorded
from engine.events import Event
from engine.explain import Explanation
from engine.leaderboards import Standings
from engine.periods import Granularity, Period
from engine.points import Balance, LedgerLine, LedgerReason
from engine.program.models import CatalogReward
from engine.program.program import Program
from engine.progress import PlayerProgress
from engine.referrals import Referral, ReferralInfo
from engine.rewards import Redemption
from engine.simulation import Simulated
from engine.tiers import TierStatus
from engine.unlocks import Unlock
from engine.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookKind

T = TypeVar("T")

#: Awaited when a subscriber falls too far behind: the app closes its socket.
TooSlow = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of a list read in order, each item with its opaque cursor: pass
    the last one's as `after` for the next page."""

    items: list[tuple[str, T]]
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class TierReview:
    period: date
    reviewed: int
    upgraded: int
    downgraded: int


class Economy(Protocol):
    """Points, tiers and rewards, as the schema needs them."""

    async def balance(self, player_id: str) -> Balance:
        """The balance after expiring what has lapsed."""

    async def ledger(self, player_id: str, after: str | None, first: int) -> Page[LedgerLine]:
        """Newest first; the cursor is the entry's id."""

    async def tier(self, player_id: str) -> TierStatus | None:
        """None when the program has no tiers."""

    async def rewards(self) -> list[tuple[str, CatalogReward, int | None]]:
        """(id, reward, stock left or None when unlimited) for the whole catalog."""

    async def redeem(self, player_id: str, reward_id: str, idempotency_key: str) -> Redemption:
        """Spend points on a reward atomically; the same key returns the same redemption."""

    async def redemptions(self, player_id: str, first: int) -> list[Redemption]: ...

    async def adjust(self, player_id: str, delta: int, note: str, reference: str) -> LedgerLine:
        """An admin's correction, once per reference."""

    async def expire(self) -> tuple[int, int]:
        """Expire lapsed points of every player; (players, points)."""

    async def review_tiers(self) -> TierReview: ...

    async def referral(self, player_id: str) -> ReferralInfo:
        """The player's code (made on first use) and how many it brought."""

    async def apply_referral(self, player_id: str, code: str) -> Referral:
        """Record who referred a new player, or raise the typed refusal."""


@dataclass(frozen=True, slots=True)
class Participation:
    """Players who started a challenge (or one instance of it) and how many completed it."""

    started: int
    completed: int

    @property
    def rate(self) -> float | None:
        """completed / started; None when nobody started."""
        return self.completed / self.started if self.started else None


@dataclass(frozen=True, slots=True)
class StreakStats:
    active: int
    at_risk: int


@dataclass(frozen=True, slots=True)
class PointsStats:
    """Program-wide points; issued == redeemed + expired + deducted + outstanding."""

    issued: int
    issued_by_reason: Mapping[LedgerReason, int]
    redeemed: int
    expired: int
    deducted: int
    outstanding: int


@dataclass(frozen=True, slots=True)
class RetentionStats:
    period: Period
    complete: bool
    customers_at_start: int
    customers_at_end: int
    new_customers: int
    retained: int

    @property
    def rate(self) -> float | None:
        """(customers at end - new customers) / customers at start; None without any."""
        if not self.customers_at_start:
            return None
        return (self.customers_at_end - self.new_customers) / self.customers_at_start


class Analytics(Protocol):
    """Program analytics for the loyalty manager (definitions in app/analytics/)."""

    async def challenges(self) -> dict[str, Participation]:
        """By challenge id; a challenge nobody started is missing."""

    async def challenge_instances(
        self, challenge_id: str, last: int
    ) -> list[tuple[str | None, Participation]]:
        """The latest instances by period key (None: the fixed window), newest first."""

    async def streaks(self) -> dict[str, StreakStats]:
        """By streak id, for every streak of the program."""

    async def points(self) -> PointsStats: ...

    async def retention(self, granularity: Granularity, count: int) -> list[RetentionStats]:
        """The last `count` periods, oldest first, the current one last."""


class Designer(Protocol):
    """The designer's tools (app.designer)."""

    async def simulate(
        self, files: Sequence[tuple[str, str]], since: datetime | None, until: datetime | None
    ) -> Simulated:
        """A candidate program (YAML files by name) compared with the one in use
        on the journal's events of a window."""

    async def explain(self, player_id: str, target: str) -> Explanation:
        """Why a player has a challenge, milestone tier, streak milestone or badge, or not yet."""

    async def backfill(
        self, dry_run: bool, progress: Callable[[int], None] | None = None
    ) -> Backfilled:
        """Replay the journal into the program's new metrics and claim what players
        already meet, flagged as backfilled; with `dry_run`, only say what."""


class Webhooks(Protocol):
    """Webhook endpoints and their deliveries (app/webhooks/)."""

    async def create(
        self, url: str, kinds: Collection[WebhookKind], description: str
    ) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret, shown this once."""

    async def update(
        self,
        endpoint_id: int,
        url: str | None,
        kinds: Collection[WebhookKind] | None,
        description: str | None,
        enabled: bool | None,
    ) -> WebhookEndpoint: ...

    async def delete(self, endpoint_id: int) -> None: ...

    async def rotate_secret(
        self, endpoint_id: int, grace: timedelta | None
    ) -> tuple[WebhookEndpoint, str]:
        """A new secret; the old one still signs for `grace`."""

    async def endpoints(self) -> list[WebhookEndpoint]: ...

    async def deliveries(
        self, endpoint_id: int | None, status: DeliveryStatus | None, after: str | None, first: int
    ) -> Page[WebhookDelivery]:
        """Newest first."""

    async def redeliver(self, delivery_id: str) -> WebhookDelivery:
        """Queue a delivery again, same id and body, retried afresh."""


class Service(Protocol):
    """The running Questline service, as the schema needs it."""

    @property
    def program(self) -> Program:
        """The program in use (a reload swaps it)."""

    @property
    def economy(self) -> Economy: ...

    @property
    def analytics(self) -> Analytics: ...

    @property
    def designer(self) -> Designer: ...

    @property
    def webhooks(self) -> Webhooks: ...

    async def record(self, events: Sequence[Event]) -> list[Recorded]:
        """Record events and keep their unlocks durably before answering."""

    async def progress(self, player_id: str) -> PlayerProgress:
        """Every challenge, milestone, streak and badge of a player."""

    async def history(self, player_id: str, after: str | None, first: int) -> Page[Unlock]:
        """A player's durable unlock history, oldest first."""

    def follow(
        self, player_id: str, since: str | None, too_slow: TooSlow | None
    ) -> AsyncIterator[Unlock]:
        """A player's unlocks after `since` (an Unlock.id), then live ones."""

    def follow_all(self, too_slow: TooSlow | None) -> AsyncIterator[Unlock]:
        """Every player's new unlocks, live."""

    async def leaderboard(
        self, board_id: str, period: str, first: int, around: str | None
    ) -> Standings: ...

    async def set_player(
        self, player_id: str, timezone: str | None, attributes: Mapping[str, Any] | None
    ) -> None:
        """Describe a player (timezone, audience attributes), durably."""

    async def reload_program(self) -> tuple[str, bool]:
        """Load the seed folder again; return (version, changed)."""
