from __future__ import annotations

import pytest

from engine.urls import redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://questline:hunter2@db:5432/questline",
            "postgresql+psycopg://questline:***@db:5432/questline",
        ),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:p%40ss%2Fword@[::1]:6380/2", "rediss://app:***@[::1]:6380/2"),
        ("redis://app@cache:6379/0", "redis://app@cache:6379/0"),
        ("sqlite:///./questline.db", "sqlite:///./questline.db"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
        ("redis://app:hunter2@[::1:6379/0", "redis://***@[::1:6379/0"),
    ],
    ids=[
        "postgresql",
        "no user",
        "escaped, IPv6",
        "no password",
        "a file",
        "a socket",
        "malformed",
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
