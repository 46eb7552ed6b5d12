"""Upstream history ingestion on real generated repositories and real PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from tests.helpers import footers, git, log_messages
from tracker.generator import build_world, standard_world
from tracker.git import UnsafeGitInput, git_input_stream, run_git
from tracker.ingest.history import _CopyWriter, _OrmWriter, ingest_upstream_history
from tracker.models import (
    CommitBug,
    IngestCursor,
    ReleaseBranchCommit,
    Upstream,
    UpstreamCommit,
)

pytestmark = pytest.mark.django_db(transaction=True)

MAIN = "refs/heads/main"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small generated world (600 main commits, 6 release branches) and its truth."""
    return build_world(standard_world(seed=3), tmp_path_factory.mktemp("ingest") / "w")


@pytest.fixture
def upstream(world):
    return Upstream.objects.create(
        slug="chromium", name="Chromium", git_url=world["upstream"]["path"]
    )


def upstream_refs(repo: Path | str) -> list[tuple[str, str]]:
    """Main first, then every release branch, each read under its own name."""
    branches = git(repo, "for-each-ref", "--format=%(refname)", "refs/branch-heads/").split()
    return [(MAIN, MAIN), *((ref, ref) for ref in branches)]


def scratch_copy(source: Path | str, dest: Path) -> Path:
    """A bare repository with `source`'s branch refs that borrows its objects (safe to change)."""
    git(dest.parent, "init", "--quiet", "--bare", str(dest))
    (dest / "objects" / "info" / "alternates").write_text(f"{Path(source) / 'objects'}\n")
    refs = git(source, "for-each-ref", "--format=create %(refname) %(objectname)", "refs/heads/")
    refs += git(
        source, "for-each-ref", "--format=create %(refname) %(objectname)", "refs/branch-heads/"
    )
    run_git(["update-ref", "--stdin"], git_dir=dest, input=refs.encode())
    return dest


def append_commits(repo: Path, ref: str, messages: list[bytes], *, parent: str | None) -> list[str]:
    """Commits with `messages` on `ref` (replacing it), the first on `parent` (None: a root).

    Returns their shas, oldest first. Each keeps its parent's tree.
    """
    stream = bytearray()
    for mark, message in enumerate(messages, start=1):
        stream += b"commit %s\nmark :%d\n" % (ref.encode(), mark)
        stream += b"author Ada Author <ada@chromium.org> %d +0000\n" % (1_780_000_000 + mark)
        stream += b"committer Chromium LUCI CQ <luci-cq@chromium.org> %d +0000\n" % (
            1_780_000_000 + mark
        )
        stream += b"data %d\n%s\n" % (len(message), message)
        if mark == 1 and parent is not None:
            stream += b"from %s\n" % parent.encode()
        stream += b"\n"
    marks = repo / "fast-import.marks"
    with git_input_stream(
        ["fast-import", "--quiet", "--force", f"--export-marks={marks}"], git_dir=repo
    ) as stdin:
        if parent is None:
            stdin.write(b"reset %s\n\n" % ref.encode())
        stdin.write(bytes(stream))
    by_mark = dict(line.split(" ") for line in marks.read_text().splitlines())
    return [by_mark[f":{mark}"] for mark in range(1, len(messages) + 1)]


def main_messages(first_position: int, count: int, tag: str) -> list[bytes]:
    return [
        (
            f"[{tag}] Change {i}\n\nBody.\n\nBug: {41_000_000 + i}\n"
            f"Change-Id: I{i:040x}\nCr-Commit-Position: {MAIN}@{{#{first_position + i}}}\n"
        ).encode()
        for i in range(count)
    ]


def tip_position(repo: Path) -> int:
    (position,) = footers(git(repo, "log", "-1", "--format=%B", MAIN))["Cr-Commit-Position"]
    return int(position.split("#")[1].rstrip("}"))


def has_commit(repo: Path, sha: str) -> bool:
    return (
        run_git(["cat-file", "-e", f"{sha}^{{commit}}"], git_dir=repo, check=False).returncode == 0
    )


def rows(upstream: Upstream) -> int:
    return UpstreamCommit.objects.filter(upstream=upstream).count()


def assert_one_row_per_commit(upstream: Upstream, repo: Path | str, refs: list[str]) -> None:
    expected = set(git(repo, "rev-list", "--end-of-options", *refs).split())
    stored = list(UpstreamCommit.objects.filter(upstream=upstream).values_list("sha", flat=True))
    assert len(stored) == len(set(stored))
    assert expected <= set(stored)


