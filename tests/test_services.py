"""The test infrastructure itself: private services really run."""

import redis


def test_private_redis_server_is_not_the_shared_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    assert not redis_url.startswith("redis://127.0.0.1:6379")
    client.close()
