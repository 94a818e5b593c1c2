"""Webhooks end to end: the app records events and a real HTTP receiver on
loopback, started by the test, gets signed deliveries, retried as promised.

Time: deliveries are scheduled by the service's clock. Tests that only need
retries to come soon use the real clock with backoffs of milliseconds; tests
about a day of failures move an injected clock instead of waiting a day.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.auth import issue_player_token
from app.main import create_app
from app.settings import Settings
from engine.engine import utc_now
from tests.support.clock import Clock
from tests.support.graphql_client import client_for, codes, gql, settings_for
from tests.support.polling import eventually
from tests.support.programs import LOYALTY, REPO
from tests.support.webhook_receiver import Answer, Received, receiving

EVERYTHING = [
    "UNLOCK_CHALLENGE",
    "UNLOCK_MILESTONE",
    "UNLOCK_STREAK",
    "UNLOCK_BADGE",
    "TIER_CHANGE",
    "REDEMPTION",
    "REFERRAL_REWARD",
]
CREATE = """mutation($url: String!, $events: [WebhookEvent!]!, $description: String! = "") {
  createWebhook(url: $url, events: $events, description: $description) {
    secret endpoint { id url events enabled description } } }"""
ENDPOINTS = """{ webhooks { id url events enabled failingSince disabledAt disabledReason
  previousSecretExpiresAt } }"""
DELIVERIES = """query($endpoint: ID, $status: WebhookDeliveryStatus, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $endpoint, status: $status, first: $first, after: $after) {
    edges { cursor node { id endpointId event status attempts lastStatusCode lastError
                          deliveredAt nextAttemptAt body } }
    pageInfo { hasNextPage endCursor } } }"""
RECORD = """mutation($event: EventInput!) { recordEvent(event: $event) { unlocks { key } } }"""
#: Retries within milliseconds, so the tests on the real clock wait little.
FAST = {
    "webhook_first_backoff": timedelta(milliseconds=20),
    "webhook_max_backoff": timedelta(milliseconds=200),
    "webhook_poll_interval": timedelta(milliseconds=20),
    "webhook_timeout": timedelta(seconds=2),
}


#: Retries wait for their backoff to pass, so these apps run on the real clock;
#: the loyalty program they record on has no calendar window a date could cross.
REAL_TIME = utc_now


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return settings_for(tmp_path).model_copy(update={"seed_path": LOYALTY, **FAST, **overrides})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(settings(tmp_path), REAL_TIME) as client:
        yield client


def create(client: TestClient, url: str, events: list[str] = EVERYTHING) -> tuple[str, str]:
    """A new endpoint's (id, secret)."""
    body = gql(client, CREATE, {"url": url, "events": events})
    assert "errors" not in body, body
    created = body["data"]["createWebhook"]
    return created["endpoint"]["id"], created["secret"]


def purchase(
    client: TestClient, event_id: str, player: str = "ada", amount: float = 4.5
) -> list[str]:
    """A coffee bought now; the keys it unlocked."""
    event = {
        "id": event_id,
        "playerId": player,
        "type": "purchase",
        "properties": {"category": "coffee", "amount": amount},
    }
    body = gql(client, RECORD, {"event": event})
    assert "errors" not in body, body
    return [unlock["key"] for unlock in body["data"]["recordEvent"]["unlocks"]]


def deliveries(client: TestClient, **variables: Any) -> list[dict[str, Any]]:
    body = gql(client, DELIVERIES, variables)
    assert "errors" not in body, body
    return [edge["node"] for edge in body["data"]["webhookDeliveries"]["edges"]]


