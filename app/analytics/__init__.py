"""Program analytics for the loyalty manager: challenge completion, live
streaks, points issued and redeemed, and customer retention.

Definitions (the README's "Analytics" section and the GraphQL field
descriptions say the same):

- A player *started* a challenge instance (one week of a weekly challenge,
  the whole of a fixed window) when an event counted by one of its goal
  metrics (its type and `where` match) fell inside that instance while the
  player was in the challenge's audience. Prerequisites are not asked:
  progress made before they are met still counts.
- A player *completed* an instance when its unlock (`challenge:<id>:<period
  key>`, or `challenge:<id>` for a window) is in their unlock history.
  Per challenge, started and completed count distinct players over every
  instance; per instance, the players of that instance. The completion rate
  is completed / started.
- A streak is *active* when it is alive now as the player's progress shows
  it: current > 0 once the periods missed since its last extension are
  counted (a gap its freezes cannot cover breaks it). *At risk*: active, but
  this period is not extended yet or a freeze covers a gap.
- Points: *issued* sums every credit of the ledger (earn rules, unlock
  rewards, referrals, positive adjustments); *redeemed* the redemptions;
  *expired* the expiries, including points already lapsed whose expiry is
  not written yet; *deducted* the negative adjustments; *outstanding* the
  balances minus those lapsed points. issued == redeemed + expired +
  deducted + outstanding.
- Retention per period (day, week or month in the program's timezone):
  a *customer* of a period is a player with at least one accepted event in
  it; customers at start = customers of the previous period, at end =
  customers of this period, new = customers of this period never active
  before it. Retention = (at end - new) / at start. At end - new counts
  every returning customer, including those back after a quiet period, so
  the rate can exceed 1; *retained* (active in both periods) tells them
  apart.

`observer.py` writes, while events are recorded, what the reports read;
`reports.py` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from app.analytics.observer import (
    ACTIVITY,
    ATTEMPTS,
    Activity,
    ActivityDay,
    ActivityObserver,
    ChallengeAttempt,
    save_activity,
)
from app.analytics.reports import Reports
from engine.engine import Recorded


class Analytics(Reports):
    """The reports, and the observer that writes what they read as events are
    recorded (the service calls `activity` and `written` from its group commit)."""

    @cached_property
    def _observer(self) -> ActivityObserver:
        return ActivityObserver(self.engine, self.timezone)

    async def activity(self, recorded: Sequence[Recorded]) -> Activity:
        """See `ActivityObserver.activity`."""
        return await self._observer.activity(recorded)

    def written(self, activity: Activity) -> None:
        """See `ActivityObserver.written`."""
        self._observer.written(activity)


__all__ = [
    "ACTIVITY",
    "ATTEMPTS",
    "Activity",
    "ActivityDay",
    "Analytics",
    "ChallengeAttempt",
    "save_activity",
]
