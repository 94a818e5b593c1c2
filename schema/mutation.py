"""Mutations: event ingestion, player profiles and admin operations (API key)."""

from __future__ import annotations

from collections.abc import Mapping

import strawberry
from strawberry.scalars import JSON

from engine.errors import EventError
from engine.events import Event
from schema.context import Info
from schema.player import Player
from schema.query import player_id_of
from schema.types import EventInput, RecordEventResult, ReloadResult, unlock_of


def event_of(data: EventInput) -> Event:
    properties: object = data.properties if data.properties is not None else {}
    if not isinstance(properties, Mapping):
        raise EventError("properties must be a JSON object")
    return Event(
        id=data.id,
        player_id=str(data.player_id),
        type=data.type,
        value=1.0 if data.value is None else data.value,
        occurred_at=data.occurred_at,
        properties=properties,
    )


async def _record(info: Info, events: list[EventInput]) -> list[RecordEventResult]:
    info.context.caller().require_admin("recording events")
    recorded = await info.context.service.record([event_of(event) for event in events])
    program = info.context.service.engine.program
    return [
        RecordEventResult(
            event_id=result.event_id,
            duplicate=result.duplicate,
            unlocks=[unlock_of(program, unlock) for unlock in result.unlocks],
        )
        for result in recorded
    ]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Record one event (API key). Retrying is safe.")
    async def record_event(self, info: Info, event: EventInput) -> RecordEventResult:
        return (await _record(info, [event]))[0]

    @strawberry.mutation(
        description="Record a batch atomically checked: one bad event refuses all."
    )
    async def record_events(self, info: Info, events: list[EventInput]) -> list[RecordEventResult]:
        return await _record(info, events)

    @strawberry.mutation(description="Set a player's timezone and audience attributes (API key).")
    async def update_player(
        self,
        info: Info,
        id: strawberry.ID,
        timezone: str | None = None,
        attributes: JSON | None = None,
    ) -> Player:
        info.context.caller().require_admin("updating players")
        if attributes is not None and not isinstance(attributes, Mapping):
            raise EventError("attributes must be a JSON object")
        await info.context.service.engine.set_player(
            player_id_of(id), timezone=timezone, attributes=attributes
        )
        return Player(id=id)

    @strawberry.mutation(description="Load the seed folder again; a broken program is refused.")
    async def reload_program(self, info: Info) -> ReloadResult:
        info.context.caller().require_admin("reloading the program")
        version, changed = await info.context.service.reload_program()
        return ReloadResult(version=version, changed=changed)
