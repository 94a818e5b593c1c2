"""GraphQL types of program analytics (`Query.analytics`, API key).

Each part is its own resolver, so a dashboard pays only for what it asks:
active streaks read the counter store, the rest are SQL aggregates. The
definitions are in app/analytics/ and repeated in the descriptions here,
which is where client developers read them.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from engine.errors import InvalidArgumentError
from engine.periods import Granularity
from schema.context import Info
from schema.loyalty import LedgerReason
from schema.service import Participation, RetentionStats, StreakStats
from schema.types import Challenge, Streak, challenge_of, streak_of

AnalyticsPeriod = strawberry.enum(Granularity, name="AnalyticsPeriod")

#: Most instances or periods one request may ask for (a year and a day of days).
MAX_PERIODS = 366

RATE = "completed / started; null when nobody started."


def _count(name: str, value: int) -> int:
    if not 1 <= value <= MAX_PERIODS:
        raise InvalidArgumentError(f"{name} must be between 1 and {MAX_PERIODS}, got {value}")
    return value


@strawberry.type(description="Players who started and completed one instance of a challenge.")
class ChallengeInstanceAnalytics:
    period: str | None = strawberry.field(
        description="The instance's period key (`week:2026-11-02`: the local date the week "
        "starts); null for a fixed window."
    )
    started: int
    completed: int
    completion_rate: float | None = strawberry.field(description=RATE)


@strawberry.type(description="Players who started and completed a challenge.")
class ChallengeAnalytics:
    challenge_id: strawberry.Private[str]
    challenge: Challenge
    started: int = strawberry.field(
        description="Distinct players who made progress in at least one instance: an event "
        "counted by one of its goal metrics fell inside the instance while they were in its "
        "audience (prerequisites are not asked)."
    )
    completed: int = strawberry.field(
        description="Distinct players with at least one instance's unlock in their history."
    )
    completion_rate: float | None = strawberry.field(description=RATE)

    @strawberry.field(description="The latest instances anybody started, newest first.")
    async def instances(self, info: Info, last: int = 5) -> list[ChallengeInstanceAnalytics]:
        found = await info.context.service.analytics.challenge_instances(
            self.challenge_id, _count("last", last)
        )
        return [
            ChallengeInstanceAnalytics(
                period=period,
                started=participation.started,
                completed=participation.completed,
                completion_rate=participation.rate,
            )
            for period, participation in found
        ]


@strawberry.type(description="Players whose streak is alive now.")
class StreakAnalytics:
    streak: Streak
    active: int = strawberry.field(
        description="Players whose streak is alive now: current > 0 once the periods missed "
        "since its last extension are counted (a gap its freezes cannot cover breaks it)."
    )
    at_risk: int = strawberry.field(
        description="Of the active, those whose streak this period has not extended yet, or "
        "whose gap a freeze is covering."
    )


@strawberry.type
class PointsByReason:
    reason: LedgerReason  # type: ignore[valid-type]
    points: int


@strawberry.type(
    description="Points over the whole ledger: issued = redeemed + expired + deducted + "
    "outstanding."
)
class PointsAnalytics:
    issued: int = strawberry.field(
        description="Every credit: earn rules, unlock rewards, referrals, positive adjustments."
    )
    issued_by_reason: list[PointsByReason] = strawberry.field(
        description="`issued` by ledger reason (reasons with none left out)."
    )
    redeemed: int = strawberry.field(description="Spent on rewards.")
    expired: int = strawberry.field(
        description="Lapsed, including points lapsed whose expiry is not written yet."
    )
    deducted: int = strawberry.field(description="Taken back by negative adjustments.")
    outstanding: int = strawberry.field(
        description="Spendable now: the sum of every balance, lapsed points left out."
    )


@strawberry.type(
    description="Customer retention over one period (local time of the program's timezone). "
    "A customer of a period is a player with at least one accepted event in it."
)
class RetentionPeriod:
    period: str = strawberry.field(
        description="`month:2026-11`, `week:2026-11-02` or `day:2026-11-03`."
    )
    starts_at: datetime
    ends_at: datetime
    complete: bool = strawberry.field(description="False for the period still running.")
    customers_at_start: int = strawberry.field(description="Customers of the previous period.")
    customers_at_end: int = strawberry.field(description="Customers of this period.")
    new_customers: int = strawberry.field(
        description="Customers of this period never active before it."
    )
    retained: int = strawberry.field(
        description="Customers of both the previous period and this one. Customers at end - "
        "new - retained came back after a period or more without activity."
    )
    retention_rate: float | None = strawberry.field(
        description="(customersAtEnd - newCustomers) / customersAtStart; null when there were "
        "no customers at start. Returning customers count even after a quiet period, so it "
        "can exceed 1."
    )


def retention_period_of(stats: RetentionStats) -> RetentionPeriod:
    return RetentionPeriod(
        period=stats.period.key,
        starts_at=stats.period.starts_at,
        ends_at=stats.period.ends_at,
        complete=stats.complete,
        customers_at_start=stats.customers_at_start,
        customers_at_end=stats.customers_at_end,
        new_customers=stats.new_customers,
        retained=stats.retained,
        retention_rate=stats.rate,
    )


@strawberry.type(
    description="Program analytics for the loyalty manager. Counted from events and unlocks "
    "recorded since the release that added analytics."
)
class ProgramAnalytics:
    @strawberry.field(description="Every challenge of the program, in program order.")
    async def challenges(self, info: Info) -> list[ChallengeAnalytics]:
        program = info.context.service.program
        found = await info.context.service.analytics.challenges()
        nobody = Participation(started=0, completed=0)
        answer = []
        for challenge_id, challenge in program.challenges.items():
            participation = found.get(challenge_id, nobody)
            answer.append(
                ChallengeAnalytics(
                    challenge_id=challenge_id,
                    challenge=challenge_of(program, challenge_id, challenge),
                    started=participation.started,
                    completed=participation.completed,
                    completion_rate=participation.rate,
                )
            )
        return answer

    @strawberry.field(description="Every streak of the program, in program order.")
    async def streaks(self, info: Info) -> list[StreakAnalytics]:
        program = info.context.service.program
        found = await info.context.service.analytics.streaks()
        nobody = StreakStats(active=0, at_risk=0)  # a streak added by a reload since
        answer = []
        for streak_id, streak in program.streaks.items():
            stats = found.get(streak_id, nobody)
            answer.append(
                StreakAnalytics(
                    streak=streak_of(program, streak_id, streak),
                    active=stats.active,
                    at_risk=stats.at_risk,
                )
            )
        return answer

    @strawberry.field(description="Points issued, redeemed, expired and outstanding.")
    async def points(self, info: Info) -> PointsAnalytics:
        found = await info.context.service.analytics.points()
        return PointsAnalytics(
            issued=found.issued,
            issued_by_reason=[
                PointsByReason(reason=reason, points=points)
                for reason, points in found.issued_by_reason.items()
            ],
            redeemed=found.redeemed,
            expired=found.expired,
            deducted=found.deducted,
            outstanding=found.outstanding,
        )

    @strawberry.field(
        description="Retention of the last `periods` periods, oldest first; the last one is "
        "the period still running."
    )
    async def retention(
        self,
        info: Info,
        period: AnalyticsPeriod = Granularity.MONTH,  # type: ignore[valid-type]
        periods: int = 6,
    ) -> list[RetentionPeriod]:
        found = await info.context.service.analytics.retention(
            Granularity(period), _count("periods", periods)
        )
        return [retention_period_of(stats) for stats in found]


def program_analytics(info: Info) -> ProgramAnalytics:
    info.context.caller().require_admin("reading program analytics")
    return ProgramAnalytics()
