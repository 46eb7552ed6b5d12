"""Helpers for the release, bulletin and fix-linking tests: a generated world's upstream
history and recorded upstream data, run through the real ingestion."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import SAMPLES, git
from tracker.demo import load_recorded_upstream_data
from tracker.generator.fastimport import FastImportWriter, Person
from tracker.git import git_input_stream, run_git
from tracker.ingest.history import ingest_upstream_history
from tracker.models import Upstream


def upstream_refs(repo: Path | str) -> list[tuple[str, str]]:
    """(upstream ref, local ref) pairs of a generated upstream.git, main first."""
    branches = git(repo, "for-each-ref", "--format=%(refname)", "refs/branch-heads/").split()
    return [("refs/heads/main", "refs/heads/main"), *((ref, ref) for ref in branches)]


def make_upstream(repo: Path | str, slug: str = "chromium") -> Upstream:
    return Upstream.objects.create(slug=slug, name="Chromium", git_url=str(repo))


def ingest_history(upstream: Upstream, repo: Path | str) -> None:
    ingest_upstream_history(upstream, repo, upstream_refs(repo))


def ingest_recorded_data(upstream: Upstream, world: Path | str, now: datetime) -> None:
    """The world's recorded Chromium Dash and Chrome Releases data, through ingestion."""
    assert load_recorded_upstream_data(upstream, world, now) == 0


# --- the worked example CVE-2024-5497 (SOURCES.md section 5.2) ------------------------------

CVE_2024_5497_ISSUE = 339061099
# The real commits of the fix, by their real ids (`chromium-commit-messages.security-fixes.
# curated.jsonl`). Rebuilt here their ids differ (the trees differ), so they are found again by
# message; their "(cherry picked from commit …)" lines keep naming the real ids, as a mirror
# that lost those objects would.
CVE_2024_5497_COMMITS = {
    "main": "9cce0c95e740f637e1436cfa472b532c9ec35bfd",
    "6367": "a679cb8b0de664a7b6043fba68e1134cf1221e22",
    "6422": "ccbe9cb86bf4f100160ad1fd7180415ce2ca8758",
    "6099": "dba0f828f2b66bb4e4ea9f3122affb18bd3b8f10",
}
# Branch points from the cherry-picks' Cr-Branched-From footers (and SOURCES.md section 0).
BRANCH_POINTS = {
    6099: ("e6ee4500f7d6549a9ac1354f8d056da49ef406be", 1217362),
    6367: ("d158c6dc6e3604e6f899041972edf26087a49740", 1274542),
    6422: ("9012208d0ce02e0cf0adb9b62558627c356f3278", 1287751),
    6533: ("7e0b87ec6b8cb5cb2969e1479fc25776e582721d", 1313161),
}
_BOT = Person("Chromium LUCI CQ", "chromium-scoped@luci-project-accounts.iam.gserviceaccount.com")
_RELEASE_BOT = Person(
    "Chrome Release Bot (LUCI)",
    "chrome-official-brancher@chops-service-accounts.iam.gserviceaccount.com",
)
_AUTHOR = Person("Taylor Bergquist", "tbergquist@chromium.org")


def real_messages() -> dict[str, str]:
    """Real commit message by real commit id, from the curated sample."""
    messages = {}
    path = SAMPLES / "chromium-commit-messages.security-fixes.curated.jsonl"
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        messages[entry["commit"]] = entry["message"]
    return messages


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def _main_message(subject: str, position: int) -> str:
    return (
        f"{subject}\n\nSynthetic main commit standing in for upstream history.\n\n"
        f"Change-Id: I{hashlib.sha1(subject.encode()).hexdigest()}\n"
        f"Cr-Commit-Position: refs/heads/main@{{#{position}}}\n"
    )


def _bump_message(version: str, branch: int, position: int) -> str:
    sha, branch_point = BRANCH_POINTS[branch]
    return (
        f"Incrementing VERSION to {version}\n\n"
        f"Change-Id: I{hashlib.sha1(version.encode()).hexdigest()}\n"
        f"Bot-Commit: {_RELEASE_BOT.name} <{_RELEASE_BOT.email}>\n"
        f"Cr-Commit-Position: refs/branch-heads/{branch}@{{#{position}}}\n"
        f"Cr-Branched-From: {sha}-refs/heads/main@{{#{branch_point}}}\n"
    )


def _version_file(version: str) -> bytes:
    major, minor, build, patch = version.split(".")
    return f"MAJOR={major}\nMINOR={minor}\nBUILD={build}\nPATCH={patch}\n".encode()


FIXED_SOURCE = b"// browser_commands.cc: reload the selected WebContents*, not indices\n"


