"""What a generated world contains: an upstream, its security fixes, and forks of every kind.

A spec is plain data and fully determines the world together with its seed: the same spec
always writes the same repositories, commit ids included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

DAY = 86400


@dataclass(frozen=True)
class GitForkSpec:
    """A git fork: branches carrying upstream history plus the fork's own commits.

    `style` says how the fork follows upstream: "rebase" (patches replayed on a new base),
    "merge" (upstream merged into the fork branch), or "merging-rebase" (rebased, with each
    rebase tied into history by a marker merge, so old copies of patches stay reachable).

    `topics` > 0: the patches come in on topic branches of that many patches, all started at
    the same commit and merged into the branch one after the other with ``--no-ff`` (both
    parents fork commits; messages alternate between "Merge pull request #N" and "Merge
    branch"); a merging-rebase replays them that way on top of each marker, as ``git rebase
    -r`` does. 0 writes them straight on the branch.

    `sync_merge` (style "merge") says how upstream comes in: "direct" (``git merge upstream``
    on the branch: first parent the fork, second upstream), "pull-request" (a sync branch off
    the fork tip merges upstream as its second parent and is merged into the branch with
    ``--no-ff``, as getsentry's breakpad and mini_chromium forks do), or "upstream-first" (the
    fork merged into upstream: first parent upstream, second the fork tip, the tree taking the
    fork's changes).
    """

    slug: str
    name: str
    style: str = "rebase"
    patches: int = 5
    topics: int = 0
    sync_merge: str = "direct"
    # The fork's main branch follows upstream main: synced this often, the last sync this long
    # before now (which drives its rebase lag).
    sync_every_days: int = 14
    last_sync_days_ago: int = 9
    # Release branches follow upstream release branches; offsets count back from the newest
    # branched milestone (-1 = newest, normally Beta; -2 = normally Stable).
    release_milestones: tuple[int, ...] = (-2,)
    release_sync_every_days: int = 14
    release_last_sync_days_ago: int = 6
    releases_every_days: int = 7
    backports: bool = True
    upstreamed_patch: bool = True
    conflicting_patch: bool = True
    owner_email: str = ""


@dataclass(frozen=True)
class PatchSeriesForkSpec:
    """A patch-series fork: a pinned upstream version file plus a patches directory."""

    slug: str
    name: str
    patches: int = 4
    pin_every_days: int = 28
    # The pin moves to the Stable version that was current this many days before each move.
    pin_lag_days: int = 5
    releases_every_days: int = 7
    version_file: str = "CHROMIUM_VERSION"
    patches_dir: str = "patches"
    owner_email: str = ""


@dataclass(frozen=True)
class WorldSpec:
    seed: int = 1
    now: datetime = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    main_commits: int = 600
    milestones: int = 6
    first_milestone: int = 120
    first_build: int = 6099
    first_position: int = 1_217_000
    days: int = 6 * 28
    files: int = 160
    vulnerabilities: int = 12
    # Release branches refs/heads/chromium/NNNN in the shape of Chromium's dependency
    # repositories (ANGLE has 6,093): no Cr-Branched-From or branch positions, most of them
    # bare branch points on main, some with cherry-picks of their own, a few cut from another
    # branch's commits (NNNN_1) or sharing one's tip (NNNN_1_1). See UpstreamPlan.
    chromium_branches: int = 0
    git_forks: tuple[GitForkSpec, ...] = field(default_factory=tuple)
    patch_series_forks: tuple[PatchSeriesForkSpec, ...] = field(default_factory=tuple)

    @property
    def now_ts(self) -> int:
        return int(self.now.timestamp())

    @property
    def start_ts(self) -> int:
        return self.now_ts - self.days * DAY


def standard_forks() -> tuple[tuple[GitForkSpec, ...], tuple[PatchSeriesForkSpec, ...]]:
    """The forks of the demo and of most tests: one of each kind, in different health."""
    git_forks = (
        GitForkSpec(
            slug="acme",
            name="Acme Browser",
            style="rebase",
            patches=5,
            last_sync_days_ago=9,
            owner_email="release@acme.example",
        ),
        GitForkSpec(
            slug="mergeco",
            name="MergeCo Shell",
            style="merge",
            patches=4,
            topics=2,
            sync_merge="pull-request",
            sync_every_days=21,
            last_sync_days_ago=20,
            release_milestones=(-3,),
            release_last_sync_days_ago=12,
            owner_email="browser-team@mergeco.example",
        ),
        GitForkSpec(
            slug="weaver",
            name="Weaver (merging-rebase)",
            style="merging-rebase",
            patches=6,
            topics=2,
            sync_every_days=7,
            last_sync_days_ago=3,
            release_milestones=(),
            backports=False,
            upstreamed_patch=False,
            owner_email="weaver@weaver.example",
        ),
    )
    series = (
        PatchSeriesForkSpec(
            slug="lumen",
            name="Lumen (patch series)",
            patches=4,
            owner_email="lumen-release@lumen.example",
        ),
    )
    return git_forks, series


def shape_forks() -> tuple[GitForkSpec, ...]:
    """Git forks of the history shapes `standard_forks` leaves out, for the patch-set tests:
    plain ``git merge upstream``, pull-request syncs with the patches straight on the branch
    (getsentry/mini_chromium's squash merges), topic merges with direct syncs, upstream merged
    in as the first parent, a merging-rebase without topic merges, and a rebase that keeps its
    topic merges (``git rebase -r``)."""
    common = {"sync_every_days": 21, "last_sync_days_ago": 20, "release_last_sync_days_ago": 12}
    return (
        GitForkSpec(slug="plainmerge", name="PlainMerge", style="merge", patches=4, **common),
        GitForkSpec(
            slug="sentry",
            name="Sentry",
            style="merge",
            patches=3,
            sync_merge="pull-request",
            release_milestones=(),
            backports=False,
            **common,
        ),
        GitForkSpec(
            slug="topicmerge", name="TopicMerge", style="merge", patches=5, topics=2, **common
        ),
        GitForkSpec(
            slug="flipped",
            name="Flipped",
            style="merge",
            patches=4,
            sync_merge="upstream-first",
            release_milestones=(-3,),
            **common,
        ),
        GitForkSpec(
            slug="linearweave",
            name="LinearWeave",
            style="merging-rebase",
            patches=5,
            sync_every_days=10,
            last_sync_days_ago=4,
        ),
        GitForkSpec(
            slug="topicrebase",
            name="TopicRebase",
            style="rebase",
            patches=5,
            topics=3,
            release_milestones=(),
            backports=False,
        ),
    )


def standard_world(seed: int = 1, now: datetime | None = None, **overrides) -> WorldSpec:
    git_forks, series = standard_forks()
    values = {"seed": seed, "git_forks": git_forks, "patch_series_forks": series, **overrides}
    if now is not None:
        values["now"] = now
    return WorldSpec(**values)
