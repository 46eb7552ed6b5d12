"""Which refs reach each commit of one walk (tracker.ingest.branches), on small hand-made
histories fed children first, as ``git log --date-order`` shows them."""

from tracker.ingest.branches import MAIN, RefSets, bit_indices

B1, B2, B3 = 1 << 1, 1 << 2, 1 << 3


def walk(sets: RefSets, commits: list[tuple[str, list[str]]]) -> dict[str, int]:
    return {sha: sets.take(sha, parents) for sha, parents in commits}


def test_bit_indices_lists_the_set_bits_lowest_first():
    assert list(bit_indices(0)) == []
    assert list(bit_indices(MAIN | B2 | 1 << 700)) == [0, 2, 700]


def test_a_commit_main_reaches_is_main_alone_and_so_is_everything_below_it():
    # main: m2 <- m1 <- m0; branch 1 cut at m1 (bare); branch 2 has b0 on m0; branch 3 = b0.
    sets = RefSets({"m2": MAIN, "m1": B1, "b0": B2 | B3})
    reached = walk(sets, [("m2", ["m1"]), ("b0", ["m0"]), ("m1", ["m0"]), ("m0", [])])
    assert reached == {"m2": MAIN, "b0": B2 | B3, "m1": MAIN, "m0": MAIN}
    assert sets.entry_points() == {}


def test_entry_points_are_the_commits_the_walk_leads_to_without_showing_them():
    # Main did not move (m5 excluded); branch 1 moved from p (excluded) to n; branch 2 is new,
    # cut from the excluded p; branch 3 is a new bare branch point on the excluded m4.
    sets = RefSets({"n": B1, "q": B2, "m4": B3})
    walk(sets, [("n", ["p"]), ("q", ["p"])])
    assert sets.entry_points() == {"p": B1 | B2, "m4": B3}
    previous = {1: "p"}
    # p is branch 1's own previous tip, but branch 2 reaches it too: is it on main?
    assert sets.questions(previous) == {"p", "m4"}
    assert sets.unsettled([1, 2, 3], previous, on_main={"m4"}) == {2}
    # Had p been on main (branch 1 a bare point before), branch 2 would be settled too.
    assert sets.unsettled([1, 2, 3], previous, on_main={"m4", "p"}) == set()


def test_a_ref_that_does_not_reach_its_previous_tip_is_unsettled_unless_that_was_on_main():
    # Branch 1 rewritten: r on m1 (excluded), its previous tip old not reached.
    sets = RefSets({"r": B1})
    walk(sets, [("r", ["m1"])])
    assert sets.questions({1: "old"}) == {"m1", "old"}
    assert sets.unsettled([1], {1: "old"}, on_main={"m1"}) == {1}
    assert sets.unsettled([1], {1: "old"}, on_main={"m1", "old"}) == set()
    # A previous tip no longer in the repository: never settled by the walk.
    assert sets.unsettled([1], {1: None}, on_main={"m1"}) == {1}


def test_entry_points_main_reaches_need_no_asking():
    # Main moved from m0 to m1; branch 1, new, has b on m0.
    sets = RefSets({"m1": MAIN, "b": B1})
    walk(sets, [("m1", ["m0"]), ("b", ["m0"])])
    assert sets.entry_points() == {"m0": MAIN | B1}
    assert sets.questions({}) == set()
    assert sets.unsettled([1], {}, on_main=set()) == set()
