"""The designer's tools end to end: a real server records a realistic journal,
then `questline simulate` and `simulateProgram` compare a candidate program
with the one in use, checked against counts made independently from the
events sent."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.auth import issue_player_token
from app.cli import cli
from app.launch import Server, running_servers
from app.settings import Settings
from tests.support.graphql_client import API_KEY, JWT_SECRET, seed_env
from tests.support.histories import (
    UPDATE,
    coffees_per_week,
    history,
    post,
    reaching,
    send,
    timezone_of,
    utc_now,
)
from tests.support.programs import SEED

PLAYERS = 40
EVENTS = 900

#: The goal of `three-this-week` in the example program.
THREE = "    metric: coffees\n    target: 3\n"
SIMULATE = """query($files: [SeedFileInput!]!, $since: DateTime) {
  simulateProgram(files: $files, since: $since) {
    windowEvents eventsReplayed eventLimit complete players currentVersion candidateVersion
    rules { id status renamedFrom orphanedUnlocks unlocks { before after change }
            players { before after } completionRate { before after } points { before after } }
    points { earned { before after } carried { before after } issued { before after change }
             spend earnRate { before after } liabilityChange }
    tiers { tier players { before after } }
    added removed } }"""
PROGRESS = """query($id: ID!) { player(id: $id) {
  challenges { unlockKey progress { current completed } }
  milestones { value tiersReached } points { balance } } }"""


@dataclass
class Recorded:
    server: Server
    folder: Path
    events: list[dict[str, Any]]

    @property
    def env(self) -> dict[str, str]:
        """The variables of the CLI run on the server's files."""
        return seed_env(self.folder)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """A server on the example program that recorded the last six days of a shop."""
    folder = tmp_path_factory.mktemp("designer")
    env = seed_env(folder, QUESTLINE_SIMULATE_MAX_EVENTS=str(EVENTS - 100))
    events = history(utc_now(), PLAYERS, EVENTS)
    with running_servers([env], folder) as (server,):
        send(partial(post, server.url), events, PLAYERS)
        yield Recorded(server, folder, events)


def doubled_target(folder: Path) -> Path:
    """The example program with `three-this-week` asking for six coffees, and
    `daily-double` renamed `two-a-day`."""
    candidate = folder / "candidate"
    shutil.copytree(SEED, candidate)
    challenges = candidate / "challenges.yaml"
    text = challenges.read_text()
    assert text.count("    metric: coffees\n    target: 3\n") == 1
    text = text.replace(
        "    metric: coffees\n    target: 3\n", "    metric: coffees\n    target: 6\n"
    )
    challenges.write_text(text.replace("  daily-double:\n", "  two-a-day:\n"))
    return candidate


def row(rules: list[dict[str, Any]], rule_id: str) -> dict[str, Any]:
    return next(item for item in rules if item["id"] == rule_id)


