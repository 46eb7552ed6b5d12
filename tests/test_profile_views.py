"""The profile page: the user's email address and which forks' alerts they get, and how."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tracker.alerts.outbox import recipient_modes
from tracker.models import AlertSubscription, Fork, Upstream

pytestmark = pytest.mark.django_db


def _forks(*slugs: str, prefix: str = "") -> list[Fork]:
    upstream, _ = Upstream.objects.get_or_create(slug="chromium", name="Chromium", git_url="/x")
    return [
        Fork.objects.create(upstream=upstream, slug=s, name=f"{prefix}{s.title()}", git_url="/y")
        for s in slugs
    ]


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("eng", password="pw-eng-123")


@pytest.fixture
def eng(client, user):
    """A logged-in user who is not staff, with no email address yet."""
    client.force_login(user)
    return client


def _post(client, email="", every="none", **forks):
    data = {"email": email, "every": every}
    data |= {f"fork-{slug}": choice for slug, choice in forks.items()}
    return client.post(reverse("profile"), data, follow=True)


def _mine(user) -> dict:
    return {
        (s.fork.slug if s.fork else None): s.mode
        for s in AlertSubscription.objects.filter(user=user).select_related("fork")
    }


def test_profile_needs_a_login(client):
    for response in (client.get(reverse("profile")), client.post(reverse("profile"))):
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_header_links_to_the_profile(eng):
    page = eng.get(reverse("overview")).content.decode()
    assert f'href="{reverse("profile")}"' in page


def test_a_user_sets_their_email_address(eng, user):
    page = eng.get(reverse("profile")).content.decode()
    assert "no email address yet" in page and 'name="csrfmiddlewaretoken"' in page
    response = _post(eng, email="Eng@Corp.EXAMPLE")
    assert response.redirect_chain == [(reverse("profile"), 302)]
    user.refresh_from_db()
    assert user.email == "Eng@corp.example"  # the domain part is case-insensitive
    page = response.content.decode()
    assert "Saved. Alert mail goes to Eng@corp.example." in page
    assert 'value="Eng@corp.example"' in page and "no email address yet" not in page


def test_an_invalid_email_is_refused_with_a_message_and_nothing_is_saved(eng, user):
    _forks("acme")
    user.email = "eng@corp.example"
    user.save()
    response = eng.post(
        reverse("profile"), {"email": "not an address", "every": "digest", "fork-acme": "none"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was saved" in page and "Enter a valid email address." in page
    assert 'value="not an address"' in page  # shown back to be corrected
    user.refresh_from_db()
    assert user.email == "eng@corp.example" and _mine(user) == {}


def test_subscriptions_per_fork_are_saved_and_shown(eng, user, django_assert_max_num_queries):
    _forks("acme", "lumen", "nova")
    response = _post(
        eng, email="eng@corp.example", every="digest", acme="immediate", lumen="none", nova=""
    )
    assert "Saved." in response.content.decode()
    assert _mine(user) == {None: "digest", "acme": "immediate", "lumen": "none"}

    page = eng.get(reverse("profile")).content.decode()
    for field, chosen in [
        ("every", "digest"),
        ("fork-acme", "immediate"),
        ("fork-lumen", "none"),
        ("fork-nova", ""),
    ]:
        select = page[page.index(f'name="{field}"') :]
        select = select[: select.index("</select>")]
        assert f'<option value="{chosen}" selected>' in select, field

    # What was saved is what the outbox delivers.
    acme, lumen, nova = (Fork.objects.get(slug=s).pk for s in ("acme", "lumen", "nova"))
    assert recipient_modes(acme)[0] == {"eng@corp.example": "immediate"}
    assert recipient_modes(lumen)[0] == {}
    assert recipient_modes(nova)[0] == {"eng@corp.example": "digest"}

    # Changed again: rows follow, and a fork set back to "as every fork" loses its own.
    _post(eng, email="eng@corp.example", every="none", acme="digest", lumen="", nova="immediate")
    assert _mine(user) == {"acme": "digest", "nova": "immediate"}

    # The page and the save take a fixed number of queries, however many forks.
    with django_assert_max_num_queries(12) as few:
        eng.get(reverse("profile"))
    _forks(*(f"f{i}" for i in range(20)))
    with django_assert_max_num_queries(12) as many:
        eng.get(reverse("profile"))
    assert len(many.captured_queries) == len(few.captured_queries)
    data = {f"f{i}": "digest" for i in range(20)}
    with django_assert_max_num_queries(20):
        _post(eng, email="eng@corp.example", every="none", acme="", **data)
    assert len(_mine(user)) == 21


def test_forks_left_out_of_the_form_keep_their_rows(eng, user):
    _acme, lumen = _forks("acme", "lumen")
    AlertSubscription.objects.create(user=user, fork=lumen, mode="digest")
    _post(eng, email="eng@corp.example", every="none", acme="immediate")  # lumen not sent
    assert _mine(user) == {"acme": "immediate", "lumen": "digest"}


def test_a_bad_choice_is_refused(eng, user):
    _forks("acme")
    response = eng.post(reverse("profile"), {"email": "", "every": "hourly", "fork-acme": "x"})
    assert response.status_code == 400 and _mine(user) == {}


def test_owners_are_told_they_get_their_forks_alerts_anyway(eng, user):
    acme, _lumen = _forks("acme", "lumen")
    Fork.objects.filter(pk=acme.pk).update(owner_emails="rel@acme.example, ENG@corp.example")
    user.email = "eng@corp.example"
    user.save()
    page = eng.get(reverse("profile")).content.decode()
    assert page.count("you own it") == 1


def test_fork_names_are_escaped(eng):
    _forks("acme", prefix="<b>")
    page = eng.get(reverse("profile")).content.decode()
    assert "&lt;b&gt;Acme" in page and "<b>Acme" not in page


def test_saving_without_an_address_warns_that_no_mail_is_sent(eng, user):
    _forks("acme")
    page = _post(eng, email="", every="immediate").content.decode()
    assert "no email address: no alert mail" in page
    assert recipient_modes(Fork.objects.get(slug="acme").pk)[0] == {}


def test_the_alerts_page_links_to_the_profile_when_there_is_no_address(eng, user):
    page = eng.get(reverse("alerts")).content.decode()
    assert f'<a href="{reverse("profile")}">no address on your account</a>' in page
    user.email = "eng@corp.example"
    user.save()
    page = eng.get(reverse("alerts")).content.decode()
    assert "Email me (eng@corp.example)" in page
    assert f'<a href="{reverse("profile")}">your profile</a>' in page
