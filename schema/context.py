"""What every resolver gets: the service, who is calling, and per-request caches.

The schema does not know how the service is put together (SQL, metrics,
reload); it talks to a `Service` and the app provides one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from strawberry.types import Info as StrawberryInfo

from engine.engine import Engine, Recorded
from engine.errors import QuestlineError
from engine.events import Event
from engine.feed import Feed
from engine.points import Balance, LedgerLine
from engine.program.models import CatalogReward
from engine.progress import PlayerProgress
from engine.referrals import Referral, ReferralInfo
from engine.rewards import Redemption
from engine.tiers import TierStatus
from engine.unlocks import Unlock
from schema.permissions import AuthError, Principal


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a player's durable unlock history; cursors are opaque strings."""

    unlocks: list[tuple[str, Unlock]]
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class LedgerPage:
    """A page of a player's points ledger, newest first; the cursor is an entry id."""

    lines: list[LedgerLine]
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

    async def ledger(self, player_id: str, after: str | None, first: int) -> LedgerPage: ...

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


class Service(Protocol):
    """The running Questline service, as the schema needs it."""

    @property
    def engine(self) -> Engine: ...

    @property
    def feed(self) -> Feed: ...

    @property
    def economy(self) -> Economy: ...

    async def record(self, events: Sequence[Event]) -> list[Recorded]:
        """Record events and keep their unlocks durably before answering."""

    async def history(self, player_id: str, after: str | None, first: int) -> HistoryPage: ...

    async def reload_program(self) -> tuple[str, bool]:
        """Load the seed folder again; return (version, changed)."""


@dataclass
class Context:
    service: Service
    principal: Principal | None = None
    #: Why the credentials sent were refused, raised when a resolver needs them.
    auth_error: QuestlineError | None = None
    connection_params: dict[str, Any] | None = None
    _progress: dict[str, PlayerProgress] = field(default_factory=dict)
    _rewards: list[tuple[str, CatalogReward, int | None]] | None = None

    def caller(self) -> Principal:
        if self.auth_error is not None:
            raise self.auth_error
        if self.principal is None:
            raise AuthError(
                "no credentials: send `Authorization: Bearer <api key or player token>` "
                "(on a WebSocket, put `authorization` in the connection_init payload)"
            )
        return self.principal

    async def progress(self, player_id: str) -> PlayerProgress:
        """A player's progress, read once per request however many fields need it."""
        found = self._progress.get(player_id)
        if found is None:
            found = await self.service.engine.progress(player_id)
            self._progress[player_id] = found
        return found

    async def rewards(self) -> list[tuple[str, CatalogReward, int | None]]:
        """The catalog with stock left, read once per request."""
        if self._rewards is None:
            self._rewards = await self.service.economy.rewards()
        return self._rewards


Info = StrawberryInfo[Context, None]
