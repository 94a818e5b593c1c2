"""Every error Questline raises, in one tree (the engine's, the service's
and the API's refusals alike).

    QuestlineError                  base; its own code INTERNAL is a bug (logged with a traceback)
    ├── TransientError              retryable: the same request may succeed when sent again later
    │   ├── StoreError              the counter store or the database did not answer in time
    │   │                           (STORE_UNAVAILABLE)
    │   ├── ConflictError           the player's profile kept changing while recording (CONFLICT)
    │   └── TooSlowError            a subscriber fell too far behind its unlocks (TOO_SLOW):
    │                               subscribe again with `since`
    └── (every other error is permanent: sending the same request again gets the same answer)
        ├── ConfigurationError      a setting, store URL or database that cannot work
        │                           (CONFIGURATION)
        ├── AuthError               no credentials, or ones that do not hold (UNAUTHENTICATED)
        ├── ForbiddenError          the caller may not do this (FORBIDDEN)
        ├── ProgramError            a seed program that does not validate, all issues at once
        │                           (BAD_PROGRAM)
        ├── ConditionError          a `where` / audience condition that cannot be compiled
        │                           (BAD_CONDITION)
        ├── InvalidArgumentError    an argument the server cannot take: fix the value (BAD_REQUEST)
        │   ├── EventError          an event field (id, type, value, occurredAt, properties)
        │   │   ├── EventTooOldError    older than the late-event tolerance (EVENT_TOO_OLD)
        │   │   ├── EventInFutureError  too far ahead of the server clock (EVENT_IN_FUTURE)
        │   │   └── EventIdReusedError  an event id sent before with another payload
        │   │                           (EVENT_ID_REUSED)
        │   ├── BatchTooLargeError  more events in one call than allowed (BATCH_TOO_LARGE)
        │   ├── CursorError         a paging or replay cursor that is not ours
        │   └── LeaderboardError    a period the board does not keep, `first` out of range
        ├── UnknownLeaderboardError no leaderboard with this id (UNKNOWN_LEADERBOARD)
        ├── UnknownTargetError      explain: no challenge, milestone, streak or badge by that
        │                           name (UNKNOWN_TARGET)
        ├── WebhookError            a webhook endpoint or delivery request that cannot be done
        │   │                       as asked (BAD_WEBHOOK)
        │   ├── WebhookUrlRefusedError  a URL inside the server's network (WEBHOOK_URL_REFUSED)
        │   ├── UnknownWebhookError     no endpoint with this id (UNKNOWN_WEBHOOK)
        │   └── UnknownDeliveryError    no delivery with this id (UNKNOWN_WEBHOOK_DELIVERY)
        └── PointsError             points cannot move as asked; raised as such for a bad
            │                       argument (BAD_REQUEST), its subclasses are refusals:
            ├── InsufficientPointsError the balance is lower than the cost (INSUFFICIENT_POINTS)
            ├── UnknownRewardError      no reward with this id in the catalog (UNKNOWN_REWARD)
            ├── OutOfStockError         the reward's stock is used up (OUT_OF_STOCK)
            ├── LimitReachedError       the player redeemed it as often as allowed (LIMIT_REACHED)
            ├── TierRequiredError       the reward needs a higher tier (TIER_REQUIRED)
            ├── IdempotencyKeyReusedError  the key already named another request
            │                           (IDEMPOTENCY_KEY_REUSED)
            └── ReferralError           a referral code that cannot be applied (BAD_REFERRAL)
                ├── ReferralsDisabledError      the program has no referrals (REFERRALS_DISABLED)
                ├── UnknownReferralCodeError    no player has this code (UNKNOWN_REFERRAL_CODE)
                ├── SelfReferralError           a player's own code (SELF_REFERRAL)
                ├── AlreadyReferredError        the player applied another code (ALREADY_REFERRED)
                └── NotNewPlayerError           the player already qualified (NOT_NEW_PLAYER)

Each error carries a stable `code` so the GraphQL layer can map it to
`extensions.code` without knowing the class hierarchy, `retryable` (true
only under `TransientError`) so a client knows whether sending the same
request again can help, and a message written for the person who has to
fix the input: a designer or an app developer. Every bad argument shares one
code, BAD_REQUEST; a code of its own is kept for a refusal a client acts on
differently (too old, out of stock, ...). Library errors (redis-py, sqlite3)
are translated into `StoreError` at the store boundary and never leak out of
the engine; a failure that will not go away by itself (a missing table, a
malformed plan) is not a `StoreError`, so clients do not retry it forever.
"""

