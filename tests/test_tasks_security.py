"""update_fork_security_task: loads the fork by id and brings its fix statuses up to date."""

from __future__ import annotations

import pytest

from tests.forksecurity_world import setup_world
from tracker.generator import build_world, standard_world
from tracker.models import FixStatus, ForkRelease, Vulnerability
from tracker.tasks import update_fork_security_task


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        standard_world(seed=41, main_commits=300, milestones=4, vulnerabilities=6),
        tmp_path_factory.mktemp("security-task") / "world",
    )


@pytest.mark.django_db
def test_the_task_recomputes_only_what_changed(world, settings, tmp_path):
    upstream, forks, _now = setup_world(world, settings, tmp_path, slugs=("acme",))
    acme = forks["acme"]
    assert FixStatus.objects.filter(fork=acme).exists()
    ForkRelease.objects.filter(fork=acme).order_by("tagged_at").last().delete()
    vulns = Vulnerability.objects.filter(upstream=upstream).count()
    result = update_fork_security_task.apply(args=[acme.pk], throw=True).get()
    assert result == f"1 new releases, 1 bases, {vulns} pairs evaluated, {vulns} rows written"
    result = update_fork_security_task.apply(args=[acme.pk], throw=True).get()
    assert "0 pairs evaluated, 0 rows written" in result
