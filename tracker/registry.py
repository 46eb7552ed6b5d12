"""Registering upstreams and forks: URLs, refs and repository paths checked (the model fields'
validators: tracker.git, tracker.refpatterns, tracker.repopaths), credentials split off and
encrypted, and what the remotes hold checked with ``git ls-remote`` (tracker.remoterefs).

A URL such as https://bot:token@git.example.com/acme/src.git is stored as
https://git.example.com/acme/src.git; the user name and token are kept encrypted beside it and
reach git only through a credential helper (tracker.git).

The remote check (`check=True`, the default) refuses refs that must exist and do not: an
upstream's main ref, a fork branch, an upstream ref a branch follows; and reports what each
pattern list selects. Registered objects carry it as `remote_check` (None when skipped, for
an offline registration; the first sync then finds what is missing).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from tracker.git import RemoteURL, check_remote_url
from tracker.models import Fork, ForkKind, TrackedBranch, Upstream, VersionScheme
from tracker.refpatterns import split_list
from tracker.remoterefs import Finding, RemoteCheck, ls_remote, missing_ref, select
from tracker.secrets import encrypt_credentials
from tracker.versions import VersionParseError, parse_version

# A tracked branch as given: (fork branch, upstream refs it follows), the refs as a list or a
# comma- or space-separated string, the first the primary.
BranchSpec = tuple[str, str | Sequence[str]]


def _checked_url(url: str) -> tuple[RemoteURL, str]:
    remote = check_remote_url(url, settings.GIT_LOCAL_ROOTS)
    return remote, encrypt_credentials(remote.username, remote.password)


def _refused(check: RemoteCheck) -> None:
    if check.problems:
        raise ValidationError(check.problems)


@transaction.atomic
def register_upstream(slug: str, name: str, url: str, *, check: bool = True, **fields) -> Upstream:
    """Create or update an upstream by slug. Raises UnsafeGitInput or ValidationError (also
    for a main ref the remote lacks), or RemoteUnreachable when the check cannot list the
    remote's refs."""
    remote, credentials = _checked_url(url)
    upstream = Upstream.objects.filter(slug=slug).first() or Upstream(slug=slug)
    upstream.name, upstream.git_url, upstream.git_credentials = name, remote.url, credentials
    for key, value in fields.items():
        setattr(upstream, key, value)
    upstream.full_clean()
    upstream.remote_check = None
    if check:
        upstream.remote_check = check_upstream(upstream, ls_remote(remote))
        _refused(upstream.remote_check)
    upstream.save()
    return upstream


def check_upstream(upstream: Upstream, refs: dict[str, str]) -> RemoteCheck:
    """Check a (valid) upstream against its remote's refs."""
    check = RemoteCheck()
    if problem := missing_ref(refs, upstream.main_ref, upstream.git_url):
        check.problem("main_ref", problem)
    main = (upstream.main_ref,) if upstream.main_ref in refs else ()
    check.findings.append(Finding("main ref", upstream.main_ref, main))
    check.findings.append(
        Finding(
            "release branches",
            upstream.release_branch_pattern,
            select(refs, upstream.release_branch_pattern),
        )
    )
    tags = select(refs, upstream.tag_pattern)
    note = ""
    if upstream.version_scheme == VersionScheme.CHROMIUM:
        versions = 0
        for tag in tags:
            try:
                parse_version(tag.removeprefix("refs/tags/"))
                versions += 1
            except VersionParseError:
                continue
        note = f"{versions} of them Chromium versions (MAJOR.MINOR.BUILD.PATCH)"
    check.findings.append(Finding("tags", upstream.tag_pattern, tags, note))
    return check


def _branch_refs(refs: str | Sequence[str]) -> tuple[str, ...]:
    given = split_list(refs) if isinstance(refs, str) else [r.strip() for r in refs if r.strip()]
    return tuple(dict.fromkeys(given))