def build_cve_2024_5497_repo(repo: Path) -> dict[str, str]:
    """A small Chromium-shaped repository around the real commits of CVE-2024-5497.

    Main has synthetic commits at the real branch points of M120 (6099), M124 (6367), M125
    (6422) and M127 (6533), two Canary version commits, and the real fix at
    main@{#1303471}; branches 6099, 6367 and 6422 carry the real cherry-picks, and 6367 and
    6422 version commits (tagged) before and after them. Everything is fixed (times, people,
    contents), so commit ids are the same on every run. Returns ids by name: "main",
    "6367", "6422", "6099" for the fix commits, "bp<branch>" for branch points, and each tag.
    """
    messages = real_messages()
    run_git(["init", "--quiet", "--bare", str(repo)])
    marks = repo / "marks"
    main_plan = [
        ("bp6099", _main_message("Synthetic M120 branch point", 1217362), "2023-10-30 18:00:00"),
        ("bp6367", _main_message("Synthetic M124 branch point", 1274542), "2024-03-11 18:00:00"),
        ("bp6422", _main_message("Synthetic M125 branch point", 1287751), "2024-04-15 18:00:00"),
        (
            "127.0.6500.0",
            _main_message("Incrementing VERSION to 127.0.6500.0", 1302000),
            "2024-05-17 06:00:00",
        ),
        ("main", messages[CVE_2024_5497_COMMITS["main"]] + "\n", "2024-05-20 21:29:09"),
        (
            "127.0.6509.0",
            _main_message("Incrementing VERSION to 127.0.6509.0", 1304100),
            "2024-05-22 06:00:00",
        ),
        ("bp6533", _main_message("Synthetic M127 branch point", 1313161), "2024-06-10 18:00:00"),
    ]
    branch_plan = {
        6099: [("6099", messages[CVE_2024_5497_COMMITS["6099"]] + "\n", "2024-07-09 15:13:40")],
        6367: [
            ("124.0.6367.216", _bump_message("124.0.6367.216", 6367, 1236), "2024-05-21 18:00:00"),
            ("6367", messages[CVE_2024_5497_COMMITS["6367"]] + "\n", "2024-05-28 13:43:24"),
            ("124.0.6367.233", _bump_message("124.0.6367.233", 6367, 1245), "2024-05-29 18:00:00"),
        ],
        6422: [
            ("125.0.6422.112", _bump_message("125.0.6422.112", 6422, 1155), "2024-05-22 18:00:00"),
            ("6422", messages[CVE_2024_5497_COMMITS["6422"]] + "\n", "2024-05-28 18:26:47"),
            ("125.0.6422.141", _bump_message("125.0.6422.141", 6422, 1182), "2024-05-29 18:00:00"),
        ],
    }
    mark_of: dict[str, int] = {}
    with git_input_stream(
        ["fast-import", "--quiet", "--done", f"--export-marks={marks}"], git_dir=repo
    ) as stdin:
        writer = FastImportWriter(stdin)
        parent = None
        for name, message, when in main_plan:
            mark_of[name] = len(mark_of) + 1
            is_fix = name == "main"
            author = _AUTHOR if is_fix else _BOT
            files = {"chrome/browser/ui/browser_commands.cc": FIXED_SOURCE} if is_fix else {}
            if "." in name:
                files["chrome/VERSION"] = _version_file(name)
            if parent is None:
                files["README.md"] = b"# Chromium (CVE-2024-5497 example)\n"
            writer.commit(
                "refs/heads/main",
                mark_of[name],
                author=author,
                author_time=_ts(when),
                committer=_BOT,
                commit_time=_ts(when),
                message=message,
                parent=parent,
                files=files,
            )
            parent = f":{mark_of[name]}"
            if "." in name:
                writer.tag(name, parent, tagger=_RELEASE_BOT, when=_ts(when), message=f"{name}\n")
        for branch, commits in branch_plan.items():
            parent = f":{mark_of[f'bp{branch}']}"
            for name, message, when in commits:
                mark_of[name] = len(mark_of) + 1
                is_bump = "." in name
                writer.commit(
                    f"refs/branch-heads/{branch}",
                    mark_of[name],
                    author=_RELEASE_BOT if is_bump else _AUTHOR,
                    author_time=_ts(when),
                    committer=_BOT,
                    commit_time=_ts(when),
                    message=message,
                    parent=parent,
                    files=(
                        {"chrome/VERSION": _version_file(name)}
                        if is_bump
                        else {"chrome/browser/ui/browser_commands.cc": FIXED_SOURCE}
                    ),
                )
                parent = f":{mark_of[name]}"
                if is_bump:
                    writer.tag(
                        name, parent, tagger=_RELEASE_BOT, when=_ts(when), message=f"{name}\n"
                    )
        writer.done()
    shas = {}
    by_mark = {}
    for line in marks.read_text().split("\n"):
        if line:
            mark, sha = line.split()
            by_mark[int(mark[1:])] = sha
    for name, mark in mark_of.items():
        shas[name] = by_mark[mark]
    return shas