# --- a full ingest, against git and the generator's truth -----------------------------------


@pytest.fixture
def ingested(world, upstream):
    repo = world["upstream"]["path"]
    refs = upstream_refs(repo)
    stats = ingest_upstream_history(upstream, repo, refs, batch_size=100)
    return stats, refs


def test_full_ingest_has_one_row_per_commit_of_the_refs(world, upstream, ingested):
    stats, refs = ingested
    repo = world["upstream"]["path"]
    count = int(git(repo, "rev-list", "--count", "--end-of-options", *(r for r, _ in refs)))
    assert rows(upstream) == count == stats.commits == stats.inserted
    assert sum(stats.refs.values()) == count
    cursors = dict(IngestCursor.objects.filter(upstream=upstream).values_list("ref", "sha"))
    assert cursors == {ref: git(repo, "rev-parse", ref).strip() for ref, _ in refs}


def test_main_commits_carry_their_positions_consecutively(world, upstream, ingested):
    truth = world["upstream"]
    stored = {
        c.sha: c for c in UpstreamCommit.objects.filter(upstream=upstream, ref=MAIN).iterator()
    }
    assert len(stored) == truth["main_commits"]
    for sha, message in log_messages(truth["path"], MAIN):
        (position,) = footers(message)["Cr-Commit-Position"]
        commit = stored[sha]
        assert f"{commit.position_ref}@{{#{commit.position}}}" == position
    positions = sorted(c.position for c in stored.values())
    first = truth["first_position"]
    assert positions == list(range(first, first + truth["main_commits"]))


def test_release_branches_read_only_their_own_commits(world, upstream, ingested):
    stats, _refs = ingested
    for milestone in world["upstream"]["milestones"]:
        ref = milestone["ref"]
        commits = list(UpstreamCommit.objects.filter(upstream=upstream, ref=ref))
        assert stats.refs[ref] == len(commits) == milestone["branch_commits"]
        assert {c.position_ref for c in commits} == {ref}
        assert sorted(c.position for c in commits) == list(range(1, len(commits) + 1))
        assert {c.branched_from_position for c in commits} == {milestone["branch_point_position"]}
        assert {c.branched_from_sha for c in commits} == {milestone["branch_point"]}
        own = ReleaseBranchCommit.objects.filter(upstream=upstream, ref=ref)
        assert set(own.values_list("sha", flat=True)) == {c.sha for c in commits}
        tip = UpstreamCommit.objects.get(upstream=upstream, sha=milestone["tip"])
        assert tip.parents and tip.commit_time >= tip.author_time


def test_security_fixes_and_their_bugs_are_stored(world, upstream, ingested):
    repo = world["upstream"]["path"]
    for vuln in world["vulnerabilities"]:
        for fix in vuln["fix_commits"]:
            commit = UpstreamCommit.objects.get(upstream=upstream, sha=fix["sha"])
            assert commit.ref == MAIN
            assert commit.position == fix["position"]
            assert commit.change_id == fix["change_id"]
            assert commit.reviewed_on.startswith("https://chromium-review.googlesource.com/")
            if vuln["kind"] != "chromium":
                continue  # a dependency roll names no bug
            bugs = dict(
                CommitBug.objects.filter(
                    upstream=upstream, sha=fix["sha"], project="chromium"
                ).values_list("bug_id", "fixed")
            )
            assert set(vuln["bug_ids"]) <= set(bugs), vuln["cve"]
            message = git(repo, "log", "-1", "--format=%B", "--end-of-options", fix["sha"])
            fixed = [int(v) for v in footers(message).get("Fixed", [])]
            assert {bug for bug, is_fixed in bugs.items() if is_fixed} == set(fixed)


def test_cherry_picks_point_at_their_main_original(world, upstream, ingested):
    picks = 0
    for vuln in world["vulnerabilities"]:
        for pick in vuln["cherry_picks"]:
            if pick["kind"] != "pick":
                continue
            original = vuln["fix_commits"][pick["part"]]
            commit = UpstreamCommit.objects.get(upstream=upstream, sha=pick["sha"])
            assert commit.ref == f"refs/branch-heads/{pick['branch']}"
            assert commit.cherry_picked_from == original["sha"]
            assert commit.original_position == original["position"]
            assert commit.change_id == original["change_id"]
            assert commit.position == pick["branch_position"]
            picks += 1
    assert picks  # the world has cherry-picks to check


