"""What every resolver gets: the service, who is calling, and per-request loaders.

The schema does not know how the service is put together (SQL, metrics,
reload); it talks to a `Service` (schema.service) and the app provides one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from engine.errors import AuthError, QuestlineError
from engine.program.models import CatalogReward
from engine.progress import PlayerProgress
from schema.permissions import Principal
from schema.service import Service

#: A reward of the catalog and the stock left (None: unlimited).
Stocked = tuple[CatalogReward, int | None]


@dataclass
class Context:
    service: Service
    principal: Principal | None = None
    #: Why the credentials sent were refused, raised when a resolver needs them.
    auth_error: QuestlineError | None = None
    connection_params: dict[str, Any] | None = None
    #: On a WebSocket: close it with a code and a reason (the app provides it).
    close: Callable[[int, str], Awaitable[None]] | None = None
    #: Each player's progress, read once per request however many fields need it.
    progress: DataLoader[str, PlayerProgress] = field(init=False)
    #: Rewards by id with their stock left, the catalog read once per request.
    rewards: DataLoader[str, Stocked | None] = field(init=False)

    def __post_init__(self) -> None:
        self.progress = DataLoader(load_fn=self._progress)
        self.rewards = DataLoader(load_fn=self._rewards)

    def caller(self) -> Principal:
        if self.auth_error is not None:
            raise self.auth_error
        if self.principal is None:
            raise AuthError(
                "no credentials: send `Authorization: Bearer <api key or player token>` "
                "(on a WebSocket, put `authorization` in the connection_init payload)"
            )
        return self.principal

    async def _progress(self, player_ids: Sequence[str]) -> list[PlayerProgress]:
        return list(await asyncio.gather(*map(self.service.progress, player_ids)))

    async def _rewards(self, reward_ids: Sequence[str]) -> list[Stocked | None]:
        stocked = {
            reward_id: (reward, left)
            for reward_id, reward, left in await self.service.economy.rewards()
        }
        return [stocked.get(reward_id) for reward_id in reward_ids]


Info = StrawberryInfo[Context, None]
