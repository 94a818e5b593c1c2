"""Connection URLs as they may appear in messages and logs.

One helper for every backend (the Redis store, the history database, the
CLI), written with the standard library so the engine needs no ORM for it.
The password becomes `***`, in the form SQLAlchemy renders with
`hide_password=True`: `postgresql+psycopg://questline:***@db:5432/questline`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted(url: str) -> str:
    """`url` with its password, if it has one, replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # such as an unclosed IPv6 bracket: hide all that precedes the host
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
    if parts.password is None:
        return url
    credentials, _, host = parts.netloc.rpartition("@")
    user = credentials.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
