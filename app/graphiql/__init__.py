"""GraphiQL, the in-browser IDE of `/graphql` in development, served from this package.

Strawberry's own page loads React, GraphiQL and its explorer plugin from a
public CDN at run time, so on a closed network (and in our browser tests) it
is a blank page. This page is the same IDE with the same pinned versions,
whose files ship in `static/` with their licences (each file is byte for
byte the npm release, and the page keeps Strawberry's subresource-integrity
hashes to prove it). Our script replaces Strawberry's inline one so the page
can carry a Content-Security-Policy without `unsafe-inline` for scripts;
GraphiQL's editors inject style elements, so styles keep it.
"""

from __future__ import annotations

from importlib import resources

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

#: Where the IDE's files are served.
STATIC_PATH = "/graphiql/static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def graphiql_page() -> HTMLResponse:
    """The IDE's HTML page."""
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    return HTMLResponse(
        page.replace("{{ static }}", STATIC_PATH),
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


def graphiql_static() -> StaticFiles:
    """The IDE's scripts and styles, to mount at `STATIC_PATH`."""
    return StaticFiles(packages=[(__package__, "static")])
