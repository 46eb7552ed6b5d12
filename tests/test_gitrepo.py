"""The repository layer: GitPython over the gate. Objects, refs and config read as git reads
them; the readers never fetch, never outlive their block, and run in the gate's environment."""

import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import git as gitpython
import pytest

from tests.helpers import git, lose_object, packs, two_promisor_mirror, two_remote_world
from tracker import gitrepo
from tracker.git import GitError, git_input_stream, run_git
from tracker.gitrepo import Repository, configure, init_bare, open_repo


def _blob(path: str, text: str) -> str:
    data = text.encode()
    return f"M 644 inline {path}\ndata {len(data)}\n{text}\n"


def _commit(ref: str, when: int, message: str, files: dict[str, str]) -> str:
    """A fast-import commit on `ref` (after the previous one on it, if any)."""
    data = message.encode()
    head = f"commit {ref}\ncommitter A <a@example.com> {when} +0000\ndata {len(data)}\n{message}\n"
    return head + "".join(_blob(p, t) for p, t in files.items()) + "\n"


def _repository(path: Path) -> dict[str, str]:
    """A bare repository with two commits on main, an annotated and a plain tag."""
    init_bare(path)
    stream = (
        _commit(
            "refs/heads/main",
            1700000000,
            "First\n\nCr-Commit-Position: refs/heads/main@{#1}",
            {
                "chrome/VERSION": "MAJOR=125\nMINOR=0\nBUILD=6422\nPATCH=0\n",
                "patches/a.patch": "a",
                "patches/sub/b.patch": "b",
                "README": "readme",
            },
        )
        + _commit(
            "refs/heads/main",
            1700000600,
            "Second",
            {"chrome/VERSION": "MAJOR=125\nMINOR=0\nBUILD=6423\nPATCH=0\n"},
        )
        + "tag v1\nfrom refs/heads/main\ntagger A <a@example.com> 1700000700 +0000\ndata 3\nv1\n\n"
    )
    with git_input_stream(["fast-import", "--quiet"], git_dir=path) as stdin:
        stdin.write(stream.encode())
    tip = git(path, "rev-parse", "refs/heads/main").strip()
    git(path, "update-ref", "refs/tags/plain", tip)
    return {"tip": tip, "first": git(path, "rev-parse", "refs/heads/main~1").strip()}


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "r.git"
    return path, _repository(path)


def test_objects_come_from_the_persistent_reader_missing_ones_as_none(repo):
    path, shas = repo
    tip, first = shas["tip"], shas["first"]
    with open_repo(path) as repository:
        commit, version, nothing, unknown = repository.read_objects(
            [tip, f"{tip}:chrome/VERSION", f"{tip}:no/such/file", "f" * 40]
        )
        assert commit == run_git(["cat-file", "commit", tip], git_dir=path).stdout
        assert version == b"MAJOR=125\nMINOR=0\nBUILD=6423\nPATCH=0\n"
        assert nothing is None and unknown is None
        parsed = repository.commit(first)
        assert parsed.message.startswith("First\n\nCr-Commit-Position")
        assert parsed.committed_date == 1700000000
        assert [p.hexsha for p in repository.commit(tip).parents] == [first]
        assert repository.commit("f" * 40) is None
        assert repository.has_commit(tip) and not repository.has_commit("f" * 40)
        listed = git(path, "ls-tree", "-r", "--name-only", first, "--", "patches").split()
        assert repository.tree_files(first, "patches") == listed
        assert repository.tree_files(first, "patches/") == listed
        assert repository.tree_files(first, "README") == ["README"]
        assert repository.tree_files(first, "nope") == []
        assert repository.tree_files("f" * 40, "patches") == []
        with pytest.raises(GitError):
            repository.read_objects(["not-a-sha:x"])


def test_refs_resolve_as_git_resolves_them_packed_loose_and_after_they_move(repo):
    path, shas = repo
    tip, first = shas["tip"], shas["first"]
    with open_repo(path) as repository:
        assert repository.resolve("refs/heads/main") == tip
        assert repository.resolve("refs/tags/v1") == tip  # annotated: peeled to the commit
        assert repository.resolve(f"{tip}~1") == first
        assert repository.resolve("refs/heads/none") is None
        with pytest.raises(GitError):
            repository.resolve("--output=/tmp/x")
        git(path, "pack-refs", "--all")
        assert repository.resolve("refs/tags/plain") == tip
        git(path, "update-ref", "refs/heads/main", first)  # moved while the reader runs
        assert repository.resolve("refs/heads/main") == first
        stream = _commit("refs/heads/later", 1700001000, "Later", {"x": "x"})
        with git_input_stream(["fast-import", "--quiet"], git_dir=path) as stdin:
            stdin.write(stream.encode())
        later = repository.resolve("refs/heads/later")  # objects that arrived after it started
        assert later and repository.read_objects([f"{later}:x"]) == [b"x"]


