"""GraphiQL at /graphql works on a closed network: its files come from the package."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from playwright.sync_api import BrowserContext, Request, expect
from starlette.testclient import TestClient

from app.graphiql import STATIC_PATH
from app.launch import Server
from tests.support.graphql_client import API_KEY


def test_the_ide_page_names_no_other_host(client: TestClient) -> None:
    response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "https://" not in response.text and "http://" not in response.text
    assert f'src="{STATIC_PATH}/graphiql@3.8.3/graphiql.min.js"' in response.text
    assert "script-src 'self';" in response.headers["content-security-policy"]


def test_the_ide_files_are_served_with_their_licences(client: TestClient) -> None:
    for path in [
        "react@18.2.0/react.production.min.js",
        "react@18.2.0/LICENSE",
        "react-dom@18.2.0/react-dom.production.min.js",
        "graphiql@3.8.3/graphiql.min.js",
        "graphiql@3.8.3/graphiql.min.css",
        "graphiql@3.8.3/LICENSE",
        "plugin-explorer@1.0.2/index.umd.js",
        "plugin-explorer@1.0.2/LICENSE",
        "graphiql.js",
    ]:
        assert client.get(f"{STATIC_PATH}/{path}").status_code == 200, path


def test_the_ide_loads_runs_a_query_with_the_api_key_and_shows_the_answer(
    seed_server: Server, browser: BrowserContext
) -> None:
    elsewhere: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith(seed_server.url):
            elsewhere.append(request.url)

    page = browser.new_page()
    page.on("request", note)
    query = "{ program { name challenges { id } } }"
    headers = json.dumps({"Authorization": f"Bearer {API_KEY}"})
    page.goto(f"{seed_server.url}/graphql?{urlencode({'q': query, 'headers': headers})}")
    run = page.locator(".graphiql-execute-button")
    expect(run).to_be_visible()
    run.click()
    answer = page.locator(".result-window")
    expect(answer).to_contain_text('"name": "Bean Counter Club"')
    expect(answer).to_contain_text('"id": "three-this-week"')
    assert elsewhere == []
