"""A small writer for `git fast-import` streams.

The generator plans history in memory and writes it here; fast-import turns the stream into
objects at a rate of tens of thousands of commits a second, so a 1,000,000-commit upstream takes
minutes rather than hours.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO


@dataclass(frozen=True)
class Person:
    name: str
    email: str

    def ident(self, when: int) -> bytes:
        return f"{self.name} <{self.email}> {when} +0000".encode()


def blob_sha(content: bytes) -> str:
    """The git object id of a blob with `content` (used in generated patch files)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FastImportWriter:
    """Writes commands to a fast-import stdin. Marks are handed out by the caller."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def _data(self, payload: bytes) -> None:
        self.out.write(b"data %d\n" % len(payload))
        self.out.write(payload)
        self.out.write(b"\n")

    def commit(
        self,
        ref: str,
        mark: int,
        *,
        author: Person,
        author_time: int,
        committer: Person,
        commit_time: int,
        message: str | bytes,
        parent: str | None = None,
        merges: tuple[str, ...] = (),
        files: dict[str, bytes | None] | None = None,
        entries: list[tuple[str, str, str]] | None = None,
        deleteall: bool = False,
    ) -> None:
        """One commit. `parent`/`merges` are ':mark' or sha strings; `files` maps paths to
        contents (None deletes); `trees` sets whole directories from existing tree ids."""
        out = self.out
        out.write(b"commit %s\nmark :%d\n" % (ref.encode(), mark))
        out.write(b"author " + author.ident(author_time) + b"\n")
        out.write(b"committer " + committer.ident(commit_time) + b"\n")
        self._data(message.encode() if isinstance(message, str) else message)
        if parent is not None:
            out.write(b"from %s\n" % parent.encode())
        for merge in merges:
            out.write(b"merge %s\n" % merge.encode())
        if deleteall:
            out.write(b"deleteall\n")
        for mode, object_id, path in entries or ():
            out.write(b"M %s %s %s\n" % (mode.encode(), object_id.encode(), path.encode()))
        for path, content in (files or {}).items():
            if content is None:
                out.write(b"D %s\n" % path.encode())
            else:
                out.write(b"M 100644 inline %s\n" % path.encode())
                self._data(content)
        out.write(b"\n")

    def tag(self, name: str, target: str, *, tagger: Person, when: int, message: str) -> None:
        """An annotated tag refs/tags/`name` on `target` (':mark' or sha)."""
        self.out.write(b"tag %s\nfrom %s\n" % (name.encode(), target.encode()))
        self.out.write(b"tagger " + tagger.ident(when) + b"\n")
        self._data(message.encode())

    def reset(self, ref: str, target: str) -> None:
        self.out.write(b"reset %s\nfrom %s\n\n" % (ref.encode(), target.encode()))

    def done(self) -> None:
        self.out.write(b"done\n")
