"""The web console: sessions, CSRF and headers in process; the pages in a real Chromium.

The browser tests share one real server on the example program (seed/) and
each uses players of its own. Events are recorded through the GraphQL API at
the time the test runs (no fixed dates). With QUESTLINE_SCREENSHOTS=<folder>
they save each page at 1280 and 360 px there (the README shows those of
docs/console/); otherwise into the test's temporary folder. At 360 px every
page must fit the width: nothing scrolls sideways but the tables meant to.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from itsdangerous import TimestampSigner
from playwright.sync_api import BrowserContext, Page, expect
from pydantic import SecretStr
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.auth import issue_player_token
from app.console.sessions import COOKIE, CSRF_FIELD, Sessions
from app.launch import Server
from app.settings import Settings
from tests.support.browser import NARROW, WIDE
from tests.support.graphql_client import API_KEY, JWT_SECRET
from tests.support.polling import eventually
from tests.support.programs import SEED

RECORD = """mutation($event: EventInput!) {
    recordEvent(event: $event) { duplicate unlocks { key title } } }"""
ACTIVE_TODAY = "{ analytics { retention(period: DAY, periods: 1) { customersAtEnd } } }"
POINTS = "{ analytics { points { issued redeemed expired deducted outstanding } } }"
#: The live part's promise: an unlock shows within 2 s, without a reload.
LIVE_MS = 2_000


# --- in process: sessions, CSRF, headers -------------------------------------


def csrf_of(page: str) -> str:
    found = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def sign_in(client: TestClient, key: str = API_KEY) -> httpx.Response:
    token = csrf_of(client.get("/console/sign-in").text)
    return client.post(
        "/console/sign-in",
        data={CSRF_FIELD: token, "api_key": key},
        follow_redirects=False,
    )


def test_the_root_redirects_to_the_console(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "/console/")


def test_every_page_sends_visitors_without_a_session_to_sign_in(client: TestClient) -> None:
    for path in ["/console/", "/console/challenges", "/console/players/ada", "/console/program"]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/sign-in?next="), path


def test_signing_in_sets_a_signed_http_only_strict_expiring_cookie(client: TestClient) -> None:
    response = sign_in(client)
    assert (response.status_code, response.headers["location"]) == (303, "/console/")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ["HttpOnly", "SameSite=strict", "Max-Age=28800", "Path=/"]:
        assert attribute in cookie, cookie
    assert API_KEY not in cookie
    page = client.get("/console/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy


def test_a_player_token_or_a_wrong_key_does_not_sign_in(
    client: TestClient, settings: Settings
) -> None:
    for key, message in [
        (issue_player_token(settings, "ada", 60), "the console needs an API key"),
        ("not-a-key-0123456789", "not one of this server"),
    ]:
        response = sign_in(client, key)
        assert response.status_code == 401 and message in response.text
        assert client.get("/console/", follow_redirects=False).status_code == 303


def test_a_forged_cookie_is_refused(client: TestClient) -> None:
    sign_in(client)
    value = client.cookies[COOKIE]
    payload, _, signature = value.partition(".")
    forged = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    client.cookies.clear()
    client.cookies.set(COOKIE, forged)
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_an_expired_cookie_is_refused(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ttl = settings.console_session_ttl
    issued = int(time.time() - ttl.total_seconds() - 60)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued)
    sessions = Sessions(settings.api_keys, ttl)
    cookie = sessions.encode(sessions.new(signed_in=True))
    monkeypatch.undo()
    client.cookies.set(COOKIE, cookie)
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    client: TestClient,
) -> None:
    sign_in(client)
    for data in [{}, {CSRF_FIELD: "not-the-token"}]:
        response = client.post("/console/sign-out", data=data, follow_redirects=False)
        assert response.status_code == 403 and "was refused" in response.text
    assert client.get("/console/", follow_redirects=False).status_code == 200
    token = csrf_of(client.get("/console/").text)
    signed_out = client.post("/console/sign-out", data={CSRF_FIELD: token}, follow_redirects=False)
    assert signed_out.status_code == 303
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_sign_in_form_needs_its_csrf_token_too(client: TestClient) -> None:
    client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={"api_key": API_KEY}, follow_redirects=False)
    assert response.status_code == 403


def test_the_console_cookie_opens_a_websocket_only_from_this_servers_pages(
    client: TestClient,
) -> None:
    init = {"type": "connection_init", "payload": {}}

    def connect(origin: str) -> dict[str, Any]:
        with client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers={"origin": origin}
        ) as ws:
            ws.send_json(init)
            message: dict[str, Any] = ws.receive_json()
            return message

    with pytest.raises(WebSocketDisconnect) as closed:
        connect("http://testserver")
    assert closed.value.code == 4403  # no session: no credentials
    sign_in(client)
    assert connect("http://testserver")["type"] == "connection_ack"
    with pytest.raises(WebSocketDisconnect):
        connect("http://elsewhere.test")  # another site's page riding on the cookie


# --- in a real browser ---------------------------------------------------------


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: QUESTLINE_SCREENSHOTS, or a temporary folder."""
    chosen = os.environ.get("QUESTLINE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        yield client


@pytest.fixture
def player() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def graphql(api: httpx.Client, server: Server, query: str, **variables: Any) -> dict[str, Any]:
    response = api.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def coffee(api: httpx.Client, server: Server, player: str, ago: timedelta = timedelta()) -> list:
    """Record a coffee bought `ago` before now; the unlocks it caused."""
    event: dict[str, Any] = {
        "id": f"e-{uuid.uuid4().hex[:12]}",
        "playerId": player,
        "type": "purchase",
        "properties": {"category": "coffee", "drink": "latte", "amount": 4.5, "store_id": "s-1"},
    }
    if ago:
        from datetime import UTC, datetime

        event["occurredAt"] = (datetime.now(UTC) - ago).isoformat()
    result = graphql(api, server, RECORD, event=event)["recordEvent"]
    assert result["duplicate"] is False
    unlocks: list = result["unlocks"]
    return unlocks


def signed_in_page(browser: BrowserContext, server: Server, path: str = "/console/") -> Page:
    """A page of the console, after signing in through the form."""
    page = browser.new_page()
    page.goto(f"{server.url}{path}")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}{path}")
    return page