from __future__ import annotations

from dataclasses import dataclass


class QuestlineError(Exception):
    code = "INTERNAL"
    retryable = False


class TransientError(QuestlineError):
    """The same request may succeed when sent again, after a pause."""

    retryable = True


class ConfigurationError(QuestlineError):
    code = "CONFIGURATION"


class AuthError(QuestlineError):
    code = "UNAUTHENTICATED"


class ForbiddenError(QuestlineError):
    code = "FORBIDDEN"


@dataclass(frozen=True)
class SeedIssue:
    """One problem in a seed program, located as precisely as we can."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class UnknownTargetError(QuestlineError):
    """`explain` was asked about something the program does not define."""

    code = "UNKNOWN_TARGET"


class ProgramError(QuestlineError):
    code = "BAD_PROGRAM"

    def __init__(self, issues: list[SeedIssue]) -> None:
        self.issues = issues
        count = len(issues)
        header = f"the program has {count} error{'s' if count != 1 else ''}"
        super().__init__("\n".join([header, *(str(issue) for issue in issues)]))


class ConditionError(QuestlineError):
    """Raised by the condition compiler; `path` points inside the condition."""

    code = "BAD_CONDITION"

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class InvalidArgumentError(QuestlineError):
    """An argument the server cannot take; the message names it and says what fits."""

    code = "BAD_REQUEST"


class EventError(InvalidArgumentError):
    pass


class EventTooOldError(EventError):
    code = "EVENT_TOO_OLD"


class EventInFutureError(EventError):
    code = "EVENT_IN_FUTURE"


class EventIdReusedError(EventError):
    code = "EVENT_ID_REUSED"


class BatchTooLargeError(InvalidArgumentError):
    code = "BATCH_TOO_LARGE"


class CursorError(InvalidArgumentError):
    pass


class StoreError(TransientError):
    code = "STORE_UNAVAILABLE"


class ConflictError(TransientError):
    code = "CONFLICT"


class TooSlowError(TransientError):
    code = "TOO_SLOW"


class LeaderboardError(InvalidArgumentError):
    pass


class UnknownLeaderboardError(QuestlineError):
    code = "UNKNOWN_LEADERBOARD"


class WebhookError(QuestlineError):
    code = "BAD_WEBHOOK"


class WebhookUrlRefusedError(WebhookError):
    code = "WEBHOOK_URL_REFUSED"


class UnknownWebhookError(WebhookError):
    code = "UNKNOWN_WEBHOOK"


class UnknownDeliveryError(WebhookError):
    code = "UNKNOWN_WEBHOOK_DELIVERY"


class PointsError(QuestlineError):
    code = "BAD_REQUEST"


class InsufficientPointsError(PointsError):
    code = "INSUFFICIENT_POINTS"


class UnknownRewardError(PointsError):
    code = "UNKNOWN_REWARD"


class OutOfStockError(PointsError):
    code = "OUT_OF_STOCK"


class LimitReachedError(PointsError):
    code = "LIMIT_REACHED"


class TierRequiredError(PointsError):
    code = "TIER_REQUIRED"


class IdempotencyKeyReusedError(PointsError):
    code = "IDEMPOTENCY_KEY_REUSED"


class ReferralError(PointsError):
    code = "BAD_REFERRAL"


class ReferralsDisabledError(ReferralError):
    code = "REFERRALS_DISABLED"


class UnknownReferralCodeError(ReferralError):
    code = "UNKNOWN_REFERRAL_CODE"


class SelfReferralError(ReferralError):
    code = "SELF_REFERRAL"


class AlreadyReferredError(ReferralError):
    code = "ALREADY_REFERRED"


class NotNewPlayerError(ReferralError):
    code = "NOT_NEW_PLAYER"