def test_config_is_read_by_gitpython_and_written_by_git_only_when_it_changes(tmp_path):
    path = tmp_path / "r.git"
    init_bare(path)
    tricky = 'https://example.com/a;b#c"d\\e'  # what GitPython 3.2.1's writer gets wrong
    values = {"remote.upstream.url": tricky, "fetch.writeCommitGraph": "true"}
    assert configure(path, values) == ["remote.upstream.url", "fetch.writeCommitGraph"]
    assert git(path, "config", "--get", "remote.upstream.url") == tricky + "\n"
    assert configure(path, values) == []  # nothing changed: no git config at all
    assert configure(path, {**values, "remote.upstream.url": "/x"}) == ["remote.upstream.url"]
    with open_repo(path) as repository:
        assert repository.config(["remote.upstream.url", "core.bare", "gc.auto"]) == {
            "remote.upstream.url": "/x",
            "core.bare": "true",
            "gc.auto": None,
        }
        assert not repository.is_partial_clone()


def test_init_bare_takes_the_path_as_it_is(tmp_path):
    path = tmp_path / "$HOME.git"  # GitPython would expand variables in paths
    init_bare(path)
    assert (path / "HEAD").exists()
    assert git(path, "rev-parse", "--is-bare-repository").strip() == "true"


def test_one_repository_per_path_and_thread_and_its_readers_stop_with_the_block(repo):
    path, shas = repo
    with open_repo(path) as outer:
        with open_repo(path) as inner:
            assert inner is outer
            inner.read_objects([shas["tip"]])
            assert inner.resolve("refs/heads/main")
        readers = outer._git.readers()
        assert len(readers) == 2 and all(p.poll() is None for p in readers)
        other: list[Repository] = []

        def elsewhere():
            with open_repo(path) as repository:
                other.append(repository)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert other[0] is not outer
    assert all(p.poll() is not None for p in readers)  # stopped, not left to the worker
    assert not [t for t in threading.enumerate() if t.name == "git-watchdog"]


def test_a_reader_that_stops_answering_is_killed_at_the_timeout(repo):
    path, shas = repo
    with open_repo(path, timeout=1) as repository:
        repository.read_objects([shas["tip"]])
        (reader,) = [p for p in repository._git.readers() if "--batch" in p.args]
        reader.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(GitError, match="timed out after 1s"):
            repository.read_objects([shas["first"]])
        assert time.monotonic() - started < 5
        assert reader.wait(5) == -signal.SIGKILL
        assert repository.read_objects([shas["first"]])[0]  # a fresh reader takes over


def test_a_reader_that_exits_is_an_error_then_replaced(repo):
    path, shas = repo
    with open_repo(path) as repository:
        assert repository.has_commit(shas["tip"])
        for proc in repository._git.readers():
            proc.kill()
            proc.wait()
        with pytest.raises(GitError, match="cat-file"):
            repository.has_commit(shas["tip"])
        assert repository.has_commit(shas["tip"])