def screenshot(page: Page, folder: Path, name: str) -> None:
    """Save the page at 1280 and 360 px; at 360 px it must not scroll sideways."""
    page.screenshot(path=folder / f"{name}-{WIDE}.png", full_page=True)
    page.set_viewport_size({"width": NARROW, "height": 800})
    try:
        page.wait_for_timeout(200)  # charts redraw on resize
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= NARROW, f"{name} is {overflow} px wide at {NARROW} px"
        page.screenshot(path=folder / f"{name}-{NARROW}.png", full_page=True)
    finally:
        page.set_viewport_size({"width": WIDE, "height": 900})


def chart_data(page: Page, canvas_id: str) -> list[list[float]]:
    """What Chart.js draws on a canvas: each dataset's figures."""
    data: list[list[float]] = page.evaluate(
        "id => Chart.getChart(document.getElementById(id)).data.datasets.map(d => d.data)",
        canvas_id,
    )
    return data


def test_signing_in_shows_the_overview_charting_the_events_recorded(
    seed_server: Server, browser: BrowserContext, api: httpx.Client, player: str, shots: Path
) -> None:
    players = [f"{player}-{n}" for n in range(3)]
    for someone in players:
        coffee(api, seed_server, someone)
    coffee(api, seed_server, players[0], ago=timedelta(minutes=5))
    active = graphql(api, seed_server, ACTIVE_TODAY)["analytics"]["retention"][0]
    points = graphql(api, seed_server, POINTS)["analytics"]["points"]
    assert active["customersAtEnd"] >= len(players) and points["issued"] > 0

    page = signed_in_page(browser, seed_server)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    [daily] = chart_data(page, "active-players")
    assert len(daily) == 30 and daily[-1] == active["customersAtEnd"]
    [figures] = chart_data(page, "points")
    assert figures == [
        points["issued"],
        points["redeemed"],
        points["expired"],
        points["deducted"],
        points["outstanding"],
    ]
    expect(page.locator("#events-per-minute")).to_have_text(re.compile(r"^\d+$"))
    screenshot(page, shots, "overview")


