"""What a remote has, asked at registration: ``git ls-remote`` through the git gate, and the
checks registration makes against its answer (used by tracker.registry).

The checks are plain functions of the listings (ref name -> commit id), so they are the same
for the add_fork command, the API and the admin:

- a ref that must exist (an upstream's main ref, a fork branch, an upstream ref a branch
  follows) and is not on the remote is a `RefProblem`, naming a few refs that are there;
- a pattern list is reported with the refs it selects (`Finding`), so a pattern that selects
  nothing, or far too much, shows before the first sync does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.conf import settings

from tracker.git import GitError, RemoteURL, redact, run_git
from tracker.refpatterns import RefPatterns, sample


class RemoteUnreachable(GitError):
    """``git ls-remote`` failed: the remote is offline, missing, or refused the credentials."""


def ls_remote(remote: RemoteURL, *, timeout: float | None = None) -> dict[str, str]:
    """The refs of `remote`: full ref name -> commit id (annotated tags peeled). HEAD and
    anything else outside ``refs/`` are left out. Raises RemoteUnreachable."""
    try:
        out = run_git(
            ["ls-remote", "--", remote.url],
            remote=remote,
            timeout=settings.GIT_CHECK_TIMEOUT if timeout is None else timeout,
        ).text
    except GitError as exc:
        lines = [line.strip() for line in exc.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith("fatal:")), None)
        reason = reason or (lines[-1] if lines else str(exc))
        raise RemoteUnreachable(
            f"cannot list the refs of {redact(remote.url)}: {reason.removeprefix('fatal: ')} "
            "(check the URL, the credentials and the network; to register without this "
            "check, e.g. offline, skip it)",
            returncode=exc.returncode,
            stderr=exc.stderr,
        ) from None
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        if not name.startswith("refs/"):
            continue
        if name.endswith("^{}"):
            refs[name[:-3]] = sha  # the peeled line follows its tag's
        else:
            refs.setdefault(name, sha)
    return refs


@dataclass(frozen=True)
class Finding:
    """What one field selects on a remote: `what` (e.g. "release tags"), the pattern or ref
    as given, the refs selected, and a `note` (e.g. how many were left out and why)."""

    what: str
    given: str
    refs: tuple[str, ...]
    note: str = ""

    def __str__(self) -> str:
        count = len(self.refs)
        found = f"{count} ref{'' if count == 1 else 's'}" if count else "no ref (nothing to track)"
        listed = f": {sample(self.refs)}" if self.refs else ""
        note = f"; {self.note}" if self.note else ""
        return f"{self.what} {self.given}: {found}{listed}{note}"


@dataclass
class RemoteCheck:
    """The findings of one registration's check, and the refs that must exist but do not
    (field name -> message), which refuse the registration."""

    findings: list[Finding] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def problem(self, key: str, message: str) -> None:
        self.problems.setdefault(key, []).append(message)

    def lines(self) -> list[str]:
        return [str(f) for f in self.findings]


def missing_ref(refs: Mapping[str, str], ref: str, where: str) -> str | None:
    """None when `ref` is in `refs`, else a message saying so, with a few refs of the same
    kind (the same first two components, e.g. refs/heads/) that are there."""
    if ref in refs:
        return None
    kind = "/".join(ref.split("/")[:2]) + "/"
    near = sorted(r for r in refs if r.startswith(kind))
    return f"{ref} is not on {where} ({kind}* there: {sample(near)})"


def select(refs: Iterable[str], text: str, *, under: str = "refs/") -> tuple[str, ...]:
    return tuple(RefPatterns.parse(text, under=under).select(refs))
