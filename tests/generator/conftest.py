import pytest

from tracker.generator import build_world, standard_world


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The standard world (an upstream, three git forks, a patch-series fork) and its truth."""
    out = tmp_path_factory.mktemp("world") / "w"
    return build_world(standard_world(seed=7), out)