# --- incremental and idempotent ------------------------------------------------------------


def test_incremental_sync_reads_only_new_commits(world, upstream, tmp_path):
    repo = scratch_copy(world["upstream"]["path"], tmp_path / "up.git")
    refs = upstream_refs(repo)
    first = ingest_upstream_history(upstream, repo, refs)
    before = rows(upstream)
    tip = git(repo, "rev-parse", MAIN).strip()
    new = append_commits(repo, MAIN, main_messages(tip_position(repo) + 1, 7, "New"), parent=tip)

    stats = ingest_upstream_history(upstream, repo, refs)

    assert first.commits == before
    assert stats.commits == stats.inserted == 7
    assert stats.refs[MAIN] == 7
    assert all(stats.refs[ref] == 0 for ref, _ in refs[1:])
    assert rows(upstream) == before + 7
    assert set(
        UpstreamCommit.objects.filter(upstream=upstream, ref=MAIN, sha__in=new).values_list(
            "sha", flat=True
        )
    ) == set(new)
    cursor = IngestCursor.objects.get(upstream=upstream, ref=MAIN)
    assert cursor.sha == new[-1]
    assert cursor.commits == world["upstream"]["main_commits"] + 7
    again = ingest_upstream_history(upstream, repo, refs)
    assert again.commits == 0 and rows(upstream) == before + 7


def test_crash_after_a_batch_then_rerun_leaves_one_row_per_commit(world, upstream):
    repo = world["upstream"]["path"]
    refs = upstream_refs(repo)
    calls = []

    def crash_on_second_batch(ref: str, written: int) -> None:
        calls.append((ref, written))
        if len(calls) == 2:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        ingest_upstream_history(upstream, repo, refs, batch_size=50, progress=crash_on_second_batch)

    walk = f"{MAIN} and {len(refs) - 1} more refs"  # every ref in one walk
    assert calls == [(walk, 50), (walk, 100)]
    assert 100 <= rows(upstream) < world["upstream"]["main_commits"]
    assert not IngestCursor.objects.filter(upstream=upstream).exists()

    stats = ingest_upstream_history(upstream, repo, refs, batch_size=50)

    total = int(git(repo, "rev-list", "--count", "--end-of-options", *(r for r, _ in refs)))
    assert stats.commits == total
    assert stats.inserted == total - 100 == rows(upstream) - 100
    assert_one_row_per_commit(upstream, repo, [r for r, _ in refs])
    assert (
        IngestCursor.objects.get(upstream=upstream, ref=MAIN).sha
        == git(repo, "rev-parse", MAIN).strip()
    )


def test_a_failing_batch_write_stops_the_run_and_the_rerun_completes(world, upstream, monkeypatch):
    repo = world["upstream"]["path"]
    refs = upstream_refs(repo)
    real_write = _CopyWriter.write
    writes = []

    def failing_write(self, commits, *rest):
        writes.append(len(commits))
        if len(writes) == 2:
            raise OSError("connection lost")
        return real_write(self, commits, *rest)

    monkeypatch.setattr(_CopyWriter, "write", failing_write)
    with pytest.raises(OSError, match="connection lost"):
        ingest_upstream_history(upstream, repo, refs, batch_size=50)
    assert rows(upstream) == 50
    assert not IngestCursor.objects.filter(upstream=upstream).exists()

    monkeypatch.setattr(_CopyWriter, "write", real_write)
    stats = ingest_upstream_history(upstream, repo, refs, batch_size=50)

    assert stats.inserted == stats.commits - 50
    assert_one_row_per_commit(upstream, repo, [r for r, _ in refs])


def test_ingest_inside_a_transaction_writes_on_the_callers_connection(world, upstream):
    repo = world["upstream"]["path"]
    refs = upstream_refs(repo)[:2]
    with transaction.atomic():
        stats = ingest_upstream_history(upstream, repo, refs, batch_size=70)
        assert rows(upstream) == stats.commits > 0
    assert rows(upstream) == stats.commits


