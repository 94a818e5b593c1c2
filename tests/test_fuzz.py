"""Generated garbage at a real production server (hypothesis): raw bodies,
events and variables. Whatever arrives, the answer is never a 5xx, every
error carries `extensions.code`, the log holds no traceback, and /healthz
still answers afterwards. Bounded: a fixed number of examples per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.launch import Server, running_servers
from tests.support.graphql_client import API_KEY, production_env

#: Examples per test: enough to find the classic crashes, a few seconds each.
EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder left behind
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RECORD = "mutation($event: EventInput!) { recordEvent(event: $event) { eventId warnings } }"
PLAYER = """query($id: ID!, $first: Int, $after: String) {
    player(id: $id) {
        id points { balance } ledger(first: $first, after: $after) { edges { cursor } }
    }
}"""
NOW = datetime.now(UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
times = st.one_of(
    st.datetimes(
        min_value=(NOW - timedelta(days=30)).replace(tzinfo=None),
        max_value=(NOW + timedelta(days=1)).replace(tzinfo=None),
        timezones=st.sampled_from([UTC, None]),
    ).map(datetime.isoformat),
    st.text(max_size=30),
    json_values,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=250) | json_values,
        "playerId": st.text(max_size=250) | json_values,
        "type": st.sampled_from(["purchase", "review", "purchse"]) | st.text(max_size=20),
        "value": st.floats() | st.integers() | json_values,
        "occurredAt": times,
        "properties": json_values,
        "extra": json_values,
    },
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz")
    with running_servers([production_env(folder)], folder) as (server,):
        yield server
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert "Traceback" not in server.log()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        yield client


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The answer, checked: no 5xx, and a GraphQL body whose errors all have a code."""
    assert response.status_code < 500, response.text
    body: dict[str, Any] = response.json()
    for error in body.get("errors") or []:
        assert isinstance(error["extensions"]["code"], str), error
        assert isinstance(error["extensions"]["retryable"], bool), error
    assert body.get("errors") or body.get("data") is not None, body
    return body


def as_json(value: Any) -> bytes:
    """JSON as Python writes it: NaN and Infinity included, which the server refuses."""
    return json.dumps(value).encode()


@FUZZ
@given(body=st.binary(max_size=3000) | json_values.map(as_json))
def test_raw_bodies(http: httpx.Client, body: bytes) -> None:
    answer_of(http.post("/graphql", content=body))


@FUZZ
@given(event=events | json_values)
def test_events(http: httpx.Client, event: Any) -> None:
    body = answer_of(
        http.post("/graphql", content=as_json({"query": RECORD, "variables": {"event": event}}))
    )
    if not body.get("errors"):
        assert body["data"]["recordEvent"]["eventId"] == event["id"]


@FUZZ
@given(variables=st.dictionaries(st.sampled_from(["id", "first", "after", "x"]), json_values))
def test_variables(http: httpx.Client, variables: dict[str, Any]) -> None:
    answer_of(http.post("/graphql", content=as_json({"query": PLAYER, "variables": variables})))


@FUZZ
@given(
    query=st.text(max_size=400)
    | st.sampled_from(["{", "{ __schema { types { name } } }", "{ program { name } }" * 3])
)
def test_documents(http: httpx.Client, query: str) -> None:
    answer_of(http.post("/graphql", content=as_json({"query": query})))
