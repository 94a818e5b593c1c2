"""The loyalty economy of the running service: points, tiers and rewards.

The rules come from the engine (what an event earns, which tier points
reach, whether a reward may be redeemed); this class feeds them the numbers
kept in SQL (app.points, app.grants, app.tiers, app.rewards) and
runs those blocking calls on worker threads. Time is the service's clock,
so tests move it instead of waiting for points to expire or a review to come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from anyio import to_thread

from app import grants, points, referrals, rewards, tiers
from app.grants import Grant, Granted, fixed
from app.paging import page_of, row_cursor
from app.sql import Database
from app.tiers import Announcement
from engine.engine import Clock, Engine, Recorded
from engine.errors import PointsError
from engine.periods import resolve_timezone
from engine.points import Balance, LedgerLine, LedgerReason, earnings
from engine.program.models import CatalogReward
from engine.program.program import Program, TierDef
from engine.referrals import Referral, ReferralInfo, cap_window, qualifies
from engine.rewards import Redemption
from engine.tiers import TierStatus, review_start
from engine.unlocks import Unlock
from schema.service import Page, TierReview

logger = logging.getLogger("questline.economy")

#: Copies unlocks into durable history in a transaction of their own (`History.save`).
SaveUnlocks = Callable[[Sequence[Unlock]], object]


class Economy:
    def __init__(
        self, engine: Engine, database: Database, clock: Clock, save_unlocks: SaveUnlocks
    ) -> None:
        self.engine = engine
        self.database = database
        self.clock = clock
        self._save_unlocks = save_unlocks

    @property
    def program(self) -> Program:
        return self.engine.program

    def timezone(self) -> ZoneInfo:
        """Where tier changes and reviews are dated: the program's timezone."""
        return resolve_timezone(self.program.info.timezone or self.engine.settings.default_timezone)

    async def grants(self, results: Sequence[Recorded]) -> list[Grant]:
        """What recorded events earn and what their unlocks carry, for the group
        commit to grant once per source (duplicates too: their grants heal a
        first attempt that died before its commit)."""
        program = self.program
        pending: list[Grant] = []
        for result in results:
            event = result.event
            if program.earn_rules_by_event.get(event.type) or qualifies(program, event):
                pending.append(await self._earn(program, result))
            pending += unlock_grants(result.unlocks, result.recorded_at)
        return pending

    async def settle(self, granted: Granted) -> list[Unlock]:
        """After a grant committed: reward the referrals that just qualified, then
        claim the tier changes; returns the tier unlocks."""
        announcements = list(granted.announcements)
        for referee_id in granted.qualified:
            announcements += await self._reward_referral(referee_id)
        return await self.announce(announcements)

    async def credit_unlocks(self, unlocks: Sequence[Unlock]) -> None:
        """Grant the points of unlocks that may have missed them: at start-up, for
        unlocks a crash left between the store's claim and the ledger."""
        pending = unlock_grants(unlocks, self.clock())
        if pending:
            granted = await to_thread.run_sync(
                grants.grant_now, self.database, pending, self.program, self.timezone()
            )
            await self.settle(granted)

    async def _reward_referral(self, referee_id: str) -> list[Announcement]:
        if self.program.referrals is None:
            return []
        now, timezone = self.clock(), self.timezone()
        return await to_thread.run_sync(
            referrals.reward,
            self.database,
            self.program,
            referee_id,
            now,
            cap_window(now, timezone),
            now.astimezone(timezone).date(),
        )

    async def _earn(self, program: Program, result: Recorded) -> Grant:
        event = result.event  # as checked: occurred_at is set
        profile = await self.engine.profile(event.player_id)
        return Grant(
            event.player_id,
            LedgerReason.EARN,
            event.id,
            lambda multiplier: earnings(program, event, profile.timezone, multiplier),
            result.recorded_at,
            qualifies=qualifies(program, event),
        )

    async def announce(self, announcements: Sequence[Announcement]) -> list[Unlock]:
        """Claim tier changes as unlocks (pushed to subscribers, kept in history)."""
        granted = []
        for announcement in announcements:
            unlocks = await self.engine.claim(announcement.player_id, announcement.key)
            if unlocks:
                await to_thread.run_sync(self._save_unlocks, unlocks)
            await to_thread.run_sync(tiers.announced, self.database, announcement)
            granted += unlocks
        return granted

    async def heal(self) -> int:
        """At start-up: reward referrals and announce tier changes a crash left
        half done; returns how many there were."""
        referees = await to_thread.run_sync(referrals.unrewarded, self.database)
        for referee_id in referees:
            await self.announce(await self._reward_referral(referee_id))
        pending = await to_thread.run_sync(tiers.pending, self.database, None)
        await self.announce(pending)
        return len(referees) + len(pending)

    async def referral(self, player_id: str) -> ReferralInfo:
        return await to_thread.run_sync(referrals.info, self.database, player_id)

    async def apply_referral(self, player_id: str, code: str) -> Referral:
        return await to_thread.run_sync(
            referrals.apply, self.database, self.program, player_id, code, self.clock()
        )

    async def balance(self, player_id: str) -> Balance:
        return await to_thread.run_sync(points.balance, self.database, player_id, self.clock())

    async def ledger(self, player_id: str, after: str | None, first: int) -> Page[LedgerLine]:
        before = row_cursor(after, "ledger")
        lines = await to_thread.run_sync(
            points.entries, self.database, player_id, before, first + 1, self.clock()
        )
        return page_of([(line.id, line) for line in lines], first)

    async def tier(self, player_id: str) -> TierStatus | None:
        ladder = self.program.tiers
        if ladder is None:
            return None
        return await to_thread.run_sync(
            tiers.tier_status, self.database, player_id, ladder, self.clock()
        )

    async def rewards(self) -> list[tuple[str, CatalogReward, int | None]]:
        """The catalog with what is left of each stock (None: unlimited)."""
        used = await to_thread.run_sync(rewards.redeemed_in_all, self.database)
        return [
            (
                reward_id,
                reward,
                None if reward.stock is None else max(0, reward.stock - used.get(reward_id, 0)),
            )
            for reward_id, reward in self.program.rewards.items()
        ]

    async def redeem(self, player_id: str, reward_id: str, idempotency_key: str) -> Redemption:
        if not idempotency_key.strip():
            raise PointsError("idempotencyKey must not be empty: send one per redemption")
        return await to_thread.run_sync(
            rewards.redeem,
            self.database,
            self.program,
            player_id,
            reward_id,
            idempotency_key,
            self.clock(),
        )

    async def redemptions(self, player_id: str, first: int) -> list[Redemption]:
        return await to_thread.run_sync(rewards.redemptions, self.database, player_id, first)

    async def adjust(self, player_id: str, delta: int, note: str, reference: str) -> LedgerLine:
        return await to_thread.run_sync(
            points.adjust,
            self.database,
            player_id,
            delta,
            note,
            reference,
            self.clock(),
            self.program.points_expire_after,
        )

    async def expire(self) -> tuple[int, int]:
        return await to_thread.run_sync(points.expire_all, self.database, self.clock())

    async def tier_counts(self) -> list[tuple[TierDef, int]]:
        """Players holding each level of the ladder, lowest first; empty without tiers."""
        ladder = self.program.tiers
        if ladder is None:
            return []
        counts = await to_thread.run_sync(tiers.tier_counts, self.database, ladder)
        return [(level, counts[level.id]) for level in ladder.levels]

    async def review_tiers(self) -> TierReview:
        """Apply the current review period to every player not yet reviewed for it."""
        ladder = self.program.tiers
        if ladder is None:
            raise PointsError("the program has no tiers to review; add a `tiers` section")
        now = self.clock()
        period = review_start(now, ladder, self.timezone())
        review = await to_thread.run_sync(tiers.review, self.database, ladder, now, period)
        await self.announce(review.announcements)
        logger.info(
            "tier review %s: %d players, %d up, %d down",
            period,
            review.reviewed,
            review.upgraded,
            review.downgraded,
        )
        return TierReview(
            period=period,
            reviewed=review.reviewed,
            upgraded=review.upgraded,
            downgraded=review.downgraded,
        )


def unlock_grants(unlocks: Sequence[Unlock], at: datetime) -> list[Grant]:
    """The points unlocks carry, granted once per unlock key (no tier multiplier)."""
    return [
        Grant(unlock.player_id, LedgerReason.REWARD, unlock.key, fixed(unlock.points), at)
        for unlock in unlocks
        if unlock.points
    ]
