import pytest

from repo2docker_service.ratelimit import RateLimited, RateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_limit_per_user_with_retry_after():
    clock = Clock()
    rl = RateLimiter(limit=3, period=60, clock=clock)
    for _ in range(3):
        rl.check("alice")
    with pytest.raises(RateLimited) as exc:
        rl.check("alice")
    assert exc.value.status_code == 429
    assert exc.value.headers["Retry-After"] == "60"
    assert "at most 3 per 60 s" in exc.value.message
    rl.check("bob")  # other users are not affected
    clock.now += 30
    with pytest.raises(RateLimited) as exc:
        rl.check("alice")
    assert exc.value.headers["Retry-After"] == "30"
    clock.now += 30.5
    rl.check("alice")  # the window moved on


def test_refused_requests_do_not_count():
    clock = Clock()
    rl = RateLimiter(limit=1, period=10, clock=clock)
    rl.check("u")
    for _ in range(5):
        with pytest.raises(RateLimited):
            rl.check("u")
    clock.now += 10.1
    rl.check("u")


def test_zero_disables():
    rl = RateLimiter(limit=0, period=1)
    for _ in range(1000):
        rl.check("u")