def test_orm_writer_used_on_sqlite_skips_existing_rows(world, upstream):
    # The SQLite path, run here on PostgreSQL: same rows, conflicts ignored, count of new rows.
    repo = world["upstream"]["path"]
    ingest_upstream_history(upstream, repo, [(MAIN, MAIN)], batch_size=1000)
    sample = list(UpstreamCommit.objects.filter(upstream=upstream)[:3])
    bug_rows = [(c.sha, "chromium", 7, False) for c in sample]
    writer = _OrmWriter(upstream, "default")
    UpstreamCommit.objects.filter(sha=sample[0].sha).delete()
    commit_rows = [
        (
            c.sha,
            c.parents,
            c.author_name,
            c.author_email,
            c.author_time,
            c.commit_time,
            c.subject,
            c.ref,
            c.position_ref,
            c.position,
            c.branched_from_sha,
            c.branched_from_position,
            c.change_id,
            c.reviewed_on,
            c.cherry_picked_from,
            c.original_position,
            c.message_lossy,
        )
        for c in sample
    ]
    assert writer.write(commit_rows, bug_rows) == 1
    assert writer.write(commit_rows, bug_rows) == 0
    assert CommitBug.objects.filter(upstream=upstream, bug_id=7).count() == 3


# --- rewritten and missing refs ------------------------------------------------------------


def test_force_push_with_the_old_tip_gone_reads_the_ref_again(world, upstream, tmp_path, caplog):
    repo = scratch_copy(world["upstream"]["path"], tmp_path / "up.git")
    refs = [(MAIN, MAIN)]
    base = git(repo, "rev-parse", MAIN).strip()
    position = tip_position(repo) + 1
    old = append_commits(repo, MAIN, main_messages(position, 3, "Old"), parent=base)
    ingest_upstream_history(upstream, repo, refs)
    assert IngestCursor.objects.get(upstream=upstream, ref=MAIN).sha == old[-1]
    # Rewrite main from `base`, then drop the old commits (reflogs are off in bare repos).
    new = append_commits(repo, MAIN, main_messages(position, 2, "Rewritten"), parent=base)
    git(repo, "gc", "--quiet", "--prune=now")
    assert not has_commit(repo, old[-1])

    with caplog.at_level(logging.WARNING, logger="tracker.ingest.history"):
        stats = ingest_upstream_history(upstream, repo, refs)

    assert "no longer in the repository" in caplog.text
    assert stats.commits == world["upstream"]["main_commits"] + 2  # the whole ref again
    assert stats.inserted == 2
    cursor = IngestCursor.objects.get(upstream=upstream, ref=MAIN)
    assert cursor.sha == new[-1]
    assert cursor.commits == world["upstream"]["main_commits"] + 2
    # Rows are never deleted: the rewritten-away commits stay, each once.
    assert rows(upstream) == world["upstream"]["main_commits"] + 3 + 2
    assert_one_row_per_commit(upstream, repo, [MAIN])


def test_force_push_with_the_old_tip_still_present_reads_only_new_commits(
    world, upstream, tmp_path
):
    repo = scratch_copy(world["upstream"]["path"], tmp_path / "up.git")
    base = git(repo, "rev-parse", MAIN).strip()
    position = tip_position(repo) + 1
    append_commits(repo, MAIN, main_messages(position, 3, "Old"), parent=base)
    ingest_upstream_history(upstream, repo, [(MAIN, MAIN)])
    new = append_commits(repo, MAIN, main_messages(position, 2, "Rewritten"), parent=base)

    stats = ingest_upstream_history(upstream, repo, [(MAIN, MAIN)])

    assert stats.commits == stats.inserted == 2
    assert IngestCursor.objects.get(upstream=upstream, ref=MAIN).sha == new[-1]


def test_a_ref_that_vanished_is_skipped_and_logged(world, upstream, caplog):
    repo = world["upstream"]["path"]
    refs = [(MAIN, MAIN), ("refs/branch-heads/1", "refs/branch-heads/1")]
    with caplog.at_level(logging.WARNING, logger="tracker.ingest.history"):
        stats = ingest_upstream_history(upstream, repo, refs)
    assert stats.refs == {MAIN: world["upstream"]["main_commits"], "refs/branch-heads/1": 0}
    assert "refs/branch-heads/1 is not in" in caplog.text
    assert not IngestCursor.objects.filter(upstream=upstream, ref="refs/branch-heads/1").exists()