def test_the_player_page_fills_a_bar_and_shows_a_notice_live_on_an_unlock(
    seed_server: Server, browser: BrowserContext, api: httpx.Client, player: str, shots: Path
) -> None:
    wait_for_subscribers(api, seed_server, 0)  # no page of an earlier test holds one
    page = signed_in_page(browser, seed_server, f"/console/players/{player}")
    bar = page.locator("#milestone-coffee-lover")
    expect(bar).to_have_js_property("value", 0)
    wait_for_subscribers(api, seed_server, 1)
    unlocks = coffee(api, seed_server, player)
    assert "milestone:coffee-lover:1" in [unlock["key"] for unlock in unlocks]
    notice = page.locator("#notices .unlocked").first
    expect(notice).to_contain_text("Unlocked: ", timeout=LIVE_MS)
    expect(bar).to_have_js_property("value", 1, timeout=LIVE_MS)
    expect(page.locator("#milestone-coffee-lover-text")).to_contain_text("1 / ")
    page.reload()  # what the live update showed is what the page shows
    expect(bar).to_have_js_property("value", 1)
    expect(page.locator("#history")).to_contain_text("milestone:coffee-lover:1")
    screenshot(page, shots, "player")


def test_the_player_page_says_why_a_challenge_is_not_unlocked_yet(
    seed_server: Server, browser: BrowserContext, api: httpx.Client, player: str, shots: Path
) -> None:
    coffee(api, seed_server, player)
    page = signed_in_page(browser, seed_server, f"/console/players/{player}")
    why = page.locator('[data-id="three-this-week"] .explain')
    expect(why).to_have_attribute("data-target", "challenge:three-this-week")
    expect(why.locator(".explain-text")).to_contain_text(
        "Three this week: 1 of 3 coffees this week; the week ends "
    )
    expect(why.locator(".goals")).to_have_text("coffees: 1 / 3")
    # The first coffee unlocked the milestone's first tier: it explains the next one.
    expect(page.locator('[data-id="coffee-lover"] .explain')).to_have_attribute(
        "data-target", "milestone:coffee-lover:2"
    )
    expect(page.locator('[data-id="daily-double"] .explain-text')).to_contain_text("1 of 2")
    screenshot(page, shots, "player-why-not-yet")


def wait_for_subscribers(api: httpx.Client, server: Server, count: int) -> None:
    """Until the server holds `count` live subscriptions (the page's are registered)."""

    def subscriptions() -> float | None:
        metrics = api.get(f"{server.url}/metrics").text
        found = re.search(r"^questline_active_subscriptions (\S+)$", metrics, re.MULTILINE)
        return None if found is None else float(found.group(1))

    eventually(subscriptions, lambda found: found == count, f"{count} subscriptions")


def test_the_live_feed_shows_unlocks_as_they_happen(
    seed_server: Server, browser: BrowserContext, api: httpx.Client, player: str, shots: Path
) -> None:
    wait_for_subscribers(api, seed_server, 0)  # no page of an earlier test holds one
    page = signed_in_page(browser, seed_server, "/console/feed")
    expect(page.locator("#feed-state")).to_have_text("Live.")
    wait_for_subscribers(api, seed_server, 1)
    unlocks = coffee(api, seed_server, player)
    rows = page.locator("#feed tr", has_text=player)
    expect(rows).to_have_count(len(unlocks), timeout=LIVE_MS)
    newest_first = [unlock["title"] for unlock in reversed(unlocks)]
    assert [rows.nth(n).locator("td").nth(2).inner_text() for n in range(len(unlocks))] == (
        newest_first
    )
    screenshot(page, shots, "feed")


def test_the_challenges_page_charts_instances_beside_each_definition(
    seed_server: Server, browser: BrowserContext, api: httpx.Client, player: str, shots: Path
) -> None:
    for _ in range(3):
        coffee(api, seed_server, player)
    page = signed_in_page(browser, seed_server, "/console/challenges")
    section = page.locator("section", has=page.locator("#challenge-three-this-week"))
    expect(section).to_contain_text("completion rate")
    started, completed = chart_data(page, "chart-three-this-week")
    assert started[-1] >= 1 and completed[-1] >= 1
    section.get_by_text("Definition").click()
    expect(section.locator("pre")).to_contain_text("target: 3")
    expect(section.locator(".where")).to_have_text(re.compile(r"challenges\.yaml:\d+"))
    screenshot(page, shots, "challenges")


