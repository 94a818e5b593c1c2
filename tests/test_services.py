"""The test infrastructure itself: private services really run."""

import pytest
import redis

from app import launch


def test_private_redis_server_is_not_the_shared_one(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.ping()
    assert not redis_url.startswith("redis://127.0.0.1:6379")
    client.close()


def test_a_missing_redis_server_fails_with_install_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUESTLINE_TEST_REDIS_SERVER", "/nonexistent/redis-server")
    with (
        pytest.raises(launch.ServiceUnavailable, match="apt-get install redis-server"),
        launch.redis_server(),
    ):
        pass


def test_redis_server_is_started_without_libfaketime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under libfaketime (the suite's date-proof runs) redis-server would hang at start."""
    faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    monkeypatch.setenv("LD_PRELOAD", f"/opt/libother.so:{faketime}")
    monkeypatch.setenv("FAKETIME", "@2026-12-24 23:30:00")
    monkeypatch.setenv("FAKETIME_SHARED", "/faketime_sem_1 /faketime_shm_1")
    environ = launch.real_time_environ()
    assert environ["LD_PRELOAD"] == "/opt/libother.so"
    assert not [name for name in environ if "FAKETIME" in name]
    monkeypatch.setenv("LD_PRELOAD", faketime)
    assert "LD_PRELOAD" not in launch.real_time_environ()