def test_simulate_shows_exactly_the_players_between_the_old_and_the_doubled_target_losing_it(
    recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in recorded.env.items():
        monkeypatch.setenv(name, value)
    before_progress = post(recorded.server.url, PROGRESS, {"id": "guest-1"})
    result = CliRunner().invoke(cli, ["simulate", str(doubled_target(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)

    weekly = coffees_per_week(recorded.events)
    (instances_3, players_3), (instances_6, players_6) = reaching(weekly, 3), reaching(weekly, 6)
    assert instances_6 < instances_3  # the journal has players between the two targets
    three = row(found["rules"], "challenge:three-this-week")
    assert three["unlocks"] == {
        "before": instances_3,
        "after": instances_6,
        "change": instances_6 - instances_3,
    }
    assert three["players"]["before"] == players_3
    assert three["players"]["after"] == players_6
    assert three["points"] == {
        "before": 50 * instances_3,
        "after": 50 * instances_6,
        "change": 50 * (instances_6 - instances_3),
    }
    assert three["completionRate"]["before"] == round(players_3 / found["players"], 4)
    assert found["events"] == found["windowEvents"] == EVENTS and found["complete"]
    assert found["players"] == len({event["playerId"] for event in recorded.events})

    # Only that challenge's reward changed, and that of Barista's pick, which
    # requires it (whether a player loses that one too depends on where this
    # week's days fall): the difference of points carried is theirs alone.
    changed = {r["id"]: r["points"]["change"] for r in found["rules"] if r["points"]["change"]}
    assert changed["challenge:three-this-week"] == 50 * (instances_6 - instances_3)
    assert set(changed) <= {"challenge:three-this-week", "challenge:barista-pick"}
    carried = found["points"]["carried"]
    assert carried["after"] - carried["before"] == sum(changed.values())
    # The rename is recognised, and the history of the old id would be orphaned.
    renamed = row(found["rules"], "challenge:two-a-day")
    assert renamed["status"] == "renamed"
    assert renamed["renamedFrom"] == "challenge:daily-double"
    assert renamed["unlocks"]["before"] == renamed["unlocks"]["after"] > 0
    assert renamed["orphanedUnlocks"] == renamed["unlocks"]["before"]
    assert found["renamed"] == {"challenge:two-a-day": "challenge:daily-double"}
    assert found["added"] == [] and found["removed"] == []
    assert sum(figure["before"] for figure in found["tiers"].values()) == found["players"]

    # Nothing live changed.
    assert post(recorded.server.url, PROGRESS, {"id": "guest-1"}) == before_progress

    table = CliRunner().invoke(cli, ["simulate", str(doubled_target(tmp_path / "again"))])
    assert table.exit_code == 0, table.output
    assert f"{instances_3} -> {instances_6}" in table.stdout
    assert "renamed from challenge:daily-double" in table.stdout.replace("\n", " ")


def test_simulate_program_over_graphql_answers_the_same_figures_within_its_limit(
    recorded: Recorded,
) -> None:
    since = utc_now() - timedelta(days=3)
    files = [
        {"name": "challenges.yaml", "content": (doubled_target_text())},
    ]
    body = post(recorded.server.url, SIMULATE, {"files": files, "since": since.isoformat()})
    assert "errors" not in body, body
    found = body["data"]["simulateProgram"]
    in_window = [e for e in recorded.events if e["occurredAt"] >= since.isoformat()]
    assert found["windowEvents"] == found["eventsReplayed"] == len(in_window)
    assert found["complete"] and found["eventLimit"] == EVENTS - 100
    weekly = coffees_per_week(recorded.events, since)
    three = row(found["rules"], "challenge:three-this-week")
    assert three["unlocks"]["before"] == reaching(weekly, 3)[0]
    assert three["unlocks"]["after"] == reaching(weekly, 6)[0]
    assert three["players"] == {"before": reaching(weekly, 3)[1], "after": reaching(weekly, 6)[1]}

    whole = post(recorded.server.url, SIMULATE, {"files": files})["data"]["simulateProgram"]
    assert whole["windowEvents"] == EVENTS
    assert whole["eventsReplayed"] == EVENTS - 100 and not whole["complete"]


def doubled_target_text() -> str:
    text = (SEED / "challenges.yaml").read_text()
    return text.replace(
        "    metric: coffees\n    target: 3\n", "    metric: coffees\n    target: 6\n"
    )


def test_simulate_program_refuses_a_broken_candidate_with_file_and_line(
    recorded: Recorded,
) -> None:
    broken = doubled_target_text().replace("target: 6", "target: -6")
    body = post(
        recorded.server.url, SIMULATE, {"files": [{"name": "challenges.yaml", "content": broken}]}
    )
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_PROGRAM"
    line = broken.splitlines().index("    target: -6") + 1
    assert f"challenges.yaml:{line} challenges.three-this-week.target" in error["message"]


def test_simulate_program_needs_an_api_key(recorded: Recorded) -> None:
    token = issue_player_token(Settings(jwt_secret=JWT_SECRET), "guest-1", 300)
    files = [{"name": "challenges.yaml", "content": doubled_target_text()}]
    body = post(recorded.server.url, SIMULATE, {"files": files}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


EXPLAIN = """query($player: ID!, $target: String!) {
  explain(playerId: $player, target: $target) {
    target kind title unlockKey unlocked unlockedAt unlockedBy { eventId type }
    timezone period startsAt endsAt goals { metric current target met }
    inAudience audienceFailures { condition attribute seen } missingPrerequisites window
    completedBefore feeds { metric eventType aggregate property where }
    lastEvent { eventId type occurredAt } text
    via { target unlocked goals { current target } } } }"""


def explain(url: str, player: str, target: str, token: str = API_KEY) -> dict[str, Any]:
    body = post(url, EXPLAIN, {"player": player, "target": target}, token)
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["explain"]
    return found


def coffees_of(events: list[dict[str, Any]], player: str) -> list[dict[str, Any]]:
    """A player's coffee purchases in the order they were sent (and journaled)."""
    return [
        event
        for event in events
        if event["playerId"] == player
        and event["type"] == "purchase"
        and event["properties"]["category"] == "coffee"
    ]


def test_explain_says_where_a_player_stands_in_this_weeks_challenge(recorded: Recorded) -> None:
    now = utc_now()
    weekly = coffees_per_week(recorded.events)
    candidates = [
        (player, count)
        for (player, week), count in weekly.items()
        if 0 < count < 3 and week == now.astimezone(timezone_of(player)).isocalendar()[:2]
    ]
    player, count = candidates[0]
    found = explain(recorded.server.url, player, "three-this-week")
    zone = timezone_of(player)
    assert found["target"] == "challenge:three-this-week" and not found["unlocked"]
    assert found["goals"] == [{"metric": "coffees", "current": count, "target": 3, "met": False}]
    assert found["timezone"] == zone.key and found["period"] == "week"
    ends = datetime.fromisoformat(found["endsAt"]).astimezone(zone)
    assert (ends.weekday(), ends.hour, ends.minute) == (0, 0, 0)  # next Monday, local midnight
    assert found["inAudience"] and found["missingPrerequisites"] == [] and found["window"] is None
    assert found["feeds"] == [
        {
            "metric": "coffees",
            "eventType": "purchase",
            "aggregate": "count",
            "property": None,
            "where": '{"category": "coffee"}',
        }
    ]
    assert found["lastEvent"]["eventId"] == coffees_of(recorded.events, player)[-1]["id"]
    assert found["text"] == (
        f"Three this week: {count} of 3 coffees this week; the week ends Sunday 23:59 {zone.key}."
    )


def test_explain_points_at_the_event_that_unlocked_a_milestone(recorded: Recorded) -> None:
    player = "guest-3"
    first = coffees_of(recorded.events, player)[0]
    found = explain(recorded.server.url, player, "milestone:coffee-lover:1")
    assert found["unlocked"] and found["unlockedBy"] == {"eventId": first["id"], "type": "purchase"}
    assert found["title"] == "First sip"
    assert f"(event {first['id']})" in found["text"]
    badge = explain(recorded.server.url, player, "first-sip")
    assert badge["kind"] == "badge" and badge["unlocked"]
    assert badge["unlockedBy"]["eventId"] == first["id"]
    assert [rule["target"] for rule in badge["via"]] == ["milestone:coffee-lover:1"]
    # A bare milestone id is its next tier not reached yet.
    following = explain(recorded.server.url, player, "coffee-lover")
    coffees = len(coffees_of(recorded.events, player))
    assert following["goals"][0]["current"] == coffees
    assert not following["unlocked"] and following["goals"][0]["target"] > coffees


def test_explain_names_the_audience_condition_and_the_prerequisites_missing(
    recorded: Recorded,
) -> None:
    url = recorded.server.url
    body = post(url, UPDATE, {"id": "guest-5", "attributes": {"country": "US"}})
    assert "errors" not in body, body
    found = explain(url, "guest-5", "neighbourhood-tour")
    assert not found["inAudience"]
    assert found["audienceFailures"] == [
        {"condition": '{"country": {"in": ["FR", "BE"]}}', "attribute": "country", "seen": '"US"'}
    ]
    assert 'open to players with {"country": {"in": ["FR", "BE"]}} (yours: "US")' in found["text"]
    missing = explain(url, "guest-6", "neighbourhood-tour")["audienceFailures"][0]
    assert missing["seen"] == "(missing)"

    nobody = explain(url, "newcomer", "barista-pick")
    assert nobody["missingPrerequisites"] == [
        "challenge:three-this-week",
        "milestone:coffee-lover:2",
    ]
    assert nobody["lastEvent"] is None and nobody["goals"][0]["current"] == 0


def test_explain_says_whether_a_fixed_window_is_open(recorded: Recorded) -> None:
    found = explain(recorded.server.url, "guest-7", "advent")
    zone = timezone_of("guest-7")
    start = datetime(2026, 12, 1, tzinfo=zone)
    end = datetime(2026, 12, 25, tzinfo=zone)
    now = utc_now()
    expected = "not open yet" if now < start else "closed" if now >= end else "open"
    assert found["window"] == expected
    assert datetime.fromisoformat(found["startsAt"]) == start


def test_explain_answers_a_player_about_themselves_only(recorded: Recorded) -> None:
    token = issue_player_token(Settings(jwt_secret=JWT_SECRET), "guest-3", 300)
    own = explain(recorded.server.url, "guest-3", "first-sip", token=token)
    assert own["unlocked"]
    body = post(recorded.server.url, EXPLAIN, {"player": "guest-4", "target": "first-sip"}, token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unknown = post(recorded.server.url, EXPLAIN, {"player": "guest-3", "target": "nothing"})
    assert unknown["errors"][0]["extensions"]["code"] == "UNKNOWN_TARGET"