def test_the_contents_readers_stand_in_is_kept_per_user_and_used_only_untouched(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(gitrepo, "_stand_in", None)
    shared = gitrepo._stand_in_git_dir()
    assert shared == tmp_path / f"forkhealth-reader-{os.getuid()}"
    monkeypatch.setattr(gitrepo, "_stand_in", None)  # another process of the same user
    assert gitrepo._stand_in_git_dir() == shared
    (shared / "config").write_text('[remote "x"]\n\tpromisor = true\n')
    private = gitrepo._stand_in_git_dir()
    assert private != shared and gitrepo._is_stand_in(private)


def _partial_clone(tmp_path: Path) -> tuple[Path, Path, str]:
    """(served upstream, its blob:none mirror, the upstream tip)."""
    upstream = tmp_path / "upstream.git"
    tip = _repository(upstream)["tip"]
    git(upstream, "config", "uploadpack.allowFilter", "true")
    mirror = tmp_path / "mirror.git"
    init_bare(mirror)
    configure(
        mirror,
        {
            "remote.upstream.url": str(upstream),
            "remote.upstream.promisor": "true",
            "remote.upstream.partialclonefilter": "blob:none",
        },
    )
    git(mirror, "fetch", "--quiet", "--filter=blob:none", "upstream", "+refs/heads/*:refs/heads/*")
    return upstream, mirror, tip


def _missing(mirror: Path) -> list[str]:
    out = git(mirror, "rev-list", "--objects", "--all", "--missing=print")
    return [line[1:] for line in out.split() if line.startswith("?")]


def test_a_partial_clone_blob_is_missing_to_the_reader_and_fetched_within_the_timeout(tmp_path):
    _upstream, mirror, tip = _partial_clone(tmp_path)
    missing = _missing(mirror)
    assert missing  # the file contents stayed on the server
    # A promisor that never answers: the reader must not wait for it.
    git(mirror, "config", "remote.upstream.uploadpack", "sleep 60 #")
    name = f"{tip}:chrome/VERSION"
    with open_repo(mirror, timeout=2) as repository:
        assert repository.is_partial_clone()
        started = time.monotonic()
        assert repository.read_objects([name], fetch=False) == [None]
        assert repository.has_commit(tip)
        assert repository.commit(tip).message == "Second"
        assert time.monotonic() - started < 2
        with pytest.raises(GitError, match="timed out after 2s"):
            repository.read_objects([name])  # the gate's fetch, bounded by the timeout
        assert time.monotonic() - started < 10
        git(mirror, "config", "--unset", "remote.upstream.uploadpack")
        assert repository.read_objects([name]) == [b"MAJOR=125\nMINOR=0\nBUILD=6423\nPATCH=0\n"]
        assert repository.read_objects([name], fetch=False)[0]  # fetched once, then local
    assert len(_missing(mirror)) == len(missing) - 1


def test_gitpython_processes_run_in_the_gates_environment_only(tmp_path, monkeypatch):
    """An ext:: remote runs nothing: not from a lazy fetch, not from a command, even with this
    process's environment allowing every protocol (GitPython alone would pass it on)."""
    marker = tmp_path / "pwned"
    _upstream, mirror, tip = _partial_clone(tmp_path)
    git(mirror, "config", "remote.upstream.url", f"ext::sh -c touch% {marker}")
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "ext:file:https")
    monkeypatch.setenv("GIT_PROTOCOL_FROM_USER", "1")
    with open_repo(mirror) as repository:
        assert repository.read_objects([f"{tip}:chrome/VERSION"], fetch=False) == [None]
        assert not repository.has_commit("f" * 40)  # a missing commit asks no promisor either
        with pytest.raises(GitError, match="not allowed"):
            repository.repo.git.execute(["git", "ls-remote", f"ext::sh -c touch% {marker}"])
        with pytest.raises(GitError):
            repository.read_objects([f"{tip}:chrome/VERSION"])  # the gate's fetch: refused
        with pytest.raises(TypeError):
            repository.repo.git.execute("git status", shell=True)  # noqa: S604
        with pytest.raises(TypeError):  # only the cat-file readers may keep running
            repository.repo.git.execute(
                ["git", "hash-object", "--stdin"], as_process=True, istream=subprocess.PIPE
            )
        with pytest.raises(gitpython.exc.UnsafeProtocolError):  # GitPython's own check, on
            gitpython.Remote.create(repository.repo, "evil", f"ext::sh -c touch% {marker}")
    assert not marker.exists()


def test_no_code_turns_gitpythons_safety_checks_off():
    tracker = Path(__file__).resolve().parent.parent / "tracker"
    for source in tracker.rglob("*.py"):
        assert "allow_unsafe" not in source.read_text(), source


def test_missing_objects_come_one_batch_per_remote_even_asked_of_the_wrong_remote_first(
    tmp_path,
):
    """Every blob asked of the upstream first, though three are the fork's alone: refused
    twice by name, then the rest goes on to the fork and comes back to the upstream."""
    world = two_remote_world(tmp_path)
    mirror = two_promisor_mirror(tmp_path / "mirror.git", world)
    fork_only = [git(mirror, "rev-parse", f"{world['tip']}:{n}.txt").strip() for n in "abce"]
    upstream_only = [git(mirror, "rev-parse", f"{world['up']}:{n}.txt").strip() for n in "abcd"]
    wanted = dict.fromkeys([*fork_only, *upstream_only], ("upstream", "fork-acme"))
    before = packs(mirror)
    with open_repo(mirror) as repository:
        assert repository.missing(wanted) == set(wanted)
        assert repository.fetch(wanted) == {}
        assert repository.missing(wanted) == set()
        assert repository.fetches == 3  # fork: all it has; upstream: its own, on its turn
        assert repository.fetch(wanted) == {}  # all there: nothing asked
        assert repository.fetches == 3
    assert packs(mirror) == before + 3


def test_an_object_no_remote_has_is_asked_for_once_and_noted(tmp_path):
    world = two_remote_world(tmp_path)
    lost = git(world["upstream"], "rev-parse", f"{world['up']}:a.txt").strip()
    lose_object(world["upstream"], lost)
    mirror = two_promisor_mirror(tmp_path / "mirror.git", world)
    mark = gitrepo.unavailable_mark()
    with open_repo(mirror) as repository:
        name = f"{world['up']}:a.txt"
        assert repository.read_objects([name, f"{world['up']}:b.txt"])[0] is None
        assert repository.fetches == 1  # b.txt, after one refusal of a.txt
        assert repository.read_objects([name]) == [None]
        assert repository.fetches == 1  # known to be on no remote: not asked again
    noted = gitrepo.unavailable_since(mark)
    assert list(noted) == [lost]
    assert noted[lost] == (
        f"a.txt at {world['up'][:12]} (blob {lost[:12]}): "
        "upstream does not have it; fork-acme does not have it"
    )
    assert gitrepo.unavailable_since(gitrepo.unavailable_mark()) == {}
