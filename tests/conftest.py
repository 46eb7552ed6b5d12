import pytest

from tracker.generator import build_world, standard_world
from tracker.generator.spec import shape_forks, standard_forks


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


@pytest.fixture(scope="session")
def shapes_world(tmp_path_factory):
    """A world with git forks of every history shape (`standard_forks` and `shape_forks`) and
    its ground truth; no patch-series fork."""
    git_forks, _series = standard_forks()
    spec = standard_world(seed=3, git_forks=git_forks + shape_forks(), patch_series_forks=())
    return build_world(spec, tmp_path_factory.mktemp("shapes") / "w")
