"""Bad requests against a real server in production mode: each gets a 4xx (or a
typed error) with `extensions.code`, over HTTP and over WebSocket, the
kept-alive connection stays usable, and the log holds no traceback."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from websockets.asyncio.client import connect

from app.auth import issue_player_token
from app.launch import Server, running_servers
from app.settings import Settings
from tests.support.graphql_client import API_KEY, JWT_SECRET, codes, gql, production_env
from tests.support.programs import REPO

PROTOCOL: Any = "graphql-transport-ws"
TOKENS = Settings(jwt_secret=JWT_SECRET)
RECORD = """mutation($event: EventInput!) { recordEvent(event: $event) { eventId } }"""
MUTATION = json.dumps({"query": RECORD, "variables": {"event": {}}})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("requests")
    with running_servers([production_env(folder)], folder) as (server,):
        yield server


@pytest.fixture
def connection(server: Server) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    yield connection
    connection.close()


def post(
    connection: http.client.HTTPConnection, body: bytes, token: str | None = API_KEY
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    connection.request("POST", "/graphql", body=body, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def code_of(body: dict[str, Any]) -> str:
    [error] = body["errors"]
    assert error["message"]
    assert error["extensions"]["retryable"] is False
    code: str = error["extensions"]["code"]
    return code


def event_variables(**fields: Any) -> dict[str, Any]:
    event = {"id": "e1", "playerId": "ada", "type": "purchase", **fields}
    return {"query": RECORD, "variables": {"event": event}}


MALFORMED = [
    pytest.param(b'"hello"', "a GraphQL request is a JSON object", id="a JSON string"),
    pytest.param(b"[1, 2]", "Batching is not enabled", id="a JSON list"),
    pytest.param(b"{", "Unable to parse request body as JSON", id="not JSON"),
    pytest.param(b'{"query": "\xff\xfe"}', "not valid UTF-8", id="invalid UTF-8"),
    pytest.param(b"[" * 20_000 + b"]" * 20_000, "nested more than 64", id="20,000 levels deep"),
    pytest.param(
        json.dumps({"query": RECORD, "variables": {"event": {"p": [[[[[[[[0]]]]]]]] * 9}}})
        .replace("0", "[" * 60 + "]" * 60)
        .encode(),
        "nested more than 64",
        id="variables nested too deep",
    ),
    pytest.param(
        json.dumps(event_variables(value=1)).replace("1}", "NaN}").encode(),
        "NaN is not a JSON number",
        id="NaN",
    ),
    pytest.param(
        json.dumps(event_variables(value=1)).replace("1}", "-Infinity}").encode(),
        "-Infinity is not a JSON number",
        id="-Infinity",
    ),
    pytest.param(b'{"query": 5}', "`query` must be a string", id="a query that is no string"),
    pytest.param(b'{"query": "{ program { name } }", "variables": []}', "`variables`", id="vars"),
]


@pytest.mark.parametrize(("body", "message"), MALFORMED)
def test_a_malformed_body_is_a_400_with_a_code_and_the_connection_stays_usable(
    connection: http.client.HTTPConnection, body: bytes, message: str
) -> None:
    status, answer = post(connection, body)
    assert status == 400 and code_of(answer) == "MALFORMED_REQUEST"
    assert message in answer["errors"][0]["message"]
    socket = connection.sock
    status, answer = post(connection, json.dumps({"query": "{ program { name } }"}).encode())
    assert status == 200 and answer["data"]["program"]["name"]
    assert connection.sock is socket  # the same kept-alive connection answered


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        pytest.param(event_variables(occurredAt="now"), "BAD_REQUEST", id="occurredAt now"),
        pytest.param(event_variables(value="abc"), "BAD_REQUEST", id="value abc"),
        pytest.param(event_variables(properties=[1]), "BAD_REQUEST", id="properties a list"),
        pytest.param(event_variables(id=""), "BAD_REQUEST", id="empty id"),
        pytest.param({"query": "{ program { name }"}, "INVALID_QUERY", id="syntax"),
        pytest.param({"query": "{ nope }"}, "INVALID_QUERY", id="unknown field"),
        pytest.param(
            {"query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"},
            "INVALID_QUERY",
            id="fragment cycle",
        ),
        pytest.param(
            {"query": "{ " + "program { name } " * 700 + "}"}, "INVALID_QUERY", id="tokens"
        ),
    ],
)
def test_bad_variables_and_documents_get_typed_errors_not_internal(
    connection: http.client.HTTPConnection, variables: dict[str, Any], code: str
) -> None:
    status, answer = post(connection, json.dumps(variables).encode())
    assert code_of(answer) == code
    assert status in (200, 400)


def test_a_refused_request_is_a_400_only_when_nothing_was_executed(
    connection: http.client.HTTPConnection,
) -> None:
    status, _ = post(connection, json.dumps(event_variables(occurredAt="now")).encode())
    assert status == 400  # the variable did not coerce: nothing ran
    status, answer = post(connection, json.dumps(event_variables(id="")).encode())
    assert status == 200 and answer["errors"][0]["path"] == ["recordEvent"]  # a resolver refused


def test_introspection_needs_an_api_key_in_production(
    connection: http.client.HTTPConnection,
) -> None:
    query = json.dumps({"query": "{ __schema { queryType { name } } }"}).encode()
    assert code_of(post(connection, query, token=None)[1]) == "FORBIDDEN"
    player = issue_player_token(TOKENS, "ada", 60)
    assert code_of(post(connection, query, token=player)[1]) == "FORBIDDEN"
    hidden = json.dumps(
        {"query": '{ ...F } fragment F on Query { __type(name: "Query") { name } }'}
    )
    assert code_of(post(connection, hidden.encode(), token=None)[1]) == "FORBIDDEN"
    assert post(connection, query)[1]["data"]["__schema"]["queryType"]["name"] == "Query"
    typename = json.dumps({"query": "{ __typename }"}).encode()
    assert post(connection, typename, token=None)[1]["data"] == {"__typename": "Query"}


def test_the_depth_limit_counts_introspection_fields(
    connection: http.client.HTTPConnection,
) -> None:
    deep = "{ __schema { types { fields { type " + "{ ofType " * 12 + "{ name }" + " }" * 12
    answer = post(connection, json.dumps({"query": deep + " } } } }"}).encode())[1]
    assert code_of(answer) == "INVALID_QUERY"
    assert "at most 15 are allowed" in answer["errors"][0]["message"]


async def test_queries_and_mutations_over_websocket_carry_codes(server: Server) -> None:
    token = issue_player_token(TOKENS, "bob", 60)
    async with connect(server.graphql_ws_url, subprotocols=[PROTOCOL]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        operations = {
            "1": ({"query": '{ player(id: "ada") { id } }'}, "FORBIDDEN"),
            "2": (event_variables(), "FORBIDDEN"),
            "3": ({"query": "{ nope }"}, "INVALID_QUERY"),
            "4": (event_variables(occurredAt="now"), "BAD_REQUEST"),
        }
        for operation_id, (payload, _) in operations.items():
            message = {"id": operation_id, "type": "subscribe", "payload": payload}
            await ws.send(json.dumps(message))
            answer = json.loads(await ws.recv())
            while answer["type"] == "complete":  # the end of the operation before
                answer = json.loads(await ws.recv())
            assert answer["id"] == operation_id
            errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
            assert [e["extensions"]["code"] for e in errors] == [operations[operation_id][1]]


def test_the_server_log_holds_no_traceback_after_all_these_refusals(server: Server) -> None:
    assert "Traceback" not in server.log()


def test_expected_refusals_are_one_info_line_and_a_bug_has_its_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="questline")
    overdraw = 'mutation { adjustPoints(playerId: "ada", delta: -5, reason: "oops") { delta } }'
    for _ in range(5):
        assert codes(gql(client, overdraw)) == ["INSUFFICIENT_POINTS"]
    refusals = [record for record in caplog.records if record.name == "questline.graphql"]
    assert len(refusals) == 5
    assert all(record.levelno == logging.INFO and record.exc_info is None for record in refusals)
    assert "INSUFFICIENT_POINTS" in refusals[0].getMessage()
    assert "\n" not in refusals[0].getMessage()


def test_the_readme_lists_every_code_the_server_can_send() -> None:
    """Checked against the code, so a new error cannot go undocumented."""
    from schema.errors import all_codes

    readme = (REPO / "README.md").read_text()
    table = readme.split("Errors carry `extensions.code`", 1)[1].split("\n\n", 2)[1]
    documented: dict[str, bool] = {}
    for row in table.splitlines()[2:]:
        codes, _, retryable = (cell.strip() for cell in row.strip("|").split("|"))
        for code in codes.replace("`", "").split(","):
            documented[code.strip()] = retryable == "yes"
    assert documented == all_codes()
