"""Shared test helpers: worlds built once per session, and plain git calls."""

from __future__ import annotations

import re
from pathlib import Path

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