def test_refs_from_data_are_checked_before_git_runs(world, upstream):
    with pytest.raises(UnsafeGitInput):
        ingest_upstream_history(upstream, world["upstream"]["path"], [("--output=x", MAIN)])
    with pytest.raises(ValueError, match="batch_size"):
        ingest_upstream_history(upstream, world["upstream"]["path"], [], batch_size=0)


# --- awkward messages ----------------------------------------------------------------------

AWKWARD = {
    "latin1": b"Caf\xe9 cr\xe8me\n\nWritten in ISO-8859-1.\n\nBug: 123456\n",
    "crlf": (
        b"Fix the\tthing \\ properly  \r\n\r\nBody.\r\n\r\nBug: 40000001\r\n"
        b"Change-Id: I" + b"a" * 40 + b"\r\nCr-Commit-Position: refs/heads/main@{#5}\r\n"
    ),
    "no footers": b"Just a subject",
    "empty": b"",
    "odd whitespace": (
        b"  Subject with spaces around  \n\n\n"
        b"Bug:\t chromium:777 ,  v8:42\nCr-Commit-Position:   refs/heads/main@{#6}   \n"
    ),
    "huge numbers": b"Too big\n\nCr-Commit-Position: refs/heads/main@{#99999999999}\n",
}


def test_awkward_messages_are_ingested(upstream, tmp_path):
    repo = tmp_path / "odd.git"
    git(tmp_path, "init", "--quiet", "--bare", str(repo))
    shas = dict(
        zip(AWKWARD, append_commits(repo, MAIN, list(AWKWARD.values()), parent=None), strict=True)
    )

    stats = ingest_upstream_history(upstream, repo, [(MAIN, MAIN)])

    assert stats.commits == rows(upstream) == len(AWKWARD)
    stored = {c.sha: c for c in UpstreamCommit.objects.filter(upstream=upstream)}
    latin1 = stored[shas["latin1"]]
    assert latin1.message_lossy
    assert latin1.subject == "Café crème"
    assert not any(c.message_lossy for sha, c in stored.items() if sha != shas["latin1"])
    crlf = stored[shas["crlf"]]
    assert crlf.subject == "Fix the\tthing \\ properly"
    assert (crlf.position_ref, crlf.position, crlf.change_id) == (MAIN, 5, "I" + "a" * 40)
    assert stored[shas["no footers"]].subject == "Just a subject"
    assert stored[shas["no footers"]].position is None
    assert stored[shas["empty"]].subject == ""
    odd = stored[shas["odd whitespace"]]
    assert odd.subject == "Subject with spaces around"
    assert odd.position == 6
    assert stored[shas["huge numbers"]].position is None  # larger than the integer column
    assert stored[shas["crlf"]].parents == shas["latin1"]
    assert stored[shas["latin1"]].parents == ""
    bugs = set(CommitBug.objects.filter(upstream=upstream).values_list("sha", "project", "bug_id"))
    assert bugs == {
        (shas["latin1"], "chromium", 123456),
        (shas["crlf"], "chromium", 40000001),
        (shas["odd whitespace"], "chromium", 777),
        (shas["odd whitespace"], "v8", 42),
    }


def test_long_author_names_are_cut_to_the_column(upstream, tmp_path):
    repo = tmp_path / "long.git"
    git(tmp_path, "init", "--quiet", "--bare", str(repo))
    name = "N" * 300
    stream = (
        b"commit refs/heads/main\n"
        b"author %s <%s@example.org> 1780000000 +0000\n"
        b"committer C <c@example.org> 1780000000 +0000\n"
        b"data 5\nHello\n\n"
    ) % (name.encode(), b"e" * 250)
    with git_input_stream(["fast-import", "--quiet"], git_dir=repo) as stdin:
        stdin.write(stream)

    ingest_upstream_history(upstream, repo, [(MAIN, MAIN)])

    commit = UpstreamCommit.objects.get(upstream=upstream)
    assert commit.author_name == "N" * 200
    assert len(commit.author_email) == 200


# --- thousands of release branches without branch-point footers ---------------------------

CHROMIUM = "refs/heads/chromium/"
BRANCHES = 5000


@pytest.fixture(scope="module")
def dependency_world(tmp_path_factory):
    """An upstream shaped like ANGLE: 5,000 refs/heads/chromium/NNNN branches (and the
    NNNN_1, NNNN_1_1 cut from some) without Cr-Branched-From, most bare branch points."""
    spec = standard_world(
        seed=5,
        main_commits=6000,
        milestones=2,
        vulnerabilities=4,
        chromium_branches=BRANCHES,
        git_forks=(),
        patch_series_forks=(),
    )
    return build_world(spec, tmp_path_factory.mktemp("dependency") / "w")


