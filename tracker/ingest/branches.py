"""Which refs reach each commit of one walk over many tips, told by the walk itself.

The ingestion reads every ref that moved in one ``git log --date-order`` (tracker.ingest.
history): the new tips, with the commits already ingested excluded. ``--date-order`` shows no
commit before all of its children in the walk, so the refs that reach a commit through the
walk are all known when it is shown, and are handed on to its parents then. That gives, for
each commit, in one pass and in memory bounded by the walk's frontier:

- whether main reaches it (then it is a main commit, and so is everything below it);
- otherwise the release branches that reach it: the commit is one of their own commits,
  those ``git log main..<branch>`` lists.

Terms:

- *bits*: a set of refs as an integer, bit ``i`` for the walk's ref ``i``; bit 0 (`MAIN`) is
  main. Thousands of refs make a large integer, but only commits off main carry more than
  `MAIN`, and only while the walk is among them.
- *entry point*: a commit the walk leads to without showing it: an excluded commit, parent of
  a shown one, or a tip that is excluded itself (a bare branch point on main). A ref whose
  entry points are all on main, or its own previous tip, has all its own commits from this
  walk and the ones recorded before; any other (a branch cut from another branch's known
  commits, a branch rewritten) is *unsettled*: its own commits come from a walk of its own
  (`git rev-list --parents <tips> --not <main>`, read with the same class).

Pure: no Django, no git.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

__all__ = ["MAIN", "RefSets", "bit_indices"]

MAIN = 1


def bit_indices(bits: int) -> Iterator[int]:
    """The indices of the bits set in `bits`, lowest first."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


class RefSets:
    """The refs reaching each commit of a walk, commit by commit, children before parents.

    `tips` maps each tip the walk starts from to the bits of the refs pointing at it.
    """

    def __init__(self, tips: Mapping[str, int]) -> None:
        self._pending: dict[str, int] = dict(tips)

    def take(self, sha: str, parents: Sequence[str]) -> int:
        """The bits of the refs reaching `sha`, shown now; hands them to its parents.

        A commit main reaches gets `MAIN` alone: the refs cut from it are of no interest
        below it, and its parents get `MAIN` too.
        """
        pending = self._pending
        bits = pending.pop(sha, 0)
        if bits & MAIN:
            bits = MAIN
        for parent in parents:
            pending[parent] = pending.get(parent, 0) | bits
        return bits

    def entry_points(self) -> dict[str, int]:
        """Commits handed refs but never shown (the walk is over): sha -> bits reaching it."""
        return dict(self._pending)

    def questions(self, previous: Mapping[int, str]) -> set[str]:
        """Commits whose place decides whether a moved ref is settled and that only the
        recorded history can tell: is this commit on main?

        `previous` maps a moved ref's bit index to the tip it had before (present in the
        repository). Asked: entry points main does not reach, unless every ref reaching one
        had it as its previous tip; and previous tips their own ref did not reach.
        """
        entries = self._pending
        asked = {
            sha
            for sha, bits in entries.items()
            if not bits & MAIN and any(previous.get(i) != sha for i in bit_indices(bits))
        }
        for index, sha in previous.items():
            bits = entries.get(sha, 0)
            if not bits & MAIN and not bits >> index & 1:
                asked.add(sha)
        return asked

    def unsettled(
        self, refs: Iterable[int], previous: Mapping[int, str | None], on_main: set[str]
    ) -> set[int]:
        """The refs among `refs` (bit indices of moved refs other than main) whose own commits
        this walk cannot tell, given which of the `questions` are on main.

        `previous` maps a ref that had a tip before to it, or to None when that commit is no
        longer in the repository. A ref is settled when every entry point it reaches is on
        main or is its own previous tip, and that previous tip, if any, is among them or on
        main: its own commits are then those recorded before and those this walk showed.
        """
        on_main = on_main | {sha for sha, bits in self._pending.items() if bits & MAIN}
        reached: dict[int, set[str]] = {}
        for sha, bits in self._pending.items():
            for index in bit_indices(bits & ~MAIN):
                reached.setdefault(index, set()).add(sha)
        result: set[int] = set()
        for index in refs:
            old = previous.get(index, "")
            entries = reached.get(index, set())
            if (
                old is None
                or any(sha != old and sha not in on_main for sha in entries)
                or (old and old not in entries and old not in on_main)
            ):
                result.add(index)
        return result