def documented(language: str) -> str:
    """The receiver's verification recipe in `language`, as the README shows it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    found = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"the README's Webhooks section has no {language} block"
    return found.group(1)


def python_verify() -> Any:
    namespace: dict[str, Any] = {}
    exec(documented("python"), namespace)
    return namespace["verify"]


def node_verify(request: Received, secret: str) -> bool:
    """The README's Node recipe run by node on a request as received."""
    script = documented("js") + (
        "\nconst [body, header, secret] = process.argv.slice(1);\n"
        "process.stdout.write(String(verify(Buffer.from(body, 'base64'), header, secret)));\n"
    )
    done = subprocess.run(
        [
            "node",
            "-e",
            script,
            base64.b64encode(request.body).decode(),
            request.headers["questline-signature"],
            secret,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout == "true"


def metric(client: TestClient, name: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} is not in /metrics"
    return float(found.group(1))


def test_an_unlock_is_delivered_signed_and_both_documented_recipes_verify_it(
    client: TestClient,
) -> None:
    with receiving() as receiver:
        _, secret = create(client, receiver.url)
        unlocked = purchase(client, "e-1")
        assert "milestone:coffee-lover:1" in unlocked
        received = receiver.wait_for(lambda got: len(got) >= 2)
    bodies = {request.json["kind"]: request for request in received}
    milestone = bodies["unlock.milestone"]
    body = milestone.json
    assert body["id"] == milestone.delivery_id and body["id"].startswith("dlv_")
    assert body["payload"]["playerId"] == "ada"
    assert body["payload"]["unlockKey"] == "milestone:coffee-lover:1"
    assert abs(datetime.fromisoformat(body["time"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert "unlock.badge" in bodies
    verify = python_verify()
    assert verify(milestone.body, milestone.headers["questline-signature"], secret)
    assert node_verify(milestone, secret)
    assert not verify(milestone.body + b" ", milestone.headers["questline-signature"], secret)
    assert not verify(milestone.body, milestone.headers["questline-signature"], "whsec_other")
    assert not node_verify(milestone, "whsec_other")


def test_the_documented_recipe_refuses_an_old_timestamp(client: TestClient) -> None:
    """A request replayed later carries its old timestamp, which the recipe refuses."""
    with receiving() as receiver:
        _, secret = create(client, receiver.url)
        purchase(client, "e-1")
        [request, *_] = receiver.wait_for(lambda got: len(got) >= 1)
    header = request.headers["questline-signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 60
    import hashlib
    import hmac

    old = timestamp - 600
    replayed = (
        f"t={old},v1="
        + hmac.new(secret.encode(), f"{old}.".encode() + request.body, hashlib.sha256).hexdigest()
    )
    assert not python_verify()(request.body, replayed, secret)


def test_an_endpoint_gets_only_the_kinds_it_subscribed_to(client: TestClient) -> None:
    with receiving() as everything, receiving() as badges:
        create(client, everything.url)
        create(client, badges.url, ["UNLOCK_BADGE"])
        purchase(client, "e-1")
        everything.wait_for(lambda got: len(got) >= 2)
        got = badges.wait_for(lambda got: len(got) >= 1)
        time.sleep(0.2)  # anything else would have come by now (polled every 20 ms)
        assert [request.json["kind"] for request in badges.received] == ["unlock.badge"]
    assert got[0].json["payload"]["badgeId"] == "first-sip"


def test_a_receiver_failing_the_first_attempts_gets_the_delivery_on_the_next(
    client: TestClient,
) -> None:
    failures = 3

    def flaky(request: Received) -> Answer:
        return Answer(503 if request.attempt <= failures else 200)

    with receiving(flaky) as receiver:
        endpoint, _ = create(client, receiver.url, ["UNLOCK_MILESTONE"])
        purchase(client, "e-1")
        received = receiver.wait_for(lambda got: len(got) >= failures + 1)
        time.sleep(0.2)
    assert len(receiver.received) == failures + 1
    assert len({request.delivery_id for request in received}) == 1
    assert len({request.body for request in received}) == 1
    [delivery] = deliveries(client, endpoint=endpoint)
    assert delivery["status"] == "DELIVERED"
    assert delivery["attempts"] == failures + 1
    assert delivery["lastStatusCode"] == 200
    assert metric(client, "questline_webhook_deliveries_retried_total") == failures
    assert metric(client, "questline_webhook_deliveries_sent_total") == 1


def test_a_429_is_retried_no_sooner_than_its_retry_after(client: TestClient) -> None:
    def busy(request: Received) -> Answer:
        return Answer(429, {"Retry-After": "1"}) if request.attempt == 1 else Answer()

    with receiving(busy) as receiver:
        create(client, receiver.url, ["UNLOCK_MILESTONE"])
        purchase(client, "e-1")
        first, second = receiver.wait_for(lambda got: len(got) >= 2)
    # The backoff alone would have retried within 20 ms.
    assert second.at - first.at >= 1.0
    assert second.delivery_id == first.delivery_id


def test_a_410_is_final_and_the_dead_letter_can_be_redelivered(client: TestClient) -> None:
    gone = {"yes": True}

    def answer(request: Received) -> Answer:
        return Answer(410 if gone["yes"] else 200)

    with receiving(answer) as receiver:
        endpoint, _ = create(client, receiver.url, ["UNLOCK_MILESTONE"])
        purchase(client, "e-1")
        receiver.wait_for(lambda got: len(got) >= 1)
        [failed] = eventually(
            lambda: deliveries(client, endpoint=endpoint, status="FAILED"), what="the failure"
        )
        time.sleep(0.2)
        assert len(receiver.received) == 1
        assert failed["attempts"] == 1 and failed["lastStatusCode"] == 410
        assert failed["nextAttemptAt"] is None
        assert metric(client, "questline_webhook_deliveries_failed_total") == 1

        gone["yes"] = False
        redo = """mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status } }"""
        body = gql(client, redo, {"id": failed["id"]})
        assert body["data"]["redeliverWebhook"] == {"id": failed["id"], "status": "PENDING"}
        again = receiver.wait_for(lambda got: len(got) >= 2)[1]
    assert again.delivery_id == failed["id"]
    assert again.body.decode() == failed["body"]
    assert deliveries(client, endpoint=endpoint, status="FAILED") == []


def test_a_day_of_failures_makes_a_dead_letter_and_disables_the_endpoint(
    tmp_path: Path,
) -> None:
    clock = Clock(datetime.now(UTC))
    broken = {"yes": True}

    def answer(request: Received) -> Answer:
        return Answer(500 if broken["yes"] else 200)

    with (
        receiving(answer) as receiver,
        TestClient(create_app(settings(tmp_path), clock)) as client,
    ):
        endpoint, _ = create(client, receiver.url, ["UNLOCK_MILESTONE"])
        purchase(client, "e-1")
        receiver.wait_for(lambda got: len(got) >= 1)
        # The attempt's outcome is committed after the receiver answered it.
        [pending] = eventually(
            lambda: deliveries(client, endpoint=endpoint),
            lambda found: found[0]["lastStatusCode"] is not None,
            "the first attempt's outcome",
        )
        assert pending["status"] == "PENDING" and pending["lastStatusCode"] == 500
        [listed] = gql(client, ENDPOINTS)["data"]["webhooks"]
        assert listed["enabled"] and listed["failingSince"] is not None

        clock.advance(hours=25)
        receiver.wait_for(lambda got: len(got) >= 2)
        eventually(lambda: deliveries(client, endpoint=endpoint)[0]["status"] == "FAILED")
        [listed] = gql(client, ENDPOINTS)["data"]["webhooks"]
        assert not listed["enabled"] and listed["disabledAt"] is not None
        assert "updateWebhook(enabled: true)" in listed["disabledReason"]

        purchase(client, "e-2", player="bob")
        time.sleep(0.2)
        assert len(receiver.received) == 2  # a disabled endpoint gets nothing new
        [dead] = deliveries(client, endpoint=endpoint)
        redo = """mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }"""
        assert codes(gql(client, redo, {"id": dead["id"]})) == ["BAD_WEBHOOK"]

        broken["yes"] = False
        enable = """mutation($id: ID!) { updateWebhook(id: $id, enabled: true) {
          enabled failingSince disabledReason } }"""
        assert gql(client, enable, {"id": endpoint})["data"]["updateWebhook"] == {
            "enabled": True,
            "failingSince": None,
            "disabledReason": None,
        }
        gql(client, redo, {"id": dead["id"]})
        again = receiver.wait_for(lambda got: len(got) >= 3)[2]
        assert again.delivery_id == dead["id"]


def test_a_rotated_secret_signs_beside_the_old_one_for_the_grace_period(
    client: TestClient,
) -> None:
    rotate = """mutation($id: ID!, $grace: Int) {
      rotateWebhookSecret(id: $id, gracePeriodSeconds: $grace) {
        secret endpoint { previousSecretExpiresAt } } }"""
    verify = python_verify()
    with receiving() as receiver:
        endpoint, old = create(client, receiver.url, ["UNLOCK_MILESTONE"])
        rotated = gql(client, rotate, {"id": endpoint, "grace": 3600})["data"]
        new = rotated["rotateWebhookSecret"]["secret"]
        assert new != old and new.startswith("whsec_")
        purchase(client, "e-1")
        [during] = receiver.wait_for(lambda got: len(got) >= 1)
        header = during.headers["questline-signature"]
        assert header.count("v1=") == 2
        assert verify(during.body, header, new) and verify(during.body, header, old)

        gql(client, rotate, {"id": endpoint, "grace": 0})
        purchase(client, "e-2", player="bob")
        after = receiver.wait_for(lambda got: len(got) >= 2)[1]
    header = after.headers["questline-signature"]
    assert header.count("v1=") == 1
    assert not verify(after.body, header, new)  # rotated again: `new` is the old one now


def test_tier_changes_redemptions_and_referral_rewards_are_delivered(
    client: TestClient,
) -> None:
    with receiving() as receiver:
        create(client, receiver.url, ["TIER_CHANGE", "REDEMPTION", "REFERRAL_REWARD"])
        code = gql(client, '{ player(id: "ada") { referral { code } } }')
        referral = code["data"]["player"]["referral"]["code"]
        applied = """mutation($code: String!) {
          applyReferralCode(code: $code, playerId: "bob") { status } }"""
        assert "errors" not in gql(client, applied, {"code": referral})
        purchase(client, "e-1", player="ada", amount=25)  # 250 points: gold
        purchase(client, "e-2", player="bob", amount=5)  # qualifies bob's referral
        redeem = """mutation { redeem(rewardId: "espresso", idempotencyKey: "r-1",
          playerId: "ada") { id } }"""
        redemption = gql(client, redeem)["data"]["redeem"]["id"]
        gql(client, redeem)  # retried: the same redemption, delivered once
        received = receiver.wait_for(lambda got: len(got) >= 3)
        time.sleep(0.2)
    by_kind = {request.json["kind"]: request.json["payload"] for request in received}
    assert len(receiver.received) == 3
    assert by_kind["tier.changed"]["playerId"] == "ada"
    assert by_kind["tier.changed"]["tierId"] == "gold"
    assert by_kind["redemption.created"]["redemptionId"] == redemption
    assert by_kind["redemption.created"]["rewardId"] == "espresso"
    assert by_kind["referral.rewarded"] == {
        "refereeId": "bob",
        "referrerId": "ada",
        "referrerPoints": 100,
        "refereePoints": 50,
        "rewardedAt": by_kind["referral.rewarded"]["rewardedAt"],
    }


def test_a_retried_event_delivers_its_unlocks_once(client: TestClient) -> None:
    with receiving() as receiver:
        endpoint, _ = create(client, receiver.url)
        unlocked = purchase(client, "e-1")
        purchase(client, "e-1")
        receiver.wait_for(lambda got: len(got) >= len(unlocked))
        time.sleep(0.2)
    assert len(receiver.received) == len(unlocked)
    sent = sorted(request.json["payload"]["unlockKey"] for request in receiver.received)
    assert sent == sorted(unlocked)
    assert len(deliveries(client, endpoint=endpoint)) == len(unlocked)


def test_deliveries_page_newest_first_and_filter_by_status(client: TestClient) -> None:
    with receiving() as receiver:
        endpoint, _ = create(client, receiver.url)
        for number in range(3):
            purchase(client, f"e-{number}", player=f"p-{number}")
        receiver.wait_for(lambda got: len(got) >= 6)
        eventually(lambda: len(deliveries(client, status="DELIVERED")) == 6)
    first = gql(client, DELIVERIES, {"endpoint": endpoint, "first": 4})["data"]
    page = first["webhookDeliveries"]
    assert len(page["edges"]) == 4 and page["pageInfo"]["hasNextPage"]
    rest = gql(client, DELIVERIES, {"endpoint": endpoint, "after": page["pageInfo"]["endCursor"]})[
        "data"
    ]["webhookDeliveries"]
    assert len(rest["edges"]) == 2 and not rest["pageInfo"]["hasNextPage"]
    cursors = [int(edge["cursor"]) for edge in page["edges"] + rest["edges"]]
    assert cursors == sorted(cursors, reverse=True)
    assert deliveries(client, status="PENDING") == []
    assert codes(gql(client, DELIVERIES, {"endpoint": "999"})) == ["UNKNOWN_WEBHOOK"]
    assert codes(gql(client, DELIVERIES, {"after": "nope"})) == ["BAD_REQUEST"]


def test_webhooks_need_an_api_key(client: TestClient, tmp_path: Path) -> None:
    token = issue_player_token(settings(tmp_path), "ada", 300)
    assert codes(gql(client, ENDPOINTS, token=token)) == ["FORBIDDEN"]
    body = gql(client, CREATE, {"url": "https://example.com/", "events": EVERYTHING}, token)
    assert codes(body) == ["FORBIDDEN"]


def test_endpoints_are_listed_changed_and_deleted(client: TestClient) -> None:
    endpoint, _ = create(client, "https://example.com/a", ["REDEMPTION"])
    change = """mutation($id: ID!) { updateWebhook(id: $id, url: "https://example.com/b",
      events: [UNLOCK_STREAK, REDEMPTION], description: "crm") { url events description } }"""
    assert gql(client, change, {"id": endpoint})["data"]["updateWebhook"] == {
        "url": "https://example.com/b",
        "events": ["UNLOCK_STREAK", "REDEMPTION"],
        "description": "crm",
    }
    [listed] = gql(client, ENDPOINTS)["data"]["webhooks"]
    assert "secret" not in listed and listed["url"] == "https://example.com/b"
    delete = """mutation($id: ID!) { deleteWebhook(id: $id) }"""
    assert gql(client, delete, {"id": endpoint})["data"] == {"deleteWebhook": True}
    assert gql(client, ENDPOINTS)["data"]["webhooks"] == []
    assert codes(gql(client, delete, {"id": endpoint})) == ["UNKNOWN_WEBHOOK"]
    no_events = gql(client, CREATE, {"url": "https://example.com/", "events": []})
    assert codes(no_events) == ["BAD_WEBHOOK"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hooks",
        "http://[::1]/hooks",
        "http://[::ffff:192.168.0.1]/hooks",
    ],
)
def test_urls_inside_the_network_are_refused_outside_development(tmp_path: Path, url: str) -> None:
    with client_for(settings(tmp_path, environment="production"), REAL_TIME) as client:
        assert codes(gql(client, CREATE, {"url": url, "events": EVERYTHING})) == [
            "WEBHOOK_URL_REFUSED"
        ]


def test_allowed_hosts_and_public_addresses_are_accepted(tmp_path: Path) -> None:
    production = settings(tmp_path, environment="production", webhook_allow_hosts=("127.0.0.1",))
    with client_for(production, REAL_TIME) as client:
        create(client, "http://127.0.0.1:8000/hooks")
        create(client, "https://93.184.215.14/hooks")
        refused = gql(client, CREATE, {"url": "ftp://93.184.215.14/", "events": EVERYTHING})
        assert codes(refused) == ["BAD_WEBHOOK"]
