"""Every store key, in one place.

All keys of one player share the hash tag `{p:<player id>}`, so the atomic
step of one event touches a single Redis Cluster slot. The SQLite store uses
the very same names in its tables, which keeps the two backends comparable.

    {p:<id>}:event:<event id>          string  result of a recorded event (dedupe), TTL
    {p:<id>}:claim:<unlock key>        string  result of a claim no event made (Engine.claim), TTL
    {p:<id>}:profile                   hash    version, timezone, attributes (JSON)
    {p:<id>}:unlocks                   hash    unlock key -> unlock value; also markers ("")
    {p:<id>}:outbox                    stream  one entry per unlock: key, unlock value
    {p:<id>}:m:<metric>                int|set lifetime value of a metric
    {p:<id>}:m:<metric>:<period key>   int|set value in one period, TTL past its end
    {p:<id>}:m:<metric>:window:<ch>    int|set value inside a challenge's fixed window
    {p:<id>}:streak:<streak>           hash    last, current, longest, freezes

Leaderboards belong to no player: their keys carry no player hash tag, so an
event that moves a board touches two slots, which a script cannot do on Redis
Cluster; the engine refuses a program with leaderboards there.

    lb:<board>:all                     zset    all-time board: player id -> -(lifetime value)
    lb:<board>:<period key>            zset    board of one week or month: player id ->
                                               -(value in that period), TTL as the period's
                                               counters

Scores are negated so that ascending order (ZRANGE) puts the highest value
first and equal values in player id order, the documented tie rule.

Period keys are `day:2026-11-25`, `week:2026-11-23` (the local date the week
starts) and `month:2026-11`. Counter values are integers: counts as they
are, sums and maxima scaled by `SCALE` so that both backends agree exactly.

An unlock value is what engine.unlocks.unlock_value makes of the moment it
was claimed: epoch milliseconds as a string, `+backfill` appended when a
backfill claimed it.

Unlock keys (the fields of the unlocks hash) are granted once, ever:

    milestone:<id>:<tier>              tier is 1-based
    challenge:<id>:<period key>        a recurring challenge instance
    challenge:<id>                     a fixed-window challenge
    streak:<id>:<length>               a streak milestone
    badge:<id>                         a badge, granted by any of the above
    tier:<id>:<date>                   a change of tier (up at once, down at a review)
    done:challenge:<id>                marker: completed at least once (prerequisites)

Unlock keys live in the unlocks hash, so a Redis flush loses them; the
service copies every unlock to SQL before acknowledging it.

Pub/sub channels (Redis only; the SQLite store fans out in-process):

    questline:unlocks                  every committed unlock: {"p": player, "e": entries}
    questline:broadcast                Store.broadcast(): {"c": channel, "m": message}
"""

from __future__ import annotations

from datetime import date

SCALE = 1_000_000
UNLOCK_CHANNEL = "questline:unlocks"
BROADCAST_CHANNEL = "questline:broadcast"
#: SCAN pattern of every outbox (ids cannot hold `{` or `}`, so it matches nothing else).
OUTBOX_PATTERN = "{p:*}:outbox"
_OUTBOX_PREFIX, _OUTBOX_SUFFIX = "{p:", "}:outbox"


def player_tag(player_id: str) -> str:
    return f"{{p:{player_id}}}"


def event(player_id: str, event_id: str) -> str:
    return f"{player_tag(player_id)}:event:{event_id}"


def claim(player_id: str, name: str) -> str:
    """The duplicate check of a claim that no event made (a tier reached, a backfill run)."""
    return f"{player_tag(player_id)}:claim:{name}"


def profile(player_id: str) -> str:
    return f"{player_tag(player_id)}:profile"


def unlocks(player_id: str) -> str:
    return f"{player_tag(player_id)}:unlocks"


def outbox(player_id: str) -> str:
    return f"{player_tag(player_id)}:outbox"


def outbox_player(key: str) -> str:
    """The player whose outbox `key` is: the inverse of `outbox()`."""
    return key.removeprefix(_OUTBOX_PREFIX).removesuffix(_OUTBOX_SUFFIX)


def metric(player_id: str, metric_id: str, bucket: str | None = None) -> str:
    base = f"{player_tag(player_id)}:m:{metric_id}"
    return base if bucket is None else f"{base}:{bucket}"


def streak(player_id: str, streak_id: str) -> str:
    return f"{player_tag(player_id)}:streak:{streak_id}"


def milestone_unlock(milestone_id: str, tier: int) -> str:
    return f"milestone:{milestone_id}:{tier}"


def challenge_unlock(challenge_id: str, period_key: str | None) -> str:
    base = f"challenge:{challenge_id}"
    return base if period_key is None else f"{base}:{period_key}"


def challenge_done(challenge_id: str) -> str:
    return f"done:challenge:{challenge_id}"


def streak_unlock(streak_id: str, length: int) -> str:
    return f"streak:{streak_id}:{length}"


def badge_unlock(badge_id: str) -> str:
    return f"badge:{badge_id}"


def tier_unlock(tier_id: str, day: date) -> str:
    return f"tier:{tier_id}:{day.isoformat()}"


def leaderboard(board_id: str, period_key: str | None) -> str:
    """The board of one period (`week:2026-11-23`), or the all-time board for None."""
    return f"lb:{board_id}:{'all' if period_key is None else period_key}"
