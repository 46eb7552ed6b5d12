"""The repository layer: a repository opened as GitPython's `git.Repo`, its refs and objects
read through GitPython's persistent ``cat-file`` readers, every git process started by the
gate (`tracker.git`) with its environment, timeouts and checks.

`open_repo(path)` opens a repository for a block. Inside it, `open_repo` of the same path in
the same thread returns the same `Repository`, so a whole sync reads through one pair of
``cat-file`` processes (``--batch-check`` for names, ``--batch`` for contents); the outermost
block closes them, so none outlives the work that started it (a Celery worker keeps no git
processes between tasks). Each exchange with them is bounded by a watchdog that kills them
past the timeout.

What goes through GitPython, and what stays on the gate's one-shot git (git 2.39, the 2-core
development machine; reader figures inside an open repository):

- *objects* (commits, trees, blobs) and *single names* (a ref, ``<id>~N``, is a commit there?):
  `git.Git.get_object_data` / `get_object_header`, `Repo.commit`, `Tree.traverse`. A commit
  read took 0.09 ms, a ref resolved by git in the reader 0.15 ms, where one git process per
  call takes 2.5 ms (``rev-parse``). A sync of the demo forks starts 43-57 % fewer git
  processes and takes 30-40 % less time (benchmarks/sync.py, docs/benchmarks.md).
- *config*: read with GitPython's config reader; written by ``git config`` through the gate,
  and only when a value changes. GitPython 3.2.1's config writer does not write every value
  as git reads it back (a URL ending in ``"q\\w`` came back with a newline appended).
- *ref listings* (``for-each-ref``) stay on the gate: GitPython lists refs in Python and scans
  the whole packed-refs file for each name. With 45,000 packed refs (a Chromium mirror's
  order): 40,000 tag names in 333 ms against 78 ms, 5,000 branch heads with their commits in
  16 s against 108 ms, one name in 31 ms against 0.15 ms in the reader.
- *walks* stay on the gate, as the modules that run them say with their figures: ``log``
  (tracker.gitlog, tracker.ingest.history), ``log -p | patch-id`` (tracker.patches,
  tracker.forksecurity.gitread), ``rev-list``, ``merge-base``, ``merge-tree`` (tracker.lag,
  tracker.patches): GitPython runs those same commands or reads commit by commit. So do
  *fetches*, which need the gate's credential helper.

Partial clones: the readers never fetch. In a mirror cloned with ``--filter=blob:none`` a blob
not fetched yet makes ``cat-file`` ask the promisor remote, with no timeout, and exit when the
fetch fails (``fatal: could not fetch … from promisor remote``). ``GIT_NO_LAZY_FETCH=1`` stops
the fetch (git 2.39.5 honours it, though ``git help git`` documents it only from 2.44) but not
the exit. So the contents reader runs against a stand-in git directory with no remotes and
reads the repository's objects through ``GIT_OBJECT_DIRECTORY``: a blob not fetched yet is
missing like any other object. `read_objects()` fetches the missing ones itself, with
`Repository.fetch`: one ``git fetch`` of the whole batch per remote, within the gate's timeout
(git's own lazy fetch takes one pack per object, and with two promisor remotes, each lacking
the other's blobs, a batch that mixes them is refused by both). An object no remote gives is
*unavailable*: read as None, noted with the reason (`unavailable_since`) for the figure that
needed it, and not asked for again in the block. The names reader needs the repository's
refs, so it runs in it, with ``GIT_NO_LAZY_FETCH=1`` and no protocol allowed (a git without
that variable fails the fetch at once); it only looks up commits, which a blob:none clone has.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git

from tracker.git import (
    DEFAULT_TIMEOUT,
    GIT,
    GitError,
    RemoteURL,
    UnsafeGitInput,
    check_sha,
    failure_reason,
    kill_git,
    popen_git,
    redact,
    run_git,
)

__all__ = [
    "ObjectsUnavailable",
    "Repository",
    "configure",
    "describe_unavailable",
    "init_bare",
    "open_repo",
    "unavailable_mark",
    "unavailable_since",
]

_READERS = (["cat-file", "--batch"], ["cat-file", "--batch-check"])
# What GitPython copies from this process's environment into its commands' (Repo.__init__);
# the gate decides the environment, and these would point git at another repository.
_INHERITED = ("GIT_DIR", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_WORK_TREE")
_MISSING = (ValueError, git.exc.BadName, git.exc.BadObject)


# What a remote says when it lacks an object we asked for: protocol v2's upload-pack
# refuses a want it cannot find ("not our ref"); a server missing an object it should have
# fails to read it while packing ("unable to read").
_REFUSED = re.compile(r"(?:not our ref|unable to read) ([0-9a-f]{40})")
# Refusals one remote may give for one batch before the rest of the batch goes on to the
# next remote: a batch meant for another remote is refused object after object.
MAX_REFUSALS = 2


class ObjectsUnavailable(GitError):
    """Objects a computation needs that no remote gave. `reasons`: object id -> why (where
    the object was wanted, and what each remote answered)."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        super().__init__(describe_unavailable(reasons))
        self.reasons = dict(reasons)


