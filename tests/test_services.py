"""The test infrastructure itself: private services really run."""

import pytest
import redis

from tests import services


def test_private_redis_server_is_not_the_shared_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    assert not redis_url.startswith("redis://127.0.0.1:6379")
    client.close()


def test_a_missing_redis_server_fails_with_install_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUESTLINE_TEST_REDIS_SERVER", "/nonexistent/redis-server")
    with (
        pytest.raises(services.ServiceUnavailable, match="apt-get install redis-server"),
        services.redis_server(),
    ):
        pass
