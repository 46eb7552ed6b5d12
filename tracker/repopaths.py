"""Paths inside a repository taken from registration: a fork's pinned-version file and patches
folder, an upstream's version file.

git reads them at a commit (``<sha>:<path>``) and after ``--`` as pathspecs, so a path is
relative to the repository's root and must stay inside it: ``../x``, ``/etc/passwd`` and
``-x`` are refused when a fork is registered, as hostile URLs and refs are (tracker.git).
"""

from __future__ import annotations

import re

# The model fields hold at most this many characters.
MAX_LENGTH = 200

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeRepoPath(ValueError):
    """A path that does not name a file or folder inside a repository."""


def check_repo_path(path: str, *, directory: bool = False) -> str:
    """Return `path` if it names a file (with `directory`, a folder, which may end in one
    '/') inside a repository, relative to its root: components separated by '/', none empty,
    '.' or '..'; not starting with '-' (git would read an option) or ':' (pathspec magic);
    no backslash, NUL or other control character; at most `MAX_LENGTH` characters.

    Raises `UnsafeRepoPath` saying what is wrong, with an example of a good path.
    """
    if not isinstance(path, str) or not path:
        raise UnsafeRepoPath("path is empty")
    problem = None
    parts = (path.removesuffix("/") if directory else path).split("/")
    if len(path) > MAX_LENGTH:
        problem = f"is longer than {MAX_LENGTH} characters"
    elif path.startswith("/"):
        problem = "is absolute (give it relative to the repository's root)"
    elif path.startswith("-"):
        problem = "starts with '-'"
    elif path.startswith(":"):
        problem = "starts with ':'"
    elif _CONTROL.search(path):
        problem = "contains a control character"
    elif "\\" in path:
        problem = "contains a backslash (separate folders with '/')"
    elif path != path.strip():
        problem = "starts or ends with a space"
    elif ".." in parts:
        problem = "leaves the repository through '..'"
    elif "." in parts:
        problem = "has a '.' component"
    elif "" in parts:
        problem = "has an empty component ('//' or a trailing '/')"
    if problem:
        example = "patches" if directory else "chrome/VERSION"
        raise UnsafeRepoPath(
            f"path {path!r} is not allowed: it {problem}; expected a path inside the "
            f"repository such as {example}"
        )
    return path