def describe_unavailable(reasons: Mapping[str, str], shown: int = 3) -> str:
    """One sentence about unavailable objects (`reasons` as `ObjectsUnavailable`'s), the
    first `shown` named."""
    items = list(reasons.values())
    noun = "object is" if len(items) == 1 else "objects are"
    text = f"{len(items)} {noun} on no remote: " + "; ".join(items[:shown])
    return text + (f"; and {len(items) - shown} more" if len(items) > shown else "")


class _Stopped(Exception):
    """A reader stopped (killed by the watchdog, or git exited) in the middle of an exchange."""


class _GateGit(git.Git):
    """GitPython's command runner, running nothing itself: commands go to `run_git()`, the
    persistent ``cat-file`` readers start through `popen_git()`; no shell, no other process."""

    GIT_PYTHON_GIT_EXECUTABLE = GIT

    def __init__(self, working_dir: str | None = None) -> None:
        super().__init__(working_dir)
        # The path as given: git.Git would expand ``$VARIABLES`` and ``~`` in it.
        self._working_dir = os.path.abspath(working_dir) if working_dir else None
        # Set by Repository: commands name the git directory rather than rely on the cwd.
        self._git_dir: str | None = None
        self._common_dir: str = ""

    def execute(  # type: ignore[override]
        self,
        command: Sequence[Any],
        istream: Any = None,
        with_extended_output: bool = False,
        with_exceptions: bool = True,
        as_process: bool = False,
        output_stream: Any = None,
        stdout_as_string: bool = True,
        kill_after_timeout: float | None = None,
        with_stdout: bool = True,
        universal_newlines: bool = False,
        shell: bool | None = None,
        env: dict[str, str] | None = None,
        max_chunk_size: int | None = None,
        strip_newline_in_stdout: bool = True,
        **popen_kwargs: Any,
    ) -> Any:
        if isinstance(command, str | bytes) or command[0] != GIT:
            raise TypeError("GitPython runs git only as an argument list, through tracker.git")
        if shell or popen_kwargs or output_stream is not None or universal_newlines:
            raise TypeError("shells, output streams and Popen options are not for GitPython")
        if not with_stdout:
            raise TypeError("GitPython's commands keep their output here")
        args = [str(a) for a in command[1:]]
        extra = {**self._environment, **(env or {})}
        if as_process:
            return self._reader(args, istream, extra)
        if istream is not None:
            raise TypeError("GitPython's commands take no input stream here")
        result = run_git(
            args,
            git_dir=self._git_dir,
            cwd=None if self._git_dir else self._working_dir,
            env=extra,
            timeout=kill_after_timeout,
            check=with_exceptions,
        )
        stdout: bytes | str = result.stdout
        if strip_newline_in_stdout and result.stdout.endswith(b"\n"):
            stdout = result.stdout[:-1]
        if stdout_as_string:
            stdout = stdout.decode("utf-8", errors="replace")
        if with_extended_output:
            return result.returncode, stdout, result.stderr.removesuffix("\n")
        return stdout

    def _reader(self, args: list[str], istream: Any, extra: dict[str, str]) -> Any:
        """A persistent ``cat-file --batch`` (contents) or ``--batch-check`` (names): the only
        long-lived git GitPython may start, bounded by Repository's watchdog. Neither fetches
        (see the module docstring); stderr goes to a file, which no warning can fill."""
        if args not in _READERS or istream != subprocess.PIPE or self._git_dir is None:
            raise TypeError(f"GitPython may keep only cat-file readers running, not {args}")
        env = {
            **extra,
            "GIT_CONFIG_GLOBAL": os.devnull,  # nobody's promisor remotes, nobody's settings
            "GIT_NO_LAZY_FETCH": "1",
        }
        if args == ["cat-file", "--batch"]:
            # Contents: the objects of the repository seen from a git directory without
            # remotes, where an object not fetched yet is missing like any other.
            env["GIT_DIR"] = str(_stand_in_git_dir())
            env["GIT_OBJECT_DIRECTORY"] = os.path.join(self._common_dir, "objects")
        else:
            # Names (refs, commit ids): in the repository itself, for its refs. Commits and
            # trees are all there in a blob:none mirror; should git still look for an object
            # elsewhere, no protocol is allowed (for a git without GIT_NO_LAZY_FETCH).
            env["GIT_DIR"] = self._git_dir
            env["GIT_ALLOW_PROTOCOL"] = "none"
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the reader)
        proc = popen_git(args, env=env, stderr=errors)
        proc.errors = errors  # type: ignore[attr-defined]
        return self.AutoInterrupt(proc, [GIT, *args])

    def readers(self) -> list[subprocess.Popen]:
        """The persistent reader processes running now."""
        running = [self.cat_file_all, self.cat_file_header]
        return [r.proc for r in running if r is not None and r.proc is not None]


