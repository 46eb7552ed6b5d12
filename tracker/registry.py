"""Registering upstreams and forks: URLs, refs and repository paths checked (the model fields'
validators: tracker.git, tracker.repopaths), credentials split off and encrypted.

A URL such as https://bot:token@git.example.com/acme/src.git is stored as
https://git.example.com/acme/src.git; the user name and token are kept encrypted beside it and
reach git only through a credential helper (tracker.git).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from tracker.git import check_remote_url
from tracker.models import Fork, ForkKind, TrackedBranch, Upstream
from tracker.secrets import encrypt_credentials


def _checked_url(url: str) -> tuple[str, str]:
    remote = check_remote_url(url, settings.GIT_LOCAL_ROOTS)
    return remote.url, encrypt_credentials(remote.username, remote.password)


@transaction.atomic
def register_upstream(slug: str, name: str, url: str, **fields) -> Upstream:
    """Create or update an upstream by slug. Raises UnsafeGitInput or ValidationError."""
    clean_url, credentials = _checked_url(url)
    upstream = Upstream.objects.filter(slug=slug).first() or Upstream(slug=slug)
    upstream.name, upstream.git_url, upstream.git_credentials = name, clean_url, credentials
    for key, value in fields.items():
        setattr(upstream, key, value)
    upstream.full_clean()
    upstream.save()
    return upstream


@transaction.atomic
def register_fork(
    upstream: Upstream,
    slug: str,
    name: str,
    url: str,
    *,
    branches: Sequence[tuple[str, str]],
    kind: str = ForkKind.GIT,
    **fields,
) -> Fork:
    """Create or update a fork by slug with its tracked branches, each (fork branch, upstream
    ref it follows). Nothing is written unless every value is valid."""
    clean_url, credentials = _checked_url(url)
    fork = Fork.objects.filter(slug=slug).first() or Fork(slug=slug)
    fork.upstream, fork.name, fork.kind = upstream, name, kind
    fork.git_url, fork.git_credentials = clean_url, credentials
    for key, value in fields.items():
        setattr(fork, key, value)
    fork.full_clean()
    tracked = [TrackedBranch(fork=fork, name=b, upstream_ref=ref) for b, ref in branches]
    for branch in tracked:
        branch.full_clean(exclude=["fork"], validate_unique=False)
    fork.save()
    for branch in tracked:
        TrackedBranch.objects.update_or_create(
            fork=fork, name=branch.name, defaults={"upstream_ref": branch.upstream_ref}
        )
    return fork
