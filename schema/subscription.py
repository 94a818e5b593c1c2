"""Live unlocks over graphql-transport-ws, with replay from a cursor.

A subscriber that falls too far behind (QUESTLINE_SUBSCRIBER_BACKLOG unread
deliveries: a phone that stopped reading) has its WebSocket closed with code
4413, TOO_SLOW_CLOSE_CODE: "too slow, subscribe again with `since`". Nothing
is lost; the replay delivers what it missed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

import strawberry

from engine.errors import InvalidArgumentError
from schema.context import Context, Info
from schema.query import player_id_of
from schema.types import Unlock, unlock_of

#: The WebSocket close code for a subscriber that fell too far behind.
TOO_SLOW_CLOSE_CODE = 4413
TOO_SLOW_REASON = "TOO_SLOW: subscribe again with since = the id of the last unlock received"


def _closer(context: Context) -> Callable[[], Awaitable[None]] | None:
    """Closes the context's WebSocket as too slow (None off a WebSocket)."""
    close = context.close
    if close is None:
        return None

    async def too_slow() -> None:
        await close(TOO_SLOW_CLOSE_CODE, TOO_SLOW_REASON)

    return too_slow


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description=(
            "Each new unlock of a player, once. With `since` (an Unlock.id), first what "
            "came after it, then live, with no gap and no duplicate."
        )
    )
    async def unlocks(
        self, info: Info, player_id: strawberry.ID | None = None, since: str | None = None
    ) -> AsyncGenerator[Unlock, None]:
        # A refusal raised here reaches the client typed, like any other error.
        caller = info.context.caller()
        target = player_id or caller.player_id
        if target is None:
            raise InvalidArgumentError("playerId is required with an API key")
        caller.require_read(player_id_of(target))
        service = info.context.service
        too_slow = _closer(info.context)
        async for unlock in service.follow(str(target), since, too_slow):
            yield unlock_of(service.program, unlock)

    @strawberry.subscription(
        description=(
            "Each new unlock of every player, once, as it happens (API key): an operator's "
            "live feed. Nothing is replayed; per player, `unlocks(playerId, since)` is."
        )
    )
    async def all_unlocks(self, info: Info) -> AsyncGenerator[Unlock, None]:
        info.context.caller().require_admin("following every player's unlocks")
        service = info.context.service
        async for unlock in service.follow_all(_closer(info.context)):
            yield unlock_of(service.program, unlock)
