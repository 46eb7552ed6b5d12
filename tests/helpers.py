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
