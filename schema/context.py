"""What every resolver gets: the service, who is calling, and per-request caches.

The schema does not know how the service is put together (SQL, metrics,
reload); it talks to a `Service` and the app provides one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from strawberry.types import Info as StrawberryInfo

from engine.engine import Engine, Recorded
from engine.errors import QuestlineError
from engine.events import Event
from engine.feed import Feed
from engine.progress import PlayerProgress
from engine.unlocks import Unlock
from schema.permissions import AuthError, Principal


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a player's durable unlock history; cursors are opaque strings."""

    unlocks: list[tuple[str, Unlock]]
    has_next_page: bool


class Service(Protocol):
    """The running Questline service, as the schema needs it."""

    @property
    def engine(self) -> Engine: ...

    @property
    def feed(self) -> Feed: ...

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


Info = StrawberryInfo[Context, None]
