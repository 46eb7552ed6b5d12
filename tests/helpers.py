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


# --- a small non-Chromium world: an upstream versioned by vX.Y.Z tags and a fork of it -------

_IDENTITY = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com"}
_IDENTITY |= {"GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
TAG_WORLD_START = 1_767_225_600  # 2026-01-01 00:00 UTC
_DAY = 86400


class _Builder:
    """Commits, branches and annotated tags written straight into a bare repository."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.files: dict[str, dict[str, str]] = {}  # commit -> its files

    def commit(self, message: str, parent: str | None, day: int, **changes: str) -> str:
        files = {**(self.files[parent] if parent else {}), **changes}
        entries = []
        for path, text in sorted(files.items()):
            blob = run_git(["hash-object", "-w", "--stdin"], git_dir=self.repo, input=text.encode())
            entries.append(f"100644 blob {blob.text.strip()}\t{path}\n")
        tree = run_git(["mktree"], git_dir=self.repo, input="".join(entries).encode()).text.strip()
        when = f"{TAG_WORLD_START + day * _DAY} +0000"
        env = {**_IDENTITY, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-m", message]
        sha = run_git(args, git_dir=self.repo, env=env).text.strip()
        self.files[sha] = files
        return sha

    def ref(self, name: str, sha: str) -> None:
        git(self.repo, "update-ref", name, sha)

    def tag(self, name: str, sha: str, day: int) -> None:
        when = f"{TAG_WORLD_START + day * _DAY} +0000"
        env = {**_IDENTITY, "GIT_COMMITTER_DATE": when}
        run_git(["tag", "-a", "-m", name, name, sha], git_dir=self.repo, env=env)


def add_tag_upstream(world: dict) -> None:
    """Register the tag world's upstream with `manage.py add_upstream`: "tool", versioned by
    its release tags (release candidates excluded), release branches ``release-*``."""
    from django.core.management import call_command

    call_command(
        "add_upstream",
        "tool",
        "--name=Tool",
        "--url",
        world["upstream"]["path"],
        "--main-ref=refs/heads/master",
        "--release-branches=refs/heads/release-*",
        "--tags=refs/tags/v*, !refs/tags/*-rc*",
        "--version-scheme=tags",
    )


def build_tag_world(root: Path) -> dict:
    """An upstream "tool" versioned by its tags, as git is, and a fork "tool-win" that, as git
    for Windows does, carries every upstream tag beside its own ``v*.windows.*`` ones.

    Upstream ``master`` is u1..u10 (a day apart), tagged v1.0.0 (u1), v1.1.0 (u3), v1.2.0
    (u5), v2.0.0-rc1 (u7) and v2.0.0 (u9); ``maint`` is u3 + m1 (v1.1.1); ``release-2.0``
    is u9 + r1. The fork's ``main`` is u3 + f1 (tagged v1.1.0-rc1.windows.1) + f2
    (v1.1.0.windows.1); its ``maint`` is m1 + g1 (v1.1.1.windows.1); it also tags upstream's
    own u3 as v1.1.0.windows.0, which is no fork release (upstream's commit).
    """
    root.mkdir(parents=True, exist_ok=True)
    up_path, fork_path = root / "tool.git", root / "tool-win.git"
    for path in (up_path, fork_path):
        run_git(["init", "--quiet", "--bare", str(path)])
        git(path, "symbolic-ref", "HEAD", "refs/heads/master")
    up = _Builder(up_path)
    u: list[str] = []
    for i in range(1, 11):
        u.append(up.commit(f"upstream {i}", u[-1] if u else None, i, **{"core.c": f"core {i}\n"}))
    tags = {"v1.0.0": 1, "v1.1.0": 3, "v1.2.0": 5, "v2.0.0-rc1": 7, "v2.0.0": 9}
    for name, n in tags.items():
        up.tag(name, u[n - 1], n)
    m1 = up.commit("maint fix", u[2], 4, **{"core.c": "core 3 fixed\n"})
    up.tag("v1.1.1", m1, 4)
    r1 = up.commit("release 2.0 fix", u[8], 10, **{"core.c": "core 9 fixed\n"})
    up.ref("refs/heads/master", u[-1])
    up.ref("refs/heads/maint", m1)
    up.ref("refs/heads/release-2.0", r1)

    git(
        fork_path,
        "fetch",
        "--quiet",
        str(up_path),
        "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*",
    )
    fork = _Builder(fork_path)
    fork.files.update(up.files)
    f1 = fork.commit("windows: support drive letters", u[2], 5, **{"win.c": "drives\n"})
    f2 = fork.commit("windows: long paths", f1, 6, **{"win.c": "drives\nlong paths\n"})
    g1 = fork.commit("windows: support drive letters (maint)", m1, 6, **{"win.c": "drives\n"})
    fork.ref("refs/heads/main", f2)
    fork.ref("refs/heads/maint", g1)
    git(fork_path, "symbolic-ref", "HEAD", "refs/heads/main")
    git(fork_path, "update-ref", "-d", "refs/heads/master")
    git(fork_path, "update-ref", "-d", "refs/heads/release-2.0")
    fork.tag("v1.1.0-rc1.windows.1", f1, 5)
    fork.tag("v1.1.0.windows.1", f2, 6)
    fork.tag("v1.1.1.windows.1", g1, 7)
    fork.tag("v1.1.0.windows.0", u[2], 4)
    return {
        "path": str(root),
        "upstream": {
            "path": str(up_path),
            "master": u,
            "maint": m1,
            "release": r1,
            "tags": {**{name: u[n - 1] for name, n in tags.items()}, "v1.1.1": m1},
        },
        "fork": {
            "path": str(fork_path),
            "main": [f1, f2],
            "maint": g1,
            "own_tags": ["v1.1.0-rc1.windows.1", "v1.1.0.windows.1", "v1.1.1.windows.1"],
        },
    }


def serve(repo: Path | str) -> None:
    """Let `repo` serve as GitHub and googlesource do: partial-clone filters, and wants of
    any object by id (what a promisor's lazy fetch sends)."""
    git(repo, "config", "uploadpack.allowFilter", "true")
    git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")


def lose_object(repo: Path | str, oid: str) -> None:
    """Make `repo` lack object `oid`, as a mirror snapshot that left out a large file does:
    its packs are unpacked into loose objects and that one object's file is removed."""
    objects = Path(git(repo, "rev-parse", "--git-path", "objects").strip())
    if not objects.is_absolute():
        objects = Path(repo) / objects
    for pack in sorted((objects / "pack").glob("*.pack")):
        data = pack.read_bytes()
        for part in pack.parent.glob(pack.stem + ".*"):
            part.unlink()
        run_git(["unpack-objects", "-q"], git_dir=repo, input=data)
    (objects / oid[:2] / oid[2:]).unlink()


def packs(repo: Path | str) -> int:
    """Pack files in a repository."""
    return int(git(repo, "count-objects", "-v").split("packs: ")[1].split()[0])


_WHEN = 1_700_000_000
VERSION_125 = "MAJOR=125\nMINOR=0\nBUILD=6422\nPATCH=0\n"


def fast_import(repo: Path | str, ref: str, parent: str, commits: list[dict[str, str]]) -> str:
    """Commits on `ref` after `parent` (empty: a root), each a {path: text}; the new tip."""
    from tracker.git import git_input_stream

    stream = []
    for n, files in enumerate(commits):
        message = f"{ref} change {n}\n"
        stream.append(
            f"commit {ref}\ncommitter A <a@example.com> {_WHEN + n * 60} +0000\n"
            f"data {len(message)}\n{message}"
            + (f"from {parent}\n" if parent and n == 0 else "")
            + "".join(
                f"M 644 inline {path}\ndata {len(text.encode())}\n{text}\n"
                for path, text in files.items()
            )
            + "\n"
        )
    with git_input_stream(["fast-import", "--quiet"], git_dir=repo) as stdin:
        stdin.write("".join(stream).encode())
    return git(repo, "rev-parse", ref).strip()


def two_remote_world(root: Path) -> dict:
    """Servers `upstream.git` and `fork.git` under `root` (see `serve`), from a common base;
    since, the fork changed a, b, c and e.txt, one commit each, and upstream a, b, c and d.txt.
    Returns the servers' paths and the ids of the base, the fork tip ("tip") and the
    upstream tip ("up")."""
    from tracker.gitrepo import init_bare

    upstream = root / "upstream.git"
    init_bare(upstream)
    files = {f"{name}.txt": f"{name} line 1\nline 2\nline 3\n" for name in "abcde"}
    base = fast_import(upstream, "refs/heads/main", "", [{**files, "chrome/VERSION": VERSION_125}])
    fork = root / "fork.git"
    run_git(["clone", "--quiet", "--bare", str(upstream), str(fork)])
    changes = [{f"{n}.txt": f"fork {n}\nline 2\nline 3\n"} for n in "abce"]
    tip = fast_import(fork, "refs/heads/main", base, changes)
    changes = [{f"{n}.txt": f"upstream {n}\nline 2\nline 3\n"} for n in "abcd"]
    up = fast_import(upstream, "refs/heads/main", base, changes)
    for repo in (upstream, fork):
        serve(repo)
    return {"upstream": upstream, "fork": fork, "base": base, "tip": tip, "up": up}


def two_promisor_mirror(path: Path, world: dict) -> Path:
    """A blob:none mirror at `path` of a `two_remote_world`: remotes "upstream" and
    "fork-acme", both promisors, their heads under refs/upstream/heads and
    refs/forks/acme/heads, commits and trees fetched and no blob."""
    from tracker.gitrepo import configure, init_bare

    init_bare(path)
    for name, served, namespace in (
        ("upstream", world["upstream"], "refs/upstream/heads"),
        ("fork-acme", world["fork"], "refs/forks/acme/heads"),
    ):
        configure(
            path,
            {
                f"remote.{name}.url": f"file://{served}",
                f"remote.{name}.promisor": "true",
                f"remote.{name}.partialclonefilter": "blob:none",
            },
        )
        git(path, "fetch", "--quiet", "--filter=blob:none", name, f"+refs/heads/*:{namespace}/*")
    return path
