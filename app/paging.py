"""Keyset paging over SQL rows: the service's lists read one row more than
asked, to know whether a next page exists, and take a row id as the cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from engine.errors import CursorError
from schema.service import Page

T = TypeVar("T")


def row_cursor(after: str | None, what: str) -> int | None:
    """The row id an `after` cursor holds; CursorError names the list when it holds none."""
    if after is None:
        return None
    if not after.isdigit():
        raise CursorError(f"{after!r} is not a {what} cursor; pass an edge's `cursor`")
    return int(after)


def page_of(found: Sequence[tuple[int, T]], first: int) -> Page[T]:
    """The first `first` of `found` (row id, item), read with `first + 1`, as a page."""
    return Page(
        items=[(str(row), item) for row, item in found[:first]],
        has_next_page=len(found) > first,
    )
