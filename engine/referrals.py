"""Referrals: bring a friend, and both get points once the friend really starts.

A new player applies another player's code; the referral waits until the
new player's first qualifying event (the program's `referrals.qualify`),
then rewards both, once. The fraud rules live here: no self-referral, one
referrer per referee, a referee must be new (no qualifying event before the
code), and at most `monthly_cap` rewarded referrals per referrer in a
calendar month of the program's timezone, beyond which a referral is
recorded as refused with its reason rather than silently rewarded.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from engine import periods
from engine.errors import (
    AlreadyReferredError,
    NotNewPlayerError,
    ReferralsDisabledError,
    SelfReferralError,
)
from engine.events import Event
from engine.periods import Granularity
from engine.program.program import Program, ReferralsDef

#: Letters and digits nobody confuses when reading a code aloud (no 0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


class ReferralStatus(StrEnum):
    PENDING = "PENDING"  # applied; waiting for the referee's first qualifying event
    QUALIFIED = "QUALIFIED"  # both rewarded
    REFUSED = "REFUSED"  # qualified, but a fraud rule refused the reward (see `reason`)


@dataclass(frozen=True, slots=True)
class Referral:
    referee_id: str
    referrer_id: str
    code: str
    status: ReferralStatus
    reason: str | None
    applied_at: datetime
    qualified_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReferralInfo:
    """A player's own code and how it fared."""

    code: str
    referred_count: int
    qualified_count: int


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalized(code: str) -> str:
    """Codes are read aloud and typed on phones: case and spaces do not matter."""
    return "".join(code.split()).upper()


def settings(program: Program) -> ReferralsDef:
    if program.referrals is None:
        raise ReferralsDisabledError(
            "this program has no referrals; add a `referrals` section to the seed"
        )
    return program.referrals


def qualifies(program: Program, event: Event) -> bool:
    """Whether the event would qualify a referral of its player."""
    found = program.referrals
    if found is None or event.type != found.event:
        return False
    return found.where is None or found.where(event.properties)


def check_application(
    referee_id: str,
    referrer_id: str,
    code: str,
    existing: Referral | None,
    referee_qualified_at: datetime | None,
) -> Referral | None:
    """The referral already made with this very code (applying it again is
    harmless), None when a new one may be made, or the typed refusal."""
    if referrer_id == referee_id:
        raise SelfReferralError("a player cannot apply their own referral code")
    if existing is not None:
        if existing.code == code:
            return existing
        raise AlreadyReferredError(
            f"player {referee_id!r} already applied the referral code {existing.code}; "
            "a player has one referrer"
        )
    if referee_qualified_at is not None:
        raise NotNewPlayerError(
            f"player {referee_id!r} is not new: their first qualifying event was on "
            f"{referee_qualified_at.date().isoformat()}, before any referral code"
        )
    return None


def cap_window(moment: datetime, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month holding `moment`, in which rewarded referrals are counted."""
    month = periods.period_of(moment, Granularity.MONTH, timezone)
    return month.starts_at, month.ends_at


def refusal(found: ReferralsDef, rewarded_this_month: int) -> str | None:
    """Why the referrer's next referral is not rewarded, or None."""
    cap = found.monthly_cap
    if cap is not None and rewarded_this_month >= cap:
        return f"the referrer reached the cap of {cap} rewarded referrals this month"
    return None