BROKEN = """challenges:
  three-this-week:
    name: Three this week
    every: week
    metric: coffees
    target: 0
  daily-double:
    every: day
    metric: cofees
    target: 2
"""


def test_a_pasted_broken_program_shows_its_errors_by_file_and_line(
    seed_server: Server, browser: BrowserContext, shots: Path
) -> None:
    page = signed_in_page(browser, seed_server, "/console/program")
    expect(page.get_by_role("heading", name="Files in use")).to_be_visible()
    page.get_by_label("File name").fill("challenges.yaml")
    page.get_by_label("YAML").fill(BROKEN)
    page.get_by_role("button", name="Check").click()
    errors = page.get_by_role("alert")
    expect(errors).to_contain_text("challenges.yaml:6 challenges.three-this-week.target")
    expect(errors).to_contain_text("challenges.yaml:9 challenges.daily-double.metric")
    expect(errors).to_contain_text("did you mean 'coffees'")
    expect(page.locator('[id="challenges.yaml-L6"] .issue')).to_contain_text("target")
    screenshot(page, shots, "program")


def test_a_pasted_valid_program_shows_its_comparison_on_history(
    seed_server: Server, browser: BrowserContext, api: httpx.Client, player: str, shots: Path
) -> None:
    for _ in range(3):  # three this week under the program in use, not under the candidate
        coffee(api, seed_server, player)
    served = (SEED / "challenges.yaml").read_text()
    three = "    metric: coffees\n    target: 3\n"
    assert served.count(three) == 1
    candidate = served.replace(three, "    metric: coffees\n    target: 6\n")
    page = signed_in_page(browser, seed_server, "/console/program")
    page.get_by_label("File name").fill("challenges.yaml")
    page.get_by_label("YAML").fill(candidate)
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("status").filter(has_text="Valid")).to_be_visible()
    comparison = page.locator("#comparison")
    expect(comparison.get_by_role("heading", name="Comparison on history")).to_be_visible()
    row = comparison.locator('tr[data-rule="challenge:three-this-week"]')
    expect(row).to_contain_text("Three this week")
    unlocks_before, unlocks_after, players_before, players_after = (
        float(row.locator("td").nth(n).inner_text()) for n in range(4)
    )
    assert unlocks_before >= 1 and players_before >= 1
    assert unlocks_after <= unlocks_before - 1 and players_after <= players_before - 1
    assert row.locator("td").nth(4).inner_text().endswith("%")
    daily = comparison.locator('tr[data-rule="challenge:daily-double"] td')
    assert daily.nth(0).inner_text() == daily.nth(1).inner_text()  # untouched rule
    screenshot(page, shots, "program-comparison")


def test_signing_out_ends_the_session(seed_server: Server, browser: BrowserContext) -> None:
    page = signed_in_page(browser, seed_server)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(f"{seed_server.url}/console/")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()


def test_a_forged_or_expired_cookie_gets_the_sign_in_page(
    seed_server: Server, browser: BrowserContext, monkeypatch: pytest.MonkeyPatch, shots: Path
) -> None:
    settings = Settings(api_keys=(API_KEY,), jwt_secret=JWT_SECRET)
    sessions = Sessions(settings.api_keys, settings.console_session_ttl)
    forged = Sessions((SecretStr("another-key-0123456789"),), settings.console_session_ttl)
    issued = int(time.time() - settings.console_session_ttl.total_seconds() - 60)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: issued)
    expired = sessions.encode(sessions.new(signed_in=True))
    monkeypatch.undo()
    page = browser.new_page()
    for value in [forged.encode(forged.new(signed_in=True)), expired]:
        browser.clear_cookies()
        browser.add_cookies([{"name": COOKIE, "value": value, "url": seed_server.url}])
        page.goto(f"{seed_server.url}/console/")
        expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    screenshot(page, shots, "sign-in")


def test_a_form_sent_without_its_csrf_token_is_refused(
    seed_server: Server, browser: BrowserContext
) -> None:
    page = signed_in_page(browser, seed_server)
    page.evaluate(f"document.querySelector('.sign-out [name={CSRF_FIELD}]').remove()")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="The form was refused")).to_be_visible()
    page.goto(f"{seed_server.url}/console/")
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
