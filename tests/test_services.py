"""The suite runs in the production mode: real PostgreSQL, real Redis, a real broker."""

import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from dashboard.celery import app


@pytest.mark.django_db
def test_database_is_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")


def test_cache_is_redis_and_round_trips():
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    key = f"probe-{uuid.uuid4()}"
    cache.set(key, "value", 30)
    assert cache.get(key) == "value"
    client = cache._cache.get_client(key)  # the underlying redis-py client
    assert client.info("server")["redis_version"]


def test_celery_uses_the_redis_broker_and_is_not_eager():
    assert app.conf.broker_url.startswith("redis://")
    assert app.conf.task_always_eager is False
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.transport.driver_type == "redis"