class _Repo(git.Repo):
    GitCommandWrapperType = _GateGit


class _Watchdog:
    """A thread that calls `kill` when an exchange outlives its deadline: one thread per
    Repository, started at its first exchange and woken only when it must look at a nearer
    deadline (a threading.Timer per exchange cost more than the exchange itself: 170 against
    110 microseconds)."""

    def __init__(self, kill) -> None:
        self._kill = kill
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._sleeping_until: float | None = None  # None: until woken
        self._thread: threading.Thread | None = None
        self._closed = False
        self.fired = False

    def arm(self, seconds: float) -> None:
        with self._cond:
            self._deadline = time.monotonic() + seconds
            self.fired = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="git-watchdog", daemon=True)
                self._thread.start()
            elif self._sleeping_until is None or self._sleeping_until > self._deadline:
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._deadline is not None and self._deadline <= now:
                    self.fired, self._deadline = True, None
                    self._kill()
                self._sleeping_until = self._deadline
                self._cond.wait(None if self._deadline is None else self._deadline - now)


_STAND_IN = {"HEAD": "ref: refs/heads/main\n", "config": "[core]\n\tbare = true\n"}
_stand_in_lock = threading.Lock()
_stand_in: Path | None = None


def _is_stand_in(path: Path) -> bool:
    """`path` is a stand-in git directory of this user's, which nobody else can change."""
    try:
        st = os.lstat(path)
        return (
            stat.S_ISDIR(st.st_mode)
            and st.st_uid == os.getuid()
            and not st.st_mode & 0o077
            and (path / "refs").is_dir()
            and all((path / n).read_text() == text for n, text in _STAND_IN.items())
        )
    except OSError:
        return False


def _stand_in_git_dir() -> Path:
    """An empty bare git directory with no remotes, for the contents readers: they take the
    objects from the repository and everything else from here. One per user, in the temp
    directory, kept (a directory per process would stay behind from every Celery child, which
    exits without running atexit); a private one when someone else holds that name."""
    global _stand_in
    with _stand_in_lock:
        if _stand_in is not None and _is_stand_in(_stand_in):
            return _stand_in
        path = Path(tempfile.gettempdir()) / f"forkhealth-reader-{os.getuid()}"
        if not _is_stand_in(path):
            fresh = Path(tempfile.mkdtemp(prefix="forkhealth-reader-"))  # mode 0700
            (fresh / "refs").mkdir()
            for name, text in _STAND_IN.items():
                (fresh / name).write_text(text)
            with contextlib.suppress(OSError):
                os.replace(fresh, path)  # atomic; refused when another's or not empty
            if _is_stand_in(path):
                shutil.rmtree(fresh, ignore_errors=True)
            else:
                path = fresh
        _stand_in = path
        return path


