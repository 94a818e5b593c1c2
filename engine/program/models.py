"""The seed format: what a game designer may write, as pydantic models.

These models are the single source of truth for the format: the loader
validates YAML against them, `questline seed-schema` exports their JSON Schema
for editor autocompletion, and docs/seed-format.md describes them. Cross
references (unknown metric, unknown badge, prerequisite cycles) are checked by
the loader after these models accept each file.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from engine import durations

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
Identifier = Annotated[
    str,
    Field(
        pattern=ID_PATTERN,
        max_length=64,
        description="Lowercase id: letters, digits, '-' and '_'.",
    ),
]
# The condition language is checked by engine.conditions, not by pydantic. The
# JSON Schema still describes it so that editors can complete operators: the
# exported schema (loader.program_json_schema) swaps this placeholder for a
# reference to CONDITION_SCHEMAS, which pydantic cannot hold as it is recursive.
CONDITION_PLACEHOLDER: dict[str, Any] = {"x-questline": "condition"}
Condition = Annotated[dict[str, Any], WithJsonSchema(CONDITION_PLACEHOLDER)]

_OPERAND = {"type": ["string", "number", "boolean", "null"]}
CONDITION_SCHEMAS: dict[str, Any] = {
    "Condition": {
        "type": "object",
        "description": (
            "Every entry must hold. A key is a property path (`store.city` digs into "
            "nested objects) mapped to a value (equality) or to an operator map; "
            "`all`, `any` and `not` combine conditions."
        ),
        "properties": {
            "all": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/Condition"},
                "description": "Every condition of the list holds.",
            },
            "any": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/Condition"},
                "description": "At least one condition of the list holds.",
            },
            "not": {"$ref": "#/$defs/Condition", "description": "The condition does not hold."},
        },
        "additionalProperties": {
            "anyOf": [_OPERAND, {"type": "array"}, {"$ref": "#/$defs/Operators"}]
        },
    },
    "Operators": {
        "type": "object",
        "description": "Operators on one property; every one must hold.",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "eq": {"description": "Equal to this value."},
            "ne": {"description": "Not equal (true when the property is missing)."},
            "gt": {"type": ["number", "string"], "description": "Greater than."},
            "gte": {"type": ["number", "string"], "description": "Greater than or equal."},
            "lt": {"type": ["number", "string"], "description": "Less than."},
            "lte": {"type": ["number", "string"], "description": "Less than or equal."},
            "in": {"type": "array", "description": "One of these values."},
            "not_in": {
                "type": "array",
                "description": "None of these values (true when the property is missing).",
            },
            "exists": {"type": "boolean", "description": "The property is present (or absent)."},
            "contains": {"description": "A string holding this text, or a list holding this item."},
        },
    },
}


class SeedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramInfo(SeedModel):
    """Program-wide settings; at most one file may hold the `program` section."""

    name: str = Field(default="Questline program", description="Shown to players and operators.")
    timezone: str | None = Field(
        default=None,
        description="Default IANA timezone of players without one, e.g. Europe/Paris.",
    )
    week_start: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = Field(default="monday", description="First day of a `week` for challenges and streaks.")


class Badge(SeedModel):
    name: str = Field(min_length=1, description="Shown to players.")
    description: str = ""
    icon: str | None = Field(default=None, description="URL of the badge image.")
    hidden: bool = Field(default=False, description="Not listed in the catalog until earned.")


class Reward(SeedModel):
    points: int = Field(default=0, ge=0, description="Points granted with the unlock.")
    badge: Identifier | None = Field(default=None, description="Badge granted with the unlock.")

    @model_validator(mode="after")
    def _grants_something(self) -> Reward:
        if not self.points and self.badge is None:
            raise ValueError("a reward needs `points` or `badge`")
        return self


class Step(SeedModel):
    """What a milestone tier and a streak milestone unlock when reached."""

    name: str | None = Field(default=None, description="Title of the unlock.")
    badge: Identifier | None = Field(default=None, description="Badge granted when reached.")
    reward: Reward | None = None

    @model_validator(mode="after")
    def _one_badge(self) -> Step:
        # An unlock carries one badge: the other would be silently dropped.
        if self.badge is not None and self.reward is not None and self.reward.badge is not None:
            raise ValueError("give the badge once, as `badge` or as `reward.badge`")
        return self


class Metric(SeedModel):
    """A per-player counter fed by events of one type.

    The aggregate is `count` unless one of `sum`, `max` or `distinct` names a
    property (`value` means the event's own value).
    """

    event: str = Field(min_length=1, description="Event type that feeds this metric.")
    where: Condition | None = Field(
        default=None, description="Only events whose properties match are counted."
    )
    sum: str | None = Field(default=None, description="Add up this property (or `value`).")
    max: str | None = Field(default=None, description="Keep the largest value of this property.")
    distinct: str | None = Field(
        default=None, description="Count distinct values of this property."
    )
    description: str = ""

    @model_validator(mode="after")
    def _one_aggregate(self) -> Metric:
        chosen = [name for name in ("sum", "max", "distinct") if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"choose one aggregate, not {' and '.join(chosen)}")
        return self


class MilestoneTier(Step):
    at: float = Field(gt=0, description="Lifetime metric value that unlocks this tier.")


class Milestone(SeedModel):
    name: str | None = None
    description: str = ""
    metric: Identifier
    tiers: list[MilestoneTier] = Field(min_length=1)

    @model_validator(mode="after")
    def _ascending(self) -> Milestone:
        thresholds = [tier.at for tier in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tiers must have strictly increasing `at` values")
        return self


class Goal(SeedModel):
    metric: Identifier
    target: float = Field(gt=0)


class Window(SeedModel):
    """A fixed window: dates and date-times without an offset are read in the
    player's timezone, so "Dec 1" starts at each player's local midnight."""

    start: date | datetime
    end: date | datetime = Field(description="Exclusive end; a date means its local midnight.")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if type(self.start) is not type(self.end):
            raise ValueError("start and end must both be dates or both be date-times")
        if (
            isinstance(self.start, datetime)
            and isinstance(self.end, datetime)
            and (self.start.tzinfo is None) != (self.end.tzinfo is None)
        ):
            raise ValueError("give both start and end a UTC offset, or neither")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Prerequisite(SeedModel):
    challenge: Identifier | None = None
    milestone: Identifier | None = None
    tier: int | None = Field(default=None, ge=1, description="1-based tier of the milestone.")

    @model_validator(mode="after")
    def _one_target(self) -> Prerequisite:
        if (self.challenge is None) == (self.milestone is None):
            raise ValueError("name exactly one of `challenge` or `milestone`")
        if self.milestone is not None and self.tier is None:
            raise ValueError("a milestone prerequisite needs `tier`")
        if self.challenge is not None and self.tier is not None:
            raise ValueError("`tier` only applies to a milestone prerequisite")
        return self


class Challenge(SeedModel):
    name: str | None = None
    description: str = ""
    every: Literal["day", "week", "month"] | None = Field(
        default=None, description="Recurring: a fresh instance each period."
    )
    window: Window | None = Field(default=None, description="Fixed window instead of `every`.")
    metric: Identifier | None = Field(default=None, description="Shorthand for one goal.")
    target: float | None = Field(default=None, gt=0, description="Shorthand for one goal.")
    goals: list[Goal] = Field(default_factory=list, description="All goals are needed.")
    requires: list[Prerequisite] = Field(
        default_factory=list, description="Unlocks needed before this challenge can complete."
    )
    audience: Condition | None = Field(
        default=None, description="Only players whose attributes match take part."
    )
    reward: Reward | None = None

    @model_validator(mode="after")
    def _shape(self) -> Challenge:
        if (self.every is None) == (self.window is None):
            raise ValueError("give exactly one of `every` or `window`")
        if (self.metric is None) != (self.target is None):
            raise ValueError("`metric` and `target` go together")
        if self.metric is not None and self.goals:
            raise ValueError("use either `metric`/`target` or `goals`, not both")
        if self.metric is None and not self.goals:
            raise ValueError("a challenge needs a goal: `metric` and `target`, or `goals`")
        return self

    def all_goals(self) -> list[Goal]:
        if self.metric is not None and self.target is not None:
            return [Goal(metric=self.metric, target=self.target)]
        return list(self.goals)


class Freezes(SeedModel):
    max: int = Field(ge=1, description="Most freezes a player can hold.")
    earn_every: int = Field(ge=1, description="One freeze per this many extended periods.")


class StreakMilestone(Step):
    at: int = Field(gt=0, description="Streak length that unlocks this milestone.")


class Streak(SeedModel):
    name: str | None = None
    description: str = ""
    metric: Identifier
    per: Literal["day", "week"] = Field(description="Length of one link of the streak.")
    min: float = Field(default=1, gt=0, description="Metric value a period needs to count.")
    freezes: Freezes | None = None
    milestones: list[StreakMilestone] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ascending(self) -> Streak:
        lengths = [milestone.at for milestone in self.milestones]
        if lengths != sorted(set(lengths)):
            raise ValueError("milestones must have strictly increasing `at` values")
        return self


Duration = Annotated[
    str,
    Field(
        pattern=durations.PATTERN,
        description=f"A duration: {durations.EXAMPLES}.",
    ),
]


class EarnCap(SeedModel):
    """The most points one earn rule grants a player in one period of their local time."""

    per: Literal["day", "week", "month"] = Field(description="Period the cap resets on.")
    points: int = Field(gt=0, description="Points at most, tier multiplier included.")


class EarnRule(SeedModel):
    """Points for events of one type: `rate` points per 1.00 of the property `per`
    (rounded down, after the tier multiplier), or a fixed number of `points`."""

    event: str = Field(min_length=1, description="Event type that earns points.")
    where: Condition | None = Field(
        default=None, description="Only events whose properties match earn points."
    )
    per: str | None = Field(
        default=None,
        min_length=1,
        description="Property holding the amount (`value` means the event's own value).",
    )
    rate: float | None = Field(default=None, gt=0, description="Points per 1.00 of `per`.")
    points: int | None = Field(default=None, gt=0, description="Fixed points per event.")
    cap: EarnCap | None = Field(default=None, description="Most points per day, week or month.")
    description: str = ""

    @model_validator(mode="after")
    def _one_way(self) -> EarnRule:
        if (self.per is None) != (self.rate is None):
            raise ValueError("`per` and `rate` go together")
        if (self.rate is None) == (self.points is None):
            raise ValueError("give either `per` and `rate`, or `points`")
        return self


class Points(SeedModel):
    """How players earn points, and when unspent points expire."""

    expire_after: Duration | None = Field(
        default=None,
        description="Points expire this long after they were granted, oldest first; "
        "never when absent.",
    )
    earn: dict[Identifier, EarnRule] = Field(default_factory=dict, description="Earn rules, by id.")


class TierLevel(SeedModel):
    name: str = Field(min_length=1, description="Shown to players.")
    description: str = ""
    qualifying_points: int = Field(
        ge=0, description="Points earned within the window needed to reach this tier."
    )
    multiplier: float = Field(
        default=1, gt=0, description="Earn rules grant this many times their points."
    )
    benefits: list[str] = Field(default_factory=list, description="Shown to players.")


class Tiers(SeedModel):
    """Tiers by points earned in a rolling window: reached at once, lost only at review."""

    window_days: int = Field(
        default=365, ge=1, description="Qualifying points are those earned in this many days."
    )
    review: Literal["monthly", "quarterly"] = Field(
        default="quarterly", description="How often players below their tier move down."
    )
    levels: dict[Identifier, TierLevel] = Field(
        min_length=1, description="Lowest first; the first one needs 0 qualifying points."
    )

    @field_validator("levels")
    @classmethod
    def _ascending(cls, levels: dict[str, TierLevel]) -> dict[str, TierLevel]:
        thresholds = [level.qualifying_points for level in levels.values()]
        if thresholds[0] != 0:
            raise ValueError("the first level is where every player starts: give it 0 points")
        if thresholds != sorted(set(thresholds)):
            raise ValueError("levels must have strictly increasing `qualifying_points`")
        return levels


class CatalogReward(SeedModel):
    """Something players spend points on."""

    name: str = Field(min_length=1, description="Shown to players.")
    description: str = ""
    icon: str | None = Field(default=None, description="URL of the reward image.")
    cost: int = Field(gt=0, description="Points it costs.")
    stock: int | None = Field(
        default=None, ge=0, description="How many can be redeemed in all; unlimited when absent."
    )
    per_player_limit: int | None = Field(
        default=None, ge=1, description="How many times one player may redeem it."
    )
    min_tier: Identifier | None = Field(
        default=None, description="Tier a player needs (or any tier above it)."
    )


class ReferralQualification(SeedModel):
    """The referee's event that makes a referral count."""

    event: str = Field(min_length=1, description="Event type, e.g. purchase.")
    where: Condition | None = Field(
        default=None, description="Only events whose properties match, e.g. {amount: {gte: 5}}."
    )


class Referrals(SeedModel):
    """Bring a friend: both get points once the friend's first qualifying event arrives."""

    qualify: ReferralQualification
    referrer_points: int = Field(default=0, ge=0, description="Points for the player who referred.")
    referee_points: int = Field(default=0, ge=0, description="Points for the new player.")
    monthly_cap: int | None = Field(
        default=None,
        ge=1,
        description="Rewarded referrals per referrer per calendar month; unlimited when absent.",
    )

    @model_validator(mode="after")
    def _rewards_someone(self) -> Referrals:
        if not self.referrer_points and not self.referee_points:
            raise ValueError("give `referrer_points`, `referee_points` or both")
        return self


LeaderboardPeriod = Literal["all", "week", "month"]


def _all_time() -> list[LeaderboardPeriod]:
    return ["all"]


class Leaderboard(SeedModel):
    """Players ranked by a metric: over all time, and per week or month."""

    name: str | None = Field(default=None, description="Shown to players; the id when absent.")
    description: str = ""
    metric: Identifier = Field(description="Metric whose value is the score.")
    periods: list[LeaderboardPeriod] = Field(
        default_factory=_all_time,
        min_length=1,
        description="`all` (lifetime value), `week` and `month` (the value in each week or "
        "month of the player's local time, one board per period).",
    )

    @field_validator("periods")
    @classmethod
    def _once_each(cls, periods: list[LeaderboardPeriod]) -> list[LeaderboardPeriod]:
        if len(set(periods)) != len(periods):
            raise ValueError("name each period once")
        return periods


class SeedFile(SeedModel):
    """One YAML file of a program; every section is optional."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"title": "Questline seed file"},
    )

    program: ProgramInfo | None = None
    badges: dict[Identifier, Badge] = Field(default_factory=dict)
    metrics: dict[Identifier, Metric] = Field(default_factory=dict)
    milestones: dict[Identifier, Milestone] = Field(default_factory=dict)
    challenges: dict[Identifier, Challenge] = Field(default_factory=dict)
    streaks: dict[Identifier, Streak] = Field(default_factory=dict)
    points: Points | None = None
    tiers: Tiers | None = None
    rewards: dict[Identifier, CatalogReward] = Field(
        default_factory=dict, description="The rewards catalog, by id."
    )
    referrals: Referrals | None = None
    leaderboards: dict[Identifier, Leaderboard] = Field(
        default_factory=dict, description="Players ranked by a metric, by id."
    )
