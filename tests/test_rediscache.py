"""The Redis cache backend reuses one redis-py client per pool, from every thread."""

import threading
import uuid

from django.core.cache import cache

from tracker.rediscache import ReusedClientRedisCacheClient


def test_every_call_goes_through_one_client_that_round_trips():
    assert isinstance(cache._cache, ReusedClientRedisCacheClient)
    first = cache._cache.get_client("a")
    assert cache._cache.get_client("b", write=True) is first
    key = f"probe-{uuid.uuid4()}"
    cache.set(key, {"body": "<p>x</p>"}, 30)
    assert cache.get_many([key, f"{key}-missing"]) == {key: {"body": "<p>x</p>"}}
    assert cache.add(f"{key}-n", 1)
    assert cache.incr(f"{key}-n") == 2
    cache.delete(key)
    assert cache.get(key) is None
    assert cache._cache.get_client() is first


def test_threads_share_the_client_without_mixing_replies():
    prefix = f"probe-{uuid.uuid4()}"
    errors = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"{prefix}-{n}-{i}", (n, i), 30)
                assert cache.get(f"{prefix}-{n}-{i}") == (n, i)
        except Exception as exc:  # reported below, a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache._cache._clients) == 1