def _config_key(key: str) -> tuple[str, str]:
    """git's ``section.subsection.name`` as GitPython's (section, option)."""
    section, _, rest = key.partition(".")
    subsection, _, option = rest.rpartition(".")
    if not option:
        raise ValueError(f"not a config key: {key!r}")
    return (f'{section} "{subsection}"' if subsection else section), option


class Repository:
    """One open repository: `repo` is GitPython's Repo over the gate. The reads below bound
    each exchange with the readers by `timeout` seconds (then the readers are killed and
    GitError raised); an object the repository lacks is None, not an error. Open one with
    `open_repo()`, which closes it (readers and watchdog) at the end of its block."""

    def __init__(self, path: Path | str, *, timeout: float | None = None) -> None:
        self.path = Path(path)
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        for name in ("GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"):
            if name in os.environ:
                raise GitError(f"{name} is set: GitPython would read that repository instead")
        try:
            self.repo = _Repo(os.fspath(path), expand_vars=False)
        except (git.exc.NoSuchPathError, git.exc.InvalidGitRepositoryError):
            raise GitError(f"not a git repository: {path}") from None
        runner: _GateGit = self.repo.git  # type: ignore[assignment]
        for name in _INHERITED:
            runner._environment.pop(name, None)
        runner._git_dir = self.repo.git_dir
        runner._common_dir = self.repo.common_dir
        self._git = runner
        self._watchdog = _Watchdog(self._kill_readers)
        # Where objects the repository lacks are fetched from: remote name -> its URL with
        # credentials, the upstream's first (`use_remotes`); empty: every promisor remote of
        # the repository, in config order, without credentials.
        self.remotes: dict[str, RemoteURL | None] = {}
        # Objects no remote gave in this block (id -> what the remotes said), asked for once.
        self.unavailable: dict[str, str] = {}
        self.fetches = 0  # git fetches of missing objects made in this block

    def close(self) -> None:
        """Stop the readers (GitPython's Repo.close) and the watchdog."""
        self._watchdog.close()
        self.repo.close()

    def _kill_readers(self) -> None:
        for proc in self._git.readers():
            kill_git(proc)

    # --- reading objects ------------------------------------------------------------------

    @contextlib.contextmanager
    def _exchange(self) -> Iterator[None]:
        """One bounded exchange with the readers: past `timeout` they are killed; a reader
        that stopped is reported as GitError and started afresh by the next exchange."""
        self._watchdog.arm(self.timeout)
        try:
            yield
        except (_Stopped, *_MISSING, OSError):
            message = self._stopped_message(self._watchdog.fired)
            self._git.clear_cache()
            raise GitError(message) from None
        finally:
            self._watchdog.disarm()
        if self._watchdog.fired:  # killed after the last answer: the answers stand
            self._git.clear_cache()

    def _miss(self, exc: Exception) -> None:
        """After GitPython found no object: return when the object is missing, raise when
        the reader stopped (an empty answer is GitPython's "SHA is empty")."""
        if (
            self._watchdog.fired
            or "SHA is empty" in str(exc)
            or any(proc.poll() is not None for proc in self._git.readers())
        ):
            raise _Stopped from exc

    def _stopped_message(self, timed_out: bool) -> str:
        if timed_out:
            return f"git cat-file in {self.path} timed out after {self.timeout:.0f}s"
        last = "no message"
        for proc in self._git.readers():
            errors = getattr(proc, "errors", None)
            if proc.poll() is not None and errors is not None:
                with contextlib.suppress(OSError, ValueError):
                    errors.seek(0)
                    lines = redact(errors.read().decode("utf-8", errors="replace")).strip()
                    last = lines.splitlines()[-1] if lines else last
        return f"git cat-file in {self.path} stopped: {last}"

    def read_objects(self, names: Sequence[str], *, fetch: bool = True) -> list[bytes | None]:
        """Contents of objects named ``<id>`` or ``<id>:<path>``, None for each one the
        repository lacks. In a partial clone, with `fetch`, the missing ones are fetched in
        one batch per remote (`fetch`); one no remote gives stays None and is noted."""
        for name in names:
            check_sha(name.split(":", 1)[0])
            if "\n" in name:
                raise GitError("object names cannot contain newlines")
        found: list[bytes | None] = []
        with self._exchange():
            for name in names:
                try:
                    found.append(self._git.get_object_data(name)[3])
                except _MISSING as exc:
                    self._miss(exc)
                    found.append(None)
        missing = [i for i, data in enumerate(found) if data is None]
        if fetch and missing and self.is_partial_clone():
            ids = self._object_ids([names[i] for i in missing])
            order = self.fetch_order()
            reasons = self.fetch(dict.fromkeys(ids.values(), order), paths=_where(ids))
            again = [i for i in missing if names[i] in ids and ids[names[i]] not in reasons]
            fetched = self.read_objects([names[i] for i in again], fetch=False)
            for i, data in zip(again, fetched, strict=True):
                found[i] = data
        return found

    def _object_ids(self, names: Sequence[str]) -> dict[str, str]:
        """Object id of each name (``<id>``, or ``<id>:<path>`` looked up in the commit's
        trees, which a blob:none clone has); names of nothing (no such commit or path) left
        out."""
        ids = {}
        for name in names:
            sha, _, path = name.partition(":")
            if not path:
                ids[name] = sha
                continue
            commit = self.commit(sha)
            if commit is None:
                continue
            with self._exchange():
                try:
                    ids[name] = (commit.tree / path.strip("/")).hexsha
                except (KeyError, TypeError):
                    continue
        return ids

    def commit(self, sha: str) -> git.Commit | None:
        """Commit `sha` as GitPython's Commit, its fields read; None when it is missing."""
        sha = check_sha(sha)
        with self._exchange():
            try:
                commit = self.repo.commit(sha)
                commit.committed_date  # noqa: B018 (reads the object now, inside the exchange)
            except _MISSING as exc:
                self._miss(exc)
                return None
        return commit

    def resolve(self, rev: str) -> str | None:
        """The commit id that revision `rev` (a ref, a commit or tag id, ``<rev>~N``) names,
        tags peeled, as git resolves it; None when it names no commit here."""
        if not isinstance(rev, str) or not rev or rev.startswith("-") or "\n" in rev:
            raise UnsafeGitInput(f"not a revision: {str(rev)[:60]!r}")
        with self._exchange():
            try:
                sha = self._git.get_object_header(f"{rev}^{{commit}}")[0]
            except _MISSING as exc:
                self._miss(exc)
                return None
        return sha.decode("ascii") if isinstance(sha, bytes) else sha

    def has_commit(self, sha: str) -> bool:
        """True when commit `sha` (or a tag of one) is in the repository; never fetched."""
        return self.resolve(check_sha(sha)) is not None

    def tree_files(self, sha: str, path: str) -> list[str]:
        """Paths of the files under directory `path` at commit `sha` (``ls-tree -r
        --name-only``: blobs and submodules, in git's order); empty when either is missing."""
        commit = self.commit(sha)
        if commit is None:
            return []
        with self._exchange():
            try:
                item = commit.tree / path.strip("/") if path.strip("/") else commit.tree
            except (KeyError, TypeError):
                return []
            if item.type != "tree":
                return [item.path]
            return [i.path for i in item.traverse(branch_first=False) if i.type != "tree"]

    # --- config ---------------------------------------------------------------------------

    def config(self, keys: Iterable[str]) -> dict[str, str | None]:
        """The repository's own config values (its config file, as GitPython reads it) of
        ``section[.subsection].name`` keys; None for an unset key."""
        reader = self.repo.config_reader("repository")
        values: dict[str, str | None] = {}
        for key in keys:
            section, option = _config_key(key)
            values[key] = (
                reader.get(section, option) if reader.has_option(section, option) else None
            )
        return values

    # --- objects a partial clone lacks -----------------------------------------------------

    def use_remotes(self, remotes: Mapping[str, RemoteURL | None]) -> None:
        """Fetch objects the repository lacks from `remotes` (name -> URL with credentials),
        in that order, the upstream's first, for the rest of the block."""
        for name in remotes:
            if not name or name.startswith("-") or any(c.isspace() for c in name):
                raise UnsafeGitInput(f"not a remote name: {name[:60]!r}")
        self.remotes = dict(remotes)

    def fetch_order(self) -> list[str]:
        """The remotes to ask for a missing object, in order: those of `use_remotes`, else
        the promisor remotes in config order (the order git asks them)."""
        if self.remotes:
            return list(self.remotes)
        reader = self.repo.config_reader("repository")
        return [
            section[len('remote "') : -1]
            for section in reader.sections()
            if section.startswith('remote "')
            and reader.has_option(section, "promisor")
            and reader.get(section, "promisor").lower() in ("true", "yes", "on", "1")
        ]

    def missing(self, oids: Iterable[str]) -> set[str]:
        """The objects among `oids` the repository lacks (not fetched yet, or lost), found
        without fetching: one ``cat-file --batch-check`` through the gate, run from the
        contents readers' stand-in git directory, which has no remotes."""
        unique = list(dict.fromkeys(check_sha(oid) for oid in oids))
        if not unique:
            return set()
        out = run_git(
            ["cat-file", "--batch-check=%(objectname)"],
            input="".join(f"{oid}\n" for oid in unique).encode(),
            timeout=self.timeout,
            env={
                "GIT_DIR": str(_stand_in_git_dir()),
                "GIT_OBJECT_DIRECTORY": os.path.join(self.repo.common_dir, "objects"),
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_NO_LAZY_FETCH": "1",
            },
        ).text
        return {line.split()[0] for line in out.splitlines() if line.endswith(" missing")}

    def fetch(
        self, wanted: Mapping[str, Sequence[str]], paths: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Fetch the objects `wanted` (id -> the remotes to ask, in order) that the repository
        lacks, each remote asked once for the whole batch it is first in line for. An object
        a remote refuses (it does not have it) is asked of the next. After MAX_REFUSALS
        refusals the rest of the batch goes on to the next remote too, and comes back to this
        one at the end, once (a batch meant for another remote is refused object after
        object). Returns id -> reason for the objects no remote gave (`paths` says where each
        was wanted, for the reason); they are also noted for `unavailable_since` and not asked
        for again in this block.

        Raises GitError when a fetch fails for any other reason (timeout, network, refused
        protocol): the objects may well be there, later."""
        todo = {oid: list(r) for oid, r in wanted.items() if oid not in self.unavailable}
        lacking = self.missing(todo)
        todo = {oid: r for oid, r in todo.items() if oid in lacking}
        answers: dict[str, list[str]] = {oid: [] for oid in todo}
        deferred: set[tuple[str, str]] = set()  # (object, remote) put back at the end once
        while todo:
            for oid in [oid for oid, r in todo.items() if not r]:
                del todo[oid]
                self.unavailable[oid] = "; ".join(answers[oid]) or "no remote to ask"
            if not todo:
                break
            remote = next(iter(todo.values()))[0]
            batch = [oid for oid, r in todo.items() if r[0] == remote]
            refusals = 0
            while batch:
                refused = self._fetch_batch(remote, batch)
                if refused is None:
                    for oid in batch:
                        del todo[oid]
                    break
                moving = refused if refusals < MAX_REFUSALS else set(batch)
                refusals += 1
                for oid in moving:
                    todo[oid].pop(0)
                    if oid in refused:
                        answers[oid].append(f"{remote} does not have it")
                    elif (oid, remote) not in deferred:
                        deferred.add((oid, remote))
                        todo[oid].append(remote)
                    else:
                        answers[oid].append(f"{remote} refused every batch with it")
                batch = [oid for oid in batch if oid not in moving]
        paths = paths or {}
        reasons = {
            oid: f"{paths.get(oid, 'object')} (blob {oid[:12]}): {self.unavailable[oid]}"
            for oid in wanted
            if oid in self.unavailable
        }
        _noted.extend(reasons.items())
        return reasons

    def _fetch_batch(self, remote: str, batch: Sequence[str]) -> set[str] | None:
        """One ``git fetch`` of objects by id from `remote`, as git's own lazy fetch asks
        (no negotiation, no refs, no tags), without writing the commit-graph or starting
        maintenance. None when fetched; the ids the remote refused when it lacks some."""
        result = run_git(
            [
                *("-c", "fetch.negotiationAlgorithm=noop", "-c", "fetch.writeCommitGraph=false"),
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--no-auto-maintenance",
                "--filter=blob:none",  # what is asked for by id comes all the same
                "--stdin",
                remote,
            ],
            git_dir=self.path,
            input="".join(f"{oid}\n" for oid in batch).encode(),
            timeout=self.timeout,
            check=False,
            remote=self.remotes.get(remote),
        )
        if result.returncode == 0:
            self.fetches += 1
            return None
        refused = set(_REFUSED.findall(result.stderr)) & set(batch)
        if refused:
            return refused
        raise GitError(
            f"git fetch of {len(batch)} missing objects from {remote} failed "
            f"(exit {result.returncode}): {failure_reason(result.stderr)}",
            returncode=result.returncode,
            stderr=result.stderr,
        )

    def is_partial_clone(self) -> bool:
        """True when the repository has a promisor remote (objects may arrive on demand)."""
        reader = self.repo.config_reader("repository")
        if reader.has_option("extensions", "partialclone"):
            return True
        return any(
            section.startswith('remote "')
            and reader.has_option(section, "promisor")
            and reader.get(section, "promisor").lower() in ("true", "yes", "on", "1")
            for section in reader.sections()
        )


def _where(ids: Mapping[str, str]) -> dict[str, str]:
    """Object id -> where it was wanted, from names (``<id>:<path>``) -> ids."""
    return {
        oid: f"{name.partition(':')[2]} at {name[:12]}" if ":" in name else "object"
        for name, oid in ids.items()
    }


class _Noted(threading.local):
    """This thread's latest unavailable objects, as (id, reason), and how many ever were."""

    def __init__(self) -> None:
        self.items: deque[tuple[str, str]] = deque(maxlen=1000)
        self.count = 0

    def extend(self, items: Iterable[tuple[str, str]]) -> None:
        for item in items:
            self.items.append(item)
            self.count += 1


_noted = _Noted()


def unavailable_mark() -> int:
    """A mark for `unavailable_since`."""
    return _noted.count


def unavailable_since(mark: int) -> dict[str, str]:
    """The objects this thread wanted and no remote gave since `mark` (id -> reason): what
    a figure computed since then could not read, in whichever repository it read."""
    recent = list(_noted.items)
    found: dict[str, str] = {}
    for oid, reason in recent[len(recent) - min(_noted.count - mark, len(recent)) :]:
        found.setdefault(oid, reason)  # where it was first wanted
    return found


_local = threading.local()


@contextlib.contextmanager
def open_repo(path: Path | str, *, timeout: float | None = None) -> Iterator[Repository]:
    """The repository at `path` (its git directory) for the block. Within an `open_repo` of
    the same path in this thread, the same Repository (the outer one's timeout applies); the
    outermost block closes it and stops its readers."""
    key = os.path.abspath(path)
    shared: dict[str, Repository] = _local.__dict__.setdefault("repositories", {})
    if key in shared:
        yield shared[key]
        return
    repository = Repository(path, timeout=timeout)
    shared[key] = repository
    try:
        yield repository
    finally:
        del shared[key]
        repository.close()


def init_bare(path: Path | str) -> None:
    """Create an empty bare repository at `path` (``git init --bare`` by GitPython's command
    runner, through the gate). Not Repo.init, which expands ``$VARIABLES`` in the path."""
    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    _GateGit(os.fspath(path)).init(bare=True, quiet=True)


def configure(path: Path | str, values: dict[str, str]) -> list[str]:
    """Set config `values` (``section[.subsection].name`` -> value) in the repository at
    `path`, with ``git config`` through the gate for each value that differs from the one
    there; returns the keys written (none on a repository already configured)."""
    with open_repo(path) as repository:
        current = repository.config(values)
    written = []
    for key, value in values.items():
        if current[key] != value:
            run_git(["config", "--end-of-options", key, value], git_dir=path)
            written.append(key)
    return written


def commit_time(commit: git.Commit) -> datetime:
    """A GitPython commit's committer time, in UTC."""
    return datetime.fromtimestamp(commit.committed_date, UTC)