@pytest.fixture
def dependency(dependency_world):
    return Upstream.objects.create(
        slug="angle",
        name="ANGLE",
        git_url=dependency_world["upstream"]["path"],
        release_branch_pattern=f"{CHROMIUM}*",
    )


def dependency_refs(repo: Path | str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Main and every chromium/* branch of `repo`, with their tips (one listing)."""
    listed = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", MAIN, CHROMIUM)
    tips = dict(line.split() for line in listed.splitlines())
    return [(MAIN, MAIN), *((ref, ref) for ref in sorted(tips) if ref != MAIN)], tips


def own_commits(upstream: Upstream) -> dict[str, set[str]]:
    """ReleaseBranchCommit rows by branch."""
    own: dict[str, set[str]] = {}
    for ref, sha in ReleaseBranchCommit.objects.filter(upstream=upstream).values_list("ref", "sha"):
        own.setdefault(ref, set()).add(sha)
    return own


def git_own(repo: Path | str, ref: str) -> set[str]:
    """Plain git's answer: the commits of `ref` that main lacks."""
    return set(git(repo, "log", "--format=%H", f"{MAIN}..{ref}").split())


def sampled(branches: list[dict]) -> list[dict]:
    """Every branch with commits of its own, and one bare branch point in fifty."""
    return [b for i, b in enumerate(branches) if b["own_commits"] or i % 50 == 0]


@pytest.fixture
def started_git(monkeypatch):
    """The git commands started from now on (every git process goes through tracker.git)."""
    from tracker import git as gate

    commands: list[list[str]] = []
    real = gate._popen

    def recording(command, **kwargs):
        commands.append([arg for arg in command[1:] if not arg.startswith("--git-dir=")])
        return real(command, **kwargs)

    monkeypatch.setattr(gate, "_popen", recording)
    return commands


def test_5000_release_branches_are_ingested_in_one_walk_each_commit_on_its_branches(
    dependency_world, dependency, started_git
):
    upstream = dependency
    truth = dependency_world["upstream"]
    repo = truth["path"]
    refs, tips = dependency_refs(repo)
    assert len(refs) - 1 == len(truth["chromium_branches"]) > BRANCHES
    started_git.clear()

    stats = ingest_upstream_history(upstream, repo, refs, tips=tips)

    # One count for the progress bar, one walk; no git per ref.
    assert [command[0] for command in started_git] == ["rev-list", "log"]
    total = int(git(repo, "rev-list", "--count", "--end-of-options", MAIN, *tips.values()))
    assert stats.commits == stats.inserted == rows(upstream) == total
    assert stats.moved == len(refs) and stats.rewalked == 0
    main_commits = set(git(repo, "rev-list", MAIN).split())
    stored = dict(UpstreamCommit.objects.filter(upstream=upstream).values_list("sha", "ref"))
    assert {sha for sha, ref in stored.items() if ref == MAIN} == main_commits
    own = own_commits(upstream)
    for branch in truth["chromium_branches"]:
        assert own.get(branch["ref"], set()) == set(branch["own_commits"]), branch["ref"]
        for sha in branch["own_commits"]:
            assert stored[sha].startswith(CHROMIUM)  # recorded under the first branch by name
    for branch in sampled(truth["chromium_branches"]):
        assert own.get(branch["ref"], set()) == git_own(repo, branch["ref"]), branch["ref"]
    cursors = dict(IngestCursor.objects.filter(upstream=upstream).values_list("ref", "sha"))
    assert cursors == {ref: tips[local] for ref, local in refs}


def test_a_sync_with_no_ref_moved_costs_one_ref_listing(
    dependency_world, dependency, settings, tmp_path, started_git, django_assert_max_num_queries
):
    from tracker.sync import sync_upstream

    settings.GIT_LOCAL_ROOTS = [Path(dependency_world["path"])]
    settings.MIRROR_DIR = tmp_path / "mirrors"
    upstream = dependency
    now = timezone.now()
    sync_upstream(upstream, now=now)
    moved = dict(IngestCursor.objects.filter(upstream=upstream).values_list("ref", "updated_at"))
    assert len(moved) == len(dependency_world["upstream"]["chromium_branches"]) + 1
    started_git.clear()

    # The refs tracked branches follow (what the mirror holds), the cursors, the sync time.
    with django_assert_max_num_queries(3):
        sync_upstream(upstream, now=now)

    assert [command[0] for command in started_git] == ["fetch", "for-each-ref"]
    after = dict(IngestCursor.objects.filter(upstream=upstream).values_list("ref", "updated_at"))
    assert after == moved  # no cursor written


def test_branches_that_move_after_the_first_ingest_keep_exactly_their_own_commits(
    dependency_world, dependency, tmp_path
):
    """New branches cut from main or from another branch's known commits, branches moving on,
    rewritten or reset: after each sync every branch holds what plain git says it holds."""
    upstream, truth = dependency, dependency_world["upstream"]
    repo = scratch_copy(truth["path"], tmp_path / "up.git")
    refs, tips = dependency_refs(repo)
    ingest_upstream_history(upstream, repo, refs, tips=tips)
    # Three unrelated branches with two commits or more of their own (not NNNN_1 branches).
    grown, forked, rewritten = [
        b for b in truth["chromium_branches"] if len(b["own_commits"]) >= 2 and "_" not in b["ref"]
    ][:3]
    bare = next(b for b in truth["chromium_branches"] if not b["own_commits"])
    old_main = truth["main_tags"][0]["sha"]

    main_tip = git(repo, "rev-parse", MAIN).strip()
    append_commits(repo, MAIN, main_messages(tip_position(repo) + 1, 3, "Main"), parent=main_tip)
    # One branch moves on while a new one is cut below its old tip, and another on top of it.
    append_commits(repo, grown["ref"], [b"[M1] Grown\n"], parent=grown["tip"])
    git(repo, "update-ref", f"{grown['ref']}_9", grown["own_commits"][0])
    append_commits(repo, f"{grown['ref']}_8", [b"[M1] On top\n"], parent=grown["tip"])
    # A new branch cut from an unmoved branch's commits, with a commit of its own.
    append_commits(repo, f"{forked['ref']}_9", [b"[M1] Forked\n"], parent=forked["own_commits"][1])
    # A branch rewritten onto main, a bare branch point moved to an older main commit, and
    # new bare branch points on old and new main commits.
    append_commits(repo, rewritten["ref"], [b"[M1] Rewritten\n"], parent=old_main)
    git(repo, "update-ref", bare["ref"], old_main)
    git(repo, "update-ref", f"{CHROMIUM}99998", old_main)
    git(repo, "update-ref", f"{CHROMIUM}99999", MAIN)
    refs, tips = dependency_refs(repo)

    stats = ingest_upstream_history(upstream, repo, refs, tips=tips)

    # The new commits, and the two known ones of the unmoved branch the forked one is cut
    # from (read again: only the cursors of refs that moved are left out of the walk).
    assert stats.inserted == 3 + 1 + 1 + 1 + 1
    assert stats.commits == stats.inserted + 2
    assert stats.moved == 1 + 8
    own = own_commits(upstream)
    checked = {grown["ref"], f"{grown['ref']}_9", f"{grown['ref']}_8", f"{forked['ref']}_9"}
    checked |= {rewritten["ref"], bare["ref"], f"{CHROMIUM}99998", f"{CHROMIUM}99999"}
    checked |= {b["ref"] for b in sampled(truth["chromium_branches"])}
    for ref in sorted(checked):
        assert own.get(ref, set()) == git_own(repo, ref), ref
    # Settled from the walk alone: the branch that moved on, the bare points. Listed again:
    # the branches cut from known branch commits and the rewritten one.
    assert stats.rewalked == 3

    again = ingest_upstream_history(upstream, repo, refs, tips=tips)
    assert again.moved == again.commits == 0


def test_bug_projects_that_are_one_once_cut_to_the_column_give_one_row(upstream, tmp_path):
    repo = tmp_path / "long.git"
    git(tmp_path, "init", "--quiet", "--bare", str(repo))
    long = "p" * 45
    message = f"Two long projects\n\nBug: {long}:7, {long}q:7\n".encode()
    (sha,) = append_commits(repo, MAIN, [message], parent=None)

    ingest_upstream_history(upstream, repo, [(MAIN, MAIN)])  # copied straight: a first ingest

    assert list(CommitBug.objects.filter(upstream=upstream).values_list("sha", "bug_id")) == [
        (sha, 7)
    ]
