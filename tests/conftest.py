import pytest


@pytest.fixture(autouse=True)
def _no_page_cache(settings):
    """Pages are built on every request in tests (query counts, fresh data); the page cache
    has its own tests, which turn it on."""
    settings.PAGE_CACHE_SECONDS = 0


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    client.force_login(user)
    return client
