"""Mutations: event ingestion, player profiles, redemptions and admin operations (API key)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import strawberry
from strawberry.scalars import JSON

from engine.errors import EventError, InvalidArgumentError
from engine.events import Event
from schema.context import Info
from schema.designer import Backfill, run_backfill
from schema.loyalty import (
    ExpiryResult,
    LedgerEntry,
    Redemption,
    ReferralResult,
    TierReviewResult,
    ledger_entry_of,
    redemption_of,
    referral_result_of,
)
from schema.player import Player
from schema.query import player_id_of
from schema.types import EventInput, RecordEventResult, ReloadResult, unlock_of
from schema.webhooks import (
    create_webhook,
    delete_webhook,
    redeliver_webhook,
    rotate_webhook_secret,
    update_webhook,
)


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
    program = info.context.service.program
    return [
        RecordEventResult(
            event_id=result.event_id,
            duplicate=result.duplicate,
            unlocks=[unlock_of(program, unlock) for unlock in result.unlocks],
            warnings=list(result.warnings),
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
            raise InvalidArgumentError("attributes must be a JSON object")
        await info.context.service.set_player(player_id_of(id), timezone, attributes)
        return Player(id=id)

    @strawberry.mutation(description="Load the seed folder again; a broken program is refused.")
    async def reload_program(self, info: Info) -> ReloadResult:
        info.context.caller().require_admin("reloading the program")
        version, changed = await info.context.service.reload_program()
        return ReloadResult(version=version, changed=changed)

    @strawberry.mutation(
        description=(
            "After a reload added metrics, milestones or challenges: replay the journal into "
            "the new metrics only and claim what players already meet (API key). Unlocks are "
            "announced with backfilled: true and their points granted once; running it again "
            "changes nothing. With dryRun, nothing changes: the answer says what would unlock."
        )
    )
    async def backfill(self, info: Info, dry_run: bool = False) -> Backfill:
        return await run_backfill(info, dry_run)

    @strawberry.mutation(
        description=(
            "Spend points on a reward: with a player token for that player, or with an API "
            "key for `playerId`. Retrying with the same idempotencyKey returns the same "
            "redemption and charges once."
        )
    )
    async def redeem(
        self,
        info: Info,
        reward_id: strawberry.ID,
        idempotency_key: str,
        player_id: strawberry.ID | None = None,
    ) -> Redemption:
        target = acting_for(info, player_id)
        redemption = await info.context.service.economy.redeem(
            target, str(reward_id), idempotency_key
        )
        return redemption_of(redemption)

    @strawberry.mutation(
        description=(
            "A new player applies a friend's referral code, once: with their player token, "
            "or with an API key for `playerId`. Both are rewarded at the new player's first "
            "qualifying event."
        )
    )
    async def apply_referral_code(
        self, info: Info, code: str, player_id: strawberry.ID | None = None
    ) -> ReferralResult:
        target = acting_for(info, player_id)
        referral = await info.context.service.economy.apply_referral(target, code)
        return referral_result_of(referral)

    @strawberry.mutation(
        description=(
            "Add (or take) points by hand, with the reason shown in the ledger (API key). "
            "An idempotencyKey makes a retry safe; without one every call adjusts again."
        )
    )
    async def adjust_points(
        self,
        info: Info,
        player_id: strawberry.ID,
        delta: int,
        reason: str,
        idempotency_key: str | None = None,
    ) -> LedgerEntry:
        info.context.caller().require_admin("adjusting points")
        if not reason.strip():
            raise InvalidArgumentError("reason must say why the points are adjusted")
        reference = idempotency_key or f"adjust:{uuid.uuid4().hex}"
        line = await info.context.service.economy.adjust(
            player_id_of(player_id), delta, reason, reference
        )
        return ledger_entry_of(line)

    @strawberry.mutation(
        description="Expire every player's lapsed points now (API key); reads do it lazily too."
    )
    async def expire_points(self, info: Info) -> ExpiryResult:
        info.context.caller().require_admin("expiring points")
        players, points = await info.context.service.economy.expire()
        return ExpiryResult(players=players, points=points)

    @strawberry.mutation(
        description=(
            "Apply the current tier review (API key): every player not yet reviewed in this "
            "month or quarter moves to the tier their qualifying points support, down included."
        )
    )
    async def run_tier_review(self, info: Info) -> TierReviewResult:
        info.context.caller().require_admin("running a tier review")
        review = await info.context.service.economy.review_tiers()
        return TierReviewResult(
            period=review.period,
            reviewed=review.reviewed,
            upgraded=review.upgraded,
            downgraded=review.downgraded,
        )

    create_webhook = strawberry.mutation(
        resolver=create_webhook,
        description="Add a webhook endpoint subscribed to `events` (API key). The answer "
        "carries its signing secret, shown only this once.",
    )
    update_webhook = strawberry.mutation(
        resolver=update_webhook,
        description="Change an endpoint's URL, events or description, or enable or disable "
        "it (API key); enabling forgets its failures.",
    )
    delete_webhook = strawberry.mutation(
        resolver=delete_webhook,
        description="Delete an endpoint and its deliveries (API key); true when done.",
    )
    rotate_webhook_secret = strawberry.mutation(
        resolver=rotate_webhook_secret,
        description="A new signing secret (API key), shown only this once; deliveries carry "
        "a signature with the old one too for `gracePeriodSeconds` (default "
        "QUESTLINE_WEBHOOK_SECRET_GRACE).",
    )
    redeliver_webhook = strawberry.mutation(
        resolver=redeliver_webhook,
        description="Send a delivery again (API key): same id and body, retried afresh. "
        "For a dead letter once the receiver is fixed, or one the receiver lost.",
    )


def acting_for(info: Info, player_id: strawberry.ID | None) -> str:
    """The player a player token acts for (itself), or the one an API key names."""
    caller = info.context.caller()
    target = player_id or caller.player_id
    if target is None:
        raise InvalidArgumentError("playerId is required with an API key")
    caller.require_read(player_id_of(target))
    return str(target)
