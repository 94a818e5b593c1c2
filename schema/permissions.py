"""Who may do what: the principal of a request and the refusals.

The service authenticates (app/auth.py) and hands the schema a `Principal`;
resolvers only ask it questions. An API key acts for the business (record
events, read any player, admin operations); a player token reads and
subscribes to its own player only and can never record events: a mobile
client must not be able to award itself points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.errors import ForbiddenError


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["api_key", "player"]
    player_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "api_key"

    def can_read(self, player_id: str) -> bool:
        return self.is_admin or self.player_id == player_id

    def require_read(self, player_id: str) -> None:
        if not self.can_read(player_id):
            raise ForbiddenError(
                f"this player token is for player {self.player_id!r}; it can only read and "
                f"subscribe to that player's data, not {player_id!r}"
            )

    def require_admin(self, action: str) -> None:
        """Refuse `action` (e.g. "recording events") to anything but an API key."""
        if not self.is_admin:
            raise ForbiddenError(
                f"{action} needs an API key; player tokens can only read their own data. "
                "Send this from your server with `Authorization: Bearer <api key>`"
            )
