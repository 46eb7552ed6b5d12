"""A generated world registered, synced and linked for the fork-security tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tracker.demo import load_recorded_upstream_data
from tracker.ingest.bulletins import link_fixes
from tracker.models import ForkKind
from tracker.registry import register_fork, register_upstream
from tracker.sync import sync_fork, sync_upstream

FORKS = ("acme", "mergeco", "lumen")


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def setup_world(world, settings, tmp_path, slugs=FORKS):
    """Register the world's upstream and forks, sync upstream, ingest its recorded data and
    link fixes, then sync each fork (which computes fork security)."""
    settings.GIT_LOCAL_ROOTS = [Path(world["path"])]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    now = when(world["now"])
    upstream = register_upstream("chromium", "Chromium", world["upstream"]["path"])
    sync_upstream(upstream, now=now)
    assert load_recorded_upstream_data(upstream, world["path"], now) == 0
    link_fixes(upstream)
    forks = {}
    for f in world["forks"]:
        if f["slug"] not in slugs:
            continue
        series = f["kind"] == "patch_series"
        forks[f["slug"]] = register_fork(
            upstream,
            f["slug"],
            f["name"],
            f["path"],
            kind=ForkKind.PATCH_SERIES if series else ForkKind.GIT,
            branches=[(b["name"], b["upstream_ref"]) for b in f.get("branches", [])]
            or [("main", "refs/heads/main")],
            release_tag_pattern=f["release_tag_pattern"],
            pinned_version_file=f.get("version_file", ""),
            patches_dir=f.get("patches_dir", ""),
        )
        sync_fork(forks[f["slug"]], now=now, fetch_upstream_first=False)
    return upstream, forks, now


def fork_truth(world, slug):
    return next(f for f in world["forks"] if f["slug"] == slug)
