"""Login throttling: a user name and address pair is locked out after AXES_FAILURE_LIMIT
wrong passwords, with a page saying for how long; other pairs, tokens and proxies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.backends import ModelBackend
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.authtoken.models import Token

from tracker.lockout import client_ip

pytestmark = pytest.mark.django_db
PASSWORD = "pw-oncall-123"
S = timedelta(seconds=1)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("oncall", password=PASSWORD)


@pytest.fixture
def checked(monkeypatch):
    """The passwords the database backend checked."""
    seen = []
    authenticate = ModelBackend.authenticate

    def counting(self, request, username=None, password=None, **kwargs):
        seen.append(password)
        return authenticate(self, request, username, password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", counting)
    return seen


def _log_in(client, password, username="oncall", url=None, **extra):
    return client.post(
        url or reverse("login"), {"username": username, "password": password}, **extra
    )


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_locked_out_after_five_failures_with_the_time_left(client, user, checked):
    for n in range(4):
        response = _log_in(client, f"wrong-{n}")
        assert response.status_code == 200 and "did not match" in response.content.decode()
    locked = _log_in(client, "wrong-4")  # the fifth
    page = locked.content.decode()
    assert locked.status_code == 429 and 14 * 60 < int(locked["Retry-After"]) <= 15 * 60
    assert "Log-in locked" in page
    assert "5 wrong passwords in a row for <strong>oncall</strong> from your address" in page
    ends = locked.wsgi_request.axes_attempt_time + 15 * 60 * S
    shown = (ends + 60 * S).replace(second=0, microsecond=0)  # rounded up to the minute
    assert f"Try again in 15 minutes, from {shown:%H:%M} UTC" in page
    for n in range(10):  # as the 15 tries in 10 s: the rest are not even checked
        assert _log_in(client, f"again-{n}").status_code == 429
    assert _log_in(client, PASSWORD).status_code == 429 and not _logged_in(client)
    assert len(checked) == 5
    # The admin's log-in form is the same log-in.
    assert _log_in(client, PASSWORD, url=reverse("admin:login")).status_code == 429

    # Tries during the lockout did not extend it; once it is over the password works.
    AccessAttempt.objects.update(attempt_time=locked.wsgi_request.axes_attempt_time - 10 * 60 * S)
    later = _log_in(client, PASSWORD)
    assert later.status_code == 429 and "Try again in 5 minutes" in later.content.decode()
    assert 4 * 60 < int(later["Retry-After"]) <= 5 * 60
    AccessAttempt.objects.update(attempt_time=locked.wsgi_request.axes_attempt_time - 16 * 60 * S)
    assert _log_in(client, PASSWORD).status_code == 302 and _logged_in(client)


def test_the_lockout_is_per_user_name_and_address(client, user, django_user_model):
    django_user_model.objects.create_user("other", password=PASSWORD)
    for n in range(5):
        _log_in(client, f"wrong-{n}")
    assert _log_in(client, PASSWORD).status_code == 429
    # The same user from another address, and another user from this address, log in.
    elsewhere = _log_in(client, PASSWORD, REMOTE_ADDR="198.51.100.7")
    assert elsewhere.status_code == 302
    client.logout()
    assert _log_in(client, PASSWORD, username="other").status_code == 302


def test_a_success_forgets_the_failures(client, user):
    for n in range(4):
        _log_in(client, f"wrong-{n}")
    assert _log_in(client, PASSWORD).status_code == 302
    client.logout()
    assert _log_in(client, "typo").status_code == 200  # a first failure again, not a fifth


def test_limit_and_cool_off_are_settings(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    assert _log_in(client, "wrong").status_code == 200
    locked = _log_in(client, "wrong again")
    assert locked.status_code == 429
    assert "2 wrong passwords" in locked.content.decode()
    assert "Try again in 1 minute, from" in locked.content.decode()


def test_api_tokens_work_for_a_locked_out_user(client, user):
    for n in range(5):
        _log_in(client, f"wrong-{n}")
    token = Token.objects.create(user=user).key
    response = client.get("/api/upstreams/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200


def test_behind_a_proxy_clients_are_told_apart_by_the_header_it_sets(client, user, settings):
    settings.CLIENT_IP_HEADER = "HTTP_X_FORWARDED_FOR"
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for n in range(5):  # a guesser that also sends an X-Forwarded-For of its own
        _log_in(client, f"wrong-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.9", **proxy)
    assert AccessAttempt.objects.get().ip_address == "203.0.113.9"
    guesser = _log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    assert guesser.status_code == 429
    someone = _log_in(client, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    assert someone.status_code == 302


@pytest.mark.parametrize(
    ("header", "count", "forwarded", "expected"),
    [
        ("REMOTE_ADDR", 1, "203.0.113.9", "10.0.0.1"),  # the default believes no header
        ("HTTP_X_FORWARDED_FOR", 1, "192.0.2.1, 203.0.113.9", "203.0.113.9"),
        ("HTTP_X_FORWARDED_FOR", 2, "192.0.2.1, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ("HTTP_X_FORWARDED_FOR", 3, "203.0.113.9", "203.0.113.9"),  # fewer hops than proxies
        ("HTTP_X_FORWARDED_FOR", 1, " 2001:db8::1 ", "2001:db8::1"),
        ("HTTP_X_FORWARDED_FOR", 1, "", "10.0.0.1"),  # not through the proxy
        ("HTTP_X_FORWARDED_FOR", 1, "192.0.2.1, not-an-address", "10.0.0.1"),
    ],
)
def test_client_ip(settings, header, count, forwarded, expected):
    settings.CLIENT_IP_HEADER, settings.CLIENT_IP_PROXY_COUNT = header, count
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
