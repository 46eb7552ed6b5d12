"""Shared test helpers: worlds built once per session, and plain git calls."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from django.urls import URLPattern, URLResolver, get_resolver

from tracker.git import run_git

# Real upstream data the tests read, copied into the repository (each file has a .source.txt
# note of where it came from); the project never reads outside its own root.
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "samples"


def git(repo: Path | str, *args: str, check: bool = True) -> str:
    """Run plain git in `repo` (a bare repository) and return stdout as text."""
    return run_git(list(args), git_dir=repo, check=check).text


def footers(message: str) -> dict[str, list[str]]:
    """Footer lines of the last paragraph, by key (a test-side reading, independent of the
    project's parser)."""
    last = message.strip().split("\n\n")[-1]
    out: dict[str, list[str]] = {}
    for line in last.splitlines():
        match = re.match(r"^([A-Za-z-]+): (.*)$", line)
        if match:
            out.setdefault(match.group(1), []).append(match.group(2))
    return out


def log_messages(repo: Path | str, rev_range: str) -> list[tuple[str, str]]:
    """(sha, full message) for every commit in `rev_range`."""
    out = git(repo, "log", "--format=%H%x00%B%x1e", "--end-of-options", rev_range)
    result = []
    for record in out.split("\x1e"):
        record = record.strip("\n")
        if record:
            sha, message = record.split("\x00", 1)
            result.append((sha, message))
    return result


def patch_id(repo: Path | str, sha: str) -> str:
    diff = run_git(["show", "--format=", "--end-of-options", sha], git_dir=repo).stdout
    out = run_git(["patch-id", "--stable"], git_dir=repo, input=diff).text
    return out.split()[0] if out.strip() else ""


def is_ancestor(repo: Path | str, commit: str, tip: str) -> bool:
    result = run_git(["merge-base", "--is-ancestor", commit, tip], git_dir=repo, check=False)
    return result.returncode == 0


def plain_marker(repo: Path | str, tip: str, upstream: str) -> tuple[str, list[str]] | None:
    """The newest merging-rebase marker on `tip`'s first-parent line and its parents, found
    with plain git one commit at a time (independent of tracker.patches): a merge whose first
    parent upstream contains, whose tree is that parent's, and with a parent upstream lacks."""
    for sha in git(repo, "rev-list", "--first-parent", tip, f"^{upstream}").split():
        tree, *parents = git(repo, "log", "-1", "--format=%T %P", sha).split()
        if len(parents) < 2 or not is_ancestor(repo, parents[0], upstream):
            continue
        same_tree = git(repo, "rev-parse", f"{parents[0]}^{{tree}}").strip() == tree
        if same_tree and any(not is_ancestor(repo, p, upstream) for p in parents[1:]):
            return sha, parents
    return None


def plain_patch_set(repo: Path | str, tip: str, upstream: str) -> list[str]:
    """The patch set by plain git, oldest first: ``rev-list --no-merges tip ^upstream``, minus
    what the newest marker's other parents reach."""
    found = plain_marker(repo, tip, upstream)
    exclude = [f"^{p}" for p in found[1][1:]] if found else []
    return git(
        repo, "rev-list", "--no-merges", "--topo-order", "--reverse", tip, f"^{upstream}", *exclude
    ).split()


def url_routes(
    patterns=None, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str | None]]:
    """(route, name) of every URL pattern the project serves, the admin's and the API's
    included; routes are the patterns' text, converters and regex groups unfilled, names
    carry their namespace ("admin:login")."""
    for p in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(p, URLResolver):
            inner = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from url_routes(p.url_patterns, prefix + str(p.pattern), inner)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.name and namespace + p.name


def concrete_url(route: str, values: Mapping[str, str]) -> str:
    """A path for `route` with each parameter taken from `values` by name ("1" if absent)."""
    # Regex groups first (their names look like path converters), then path converters.
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values.get(m.group(1), "1"), route)
    route = route.replace("<drf_format_suffix:format>", ".json")  # DRF's ".<format>" converter
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m.group(1), "1"), route)
    route = route.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
    return "/" + route.replace("/?", "/")