@transaction.atomic
def register_fork(
    upstream: Upstream,
    slug: str,
    name: str,
    url: str,
    *,
    branches: Sequence[BranchSpec],
    kind: str = ForkKind.GIT,
    check: bool = True,
    **fields,
) -> Fork:
    """Create or update a fork by slug with its tracked branches, each (fork branch, upstream
    refs it follows; the first is the one lag is measured against). Branches already tracked
    and not given stay (see `remove_branch`). Nothing is written unless every value is
    valid: a branch given twice, or (with `check`) a branch or upstream ref missing on its
    remote, raises ValidationError; RemoteUnreachable when a remote cannot be listed."""
    remote, credentials = _checked_url(url)
    fork = Fork.objects.filter(slug=slug).first() or Fork(slug=slug)
    fork.upstream, fork.name, fork.kind = upstream, name, kind
    fork.git_url, fork.git_credentials = remote.url, credentials
    for key, value in fields.items():
        setattr(fork, key, value)
    fork.full_clean()
    tracked = []
    seen: set[str] = set()
    for branch_name, refs in branches:
        if branch_name in seen:
            raise ValidationError(
                {"branches": [f"branch {branch_name!r} is given twice; give each branch once"]}
            )
        seen.add(branch_name)
        followed = _branch_refs(refs)
        if not followed:
            raise ValidationError({"branches": [f"branch {branch_name!r} follows no upstream ref"]})
        tracked.append(
            TrackedBranch(
                fork=fork,
                name=branch_name,
                upstream_ref=followed[0],
                also_follows=", ".join(followed[1:]),
            )
        )
    for branch in tracked:
        try:
            branch.full_clean(exclude=["fork"], validate_unique=False)
        except ValidationError as exc:
            raise ValidationError(
                {"branches": [f"branch {branch.name!r}: {m}" for m in exc.messages]}
            ) from None
    fork.remote_check = None
    if check:
        upstream_refs = ls_remote(upstream.remote(settings.GIT_LOCAL_ROOTS))
        fork.remote_check = check_fork(fork, tracked, ls_remote(remote), upstream_refs)
        _refused(fork.remote_check)
    fork.save()
    for branch in tracked:
        TrackedBranch.objects.update_or_create(
            fork=fork,
            name=branch.name,
            defaults={"upstream_ref": branch.upstream_ref, "also_follows": branch.also_follows},
        )
    return fork


def check_fork(
    fork: Fork,
    branches: Sequence[TrackedBranch],
    refs: dict[str, str],
    upstream_refs: dict[str, str],
) -> RemoteCheck:
    """Check a (valid) fork and its tracked branches against the refs of its remote and of
    its upstream's. A patch-series fork's branches carry no upstream history, so only their
    fork side is checked."""
    check = RemoteCheck()
    upstream = fork.upstream
    for branch in branches:
        source = branch.name if branch.name.startswith("refs/") else f"refs/heads/{branch.name}"
        if problem := missing_ref(refs, source, fork.git_url):
            check.problem("branches", f"branch {branch.name!r}: {problem}")
        followed = branch.followed_refs if fork.kind == ForkKind.GIT else ()
        for ref in followed:
            if problem := missing_ref(upstream_refs, ref, f"upstream {upstream.git_url}"):
                check.problem("branches", f"branch {branch.name!r} follows {problem}")
        shown = f"{branch.name} ({source})"
        if followed:
            shown += " following " + ", ".join(followed)
        check.findings.append(Finding("branch", shown, (source,) if source in refs else ()))
    if fork.release_tag_pattern:
        # Upstream's own tags (forks such as git for Windows carry them beside theirs) are no
        # fork releases. Here: a tag on a commit an upstream ref points at; the sync goes on
        # to leave out every tag on a commit upstream's history has (tracker.forksecurity).
        upstream_commits = set(upstream_refs.values())
        selected = select(refs, fork.release_tag_pattern, under="refs/tags/")
        own = tuple(t for t in selected if refs[t] not in upstream_commits)
        left = len(selected) - len(own)
        note = (
            f"{left} more on upstream's own commits (upstream's tags), which are no fork releases"
            if left
            else ""
        )
        check.findings.append(Finding("release tags", fork.release_tag_pattern, own, note))
    return check


@transaction.atomic
def remove_branch(fork: Fork, name: str) -> tuple[TrackedBranch, int]:
    """Stop tracking fork branch `name`: its row goes with its snapshots, fix statuses and
    alert settings (releases on it keep their data and lose the link), and once the
    transaction commits its refs leave the mirror. Returns the removed branch (unsaved) and
    how many snapshots went. Raises TrackedBranch.DoesNotExist."""
    branch = TrackedBranch.objects.select_for_update().get(fork=fork, name=name)
    snapshots = branch.snapshots.count()
    branch.delete()
    transaction.on_commit(lambda: drop_branch_refs(fork, [name]))
    return branch, snapshots


def drop_branch_refs(fork: Fork, names: Sequence[str]) -> None:
    """Delete the mirror refs of fork branches `names` (``git update-ref -d`` through the git
    gate). A sync running meanwhile may fetch them once more; its next one drops them
    (tracker.mirrors.drop_unselected)."""
    from tracker.mirrors import Mirror, delete_refs, mirror_path

    path = mirror_path(fork.upstream)
    if not (path / "HEAD").exists():
        return
    delete_refs(Mirror(path), [Mirror.fork_ref(fork, name) for name in names])


def drop_fork_refs(fork: Fork) -> None:
    """Delete every mirror ref of a fork that is no longer registered."""
    from tracker.mirrors import Mirror, delete_refs, fork_namespace, list_refs, mirror_path

    path = mirror_path(fork.upstream)
    if not (path / "HEAD").exists():
        return
    mirror = Mirror(path)
    delete_refs(mirror, list(list_refs(mirror, fork_namespace(fork))))
