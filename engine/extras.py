"""Optional dependencies: installed with an extra, imported only when a URL picks them.

The embedded default (SQLite for the store and the history database) needs
neither redis-py nor psycopg, so `pip install questline` leaves them out and
`questline[redis]` / `questline[postgres]` add them. Picking their backend
without them installed is a configuration mistake, said as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from engine.errors import ConfigurationError


@contextmanager
def extra(name: str, modules: tuple[str, ...], needed_by: str) -> Iterator[None]:
    """Turn the import of a missing module among `modules` into a
    ConfigurationError that names the extra installing it; `needed_by` says
    what wanted it (with no password: see `engine.urls.redacted`)."""
    try:
        yield
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in modules:
            raise
        raise ConfigurationError(
            f"{needed_by} needs the {name} extra, which is not installed (no module named "
            f"{missing!r}): pip install 'questline[{name}]'"
        ) from None
