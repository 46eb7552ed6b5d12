"""Version schemes: how an upstream names its versions, one class per scheme behind one small
interface, so the sync, the releases and the alerts never ask which upstream they have.

- `ChromiumScheme` (``chromium``): MAJOR.MINOR.BUILD.PATCH read from the upstream's
  ``chrome/VERSION`` (tracker.lag measures base version, versions and milestones behind).
  Chrome's rules apply: milestones behind Stable, milestone support, key pinning and
  Certificate Transparency that lapse in builds older than ten weeks.
- `TagScheme` (``tags``): the upstream's own release tags, those its `tag_pattern` selects
  (git's ``v2.45.0``; exclude pre-releases with ``!refs/tags/*-rc*``). A commit's *version*
  is the newest release tag it contains: the highest (`tracker.versions.tag_order`) of the
  release tags reachable from it, which on a linear history is the nearest tag by ancestry,
  the one ``git describe`` names (describe itself only sees ``refs/tags/``, and the mirror
  keeps upstream's tags under ``refs/upstream/tags/``). *Versions behind* counts the release
  tags reachable from the upstream tip and not from the base. No milestones, no Chrome rules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from tracker.git import check_sha, run_git
from tracker.lag import merge_base
from tracker.refpatterns import RefPatterns
from tracker.versions import TagVersion, tag_order

if TYPE_CHECKING:
    from tracker.health import BranchHealth

UPSTREAM_TAGS = "refs/upstream/tags/"


class ChromiumScheme:
    """Chromium versions; tracker.lag and tracker.health measure them as they are."""

    name: ClassVar[str] = "chromium"
    chrome_rules: ClassVar[bool] = True  # milestones, support windows, key pinning

    def revise(self, git_dir, health: BranchHealth) -> BranchHealth:
        return health


@dataclass(frozen=True)
class TagScheme:
    """Versions are the upstream's release tags that `patterns` selects."""

    patterns: RefPatterns
    name: ClassVar[str] = "tags"
    chrome_rules: ClassVar[bool] = False

    def release_tags(self, git_dir, *filters: str) -> list[str]:
        """Names (without ``refs/tags/``) of the upstream release tags in the mirror, with
        ``for-each-ref`` `filters` such as ``--merged=<commit>``."""
        out = run_git(
            ["for-each-ref", "--format=%(refname)", *filters, UPSTREAM_TAGS], git_dir=git_dir
        ).text
        names = [ref.removeprefix(UPSTREAM_TAGS) for ref in out.split()]
        return [name for name in names if self.patterns.matches(f"refs/tags/{name}")]

    def version_at(self, git_dir, sha: str) -> TagVersion | None:
        """The newest release tag commit `sha` contains; None when it contains none."""
        tags = self.release_tags(git_dir, f"--merged={check_sha(sha)}")
        return TagVersion(max(tags, key=tag_order)) if tags else None

    def versions_between(self, git_dir, base: str, tip: str) -> int:
        """Release tags reachable from `tip` and not from `base`."""
        return len(
            self.release_tags(
                git_dir, f"--merged={check_sha(tip)}", f"--no-merged={check_sha(base)}"
            )
        )

    def revise(self, git_dir, health: BranchHealth) -> BranchHealth:
        """A branch measured as a Chromium branch, with its base version, versions behind and
        milestones (none) in this scheme."""
        lag, then = health.lag, health.lag_at_tip
        behind = (
            self.versions_between(git_dir, health.base_sha, lag.upstream_tip)
            if lag.upstream_tip
            else 0
        )
        lag = replace(lag, versions_behind=behind, milestones_behind=None)
        if then.upstream_tip:
            then_base = merge_base(git_dir, health.tip_sha, then.upstream_tip)
            behind = (
                self.versions_between(git_dir, then_base, then.upstream_tip) if then_base else 0
            )
            then = replace(then, versions_behind=behind, milestones_behind=None)
        return replace(
            health,
            base_version=self.version_at(git_dir, health.base_sha),
            lag=lag,
            lag_at_tip=then,
        )


VersionSchemeImpl = ChromiumScheme | TagScheme


def scheme_for(upstream) -> VersionSchemeImpl:
    """The version scheme of an upstream (`Upstream.version_scheme`)."""
    if upstream.version_scheme == TagScheme.name:
        return TagScheme(RefPatterns.parse(upstream.tag_pattern))
    return ChromiumScheme()


def chrome_rules(upstream) -> bool:
    """Whether Chrome's milestone and key-pinning rules apply to `upstream`'s forks."""
    return upstream.version_scheme != TagScheme.name
