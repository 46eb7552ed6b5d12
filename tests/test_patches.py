"""The patch set: markers by shape, churn matching, conflict attribution and already-upstream
matching on plain data; then every fork shape of a generated world, against its ground truth
and plain git (rev-list, git cherry, merge-tree)."""

from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import footers, git, patch_id, plain_marker, plain_patch_set
from tracker.git import run_git
from tracker.lag import rev_parse
from tracker.patches import (
    ForkPatch,
    GraphCommit,
    attribute_conflicts,
    classify_churn,
    conflicting_files,
    find_upstreamed,
    list_patches,
    match_upstreamed,
    newest_marker,
    patch_set_revs,
    read_fork_graph,
)


def test_first_look_is_the_baseline_not_churn():
    labels, dropped = classify_churn(None, [("a", "1"), ("b", "2")])
    assert labels == ["unchanged", "unchanged"] and dropped == []


def test_identity_then_subject_matching():
    previous = [("Add ntp", "p1"), ("Brand about", "p2"), ("Old thing", "p3")]
    current = [("Add ntp", "p1"), ("Brand about", "p2-resolved"), ("New thing", "p4")]
    labels, dropped = classify_churn(previous, current)
    assert labels == ["unchanged", "changed", "added"]
    assert dropped == [2]


def test_reworded_patch_with_same_identity_is_unchanged():
    labels, dropped = classify_churn([("Old subject", "p1")], [("New subject", "p1")])
    assert labels == ["unchanged"] and dropped == []


def test_duplicate_subjects_match_one_to_one():
    labels, dropped = classify_churn([("Fix", "a"), ("Fix", "b")], [("Fix", "c")])
    assert labels == ["changed"] and dropped == [1]


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["", "1", "2", "3"])), max_size=8),
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["", "1", "2", "3"])), max_size=8),
)
def test_churn_accounts_for_every_patch(previous, current):
    labels, dropped = classify_churn(previous, current)
    assert len(labels) == len(current)
    matched = sum(1 for label in labels if label in ("unchanged", "changed"))
    assert matched + len(dropped) == len(previous)
    assert len(set(dropped)) == len(dropped)


def test_conflicts_attributed_to_the_patches_touching_the_files():
    patches = [
        ForkPatch("a" * 40, "one", "x", ("f1", "f2")),
        ForkPatch("b" * 40, "two", "x", ("f3",)),
        ForkPatch("c" * 40, "three", "x", ("f2",)),
    ]
    assert attribute_conflicts(["f2"], patches) == {"a" * 40: ["f2"], "c" * 40: ["f2"]}
    assert attribute_conflicts([], patches) == {}


# --- merging-rebase markers, by shape ----------------------------------------------------------


def _sha(name: str) -> str:
    return (name.encode().hex() * 40)[:40]


def _graph(*commits: tuple[str, tuple[str, ...], str, bool]) -> dict[str, GraphCommit]:
    """(name, parent names, tree, fork-only) -> the graph `read_fork_graph` returns."""
    return {
        _sha(name): GraphCommit(tuple(_sha(p) for p in parents), tree, fork_only)
        for name, parents, tree, fork_only in commits
    }


UPSTREAM = (("u0", (), "t-u0", False), ("u1", ("u0",), "t-u1", False))


def test_a_merging_rebase_marker_is_found_by_its_shape():
    # The old copy p on u0; the marker takes u1's tree and records p; q is the rebased patch.
    graph = _graph(
        *UPSTREAM,
        ("p", ("u0",), "t-p", True),
        ("m", ("u1", "p"), "t-u1", True),
        ("q", ("m",), "t-q", True),
    )
    assert newest_marker(graph, _sha("q")) == _sha("m")
    assert patch_set_revs(graph, _sha("q"), _sha("u9")) == [
        _sha("q"),
        f"^{_sha('u9')}",
        f"^{_sha('p')}",
    ]


def test_the_newest_of_several_markers_counts():
    graph = _graph(
        *UPSTREAM,
        ("u2", ("u1",), "t-u2", False),
        ("p", ("u0",), "t-p", True),
        ("m1", ("u1", "p"), "t-u1", True),
        ("q", ("m1",), "t-q", True),
        ("m2", ("u2", "q"), "t-u2", True),
        ("r", ("m2",), "t-r", True),
    )
    assert newest_marker(graph, _sha("r")) == _sha("m2")


def test_sync_merges_are_not_markers():
    graph = _graph(
        *UPSTREAM,
        ("f", ("u0",), "t-f", True),
        # git merge upstream: the fork is the first parent.
        ("merge", ("f", "u1"), "t-merge", True),
        # The fork merged into upstream: upstream first, but the tree takes the fork's change.
        ("flipped", ("u1", "f"), "t-flipped", True),
        # git merge -s ours upstream on the fork: the fork's tree, the fork first.
        ("ours", ("f", "u1"), "t-f", True),
        # Marker-shaped, but nothing of the fork's is recorded (both parents upstream).
        ("ups", ("u1", "u0"), "t-u1", True),
    )
    for tip in ("merge", "flipped", "ours", "ups"):
        assert newest_marker(graph, _sha(tip)) is None, tip


def test_a_marker_off_the_first_parent_line_is_ignored():
    # A topic branch that holds a marker-shaped merge, merged into a branch without one.
    graph = _graph(
        *UPSTREAM,
        ("p", ("u0",), "t-p", True),
        ("m", ("u1", "p"), "t-u1", True),
        ("a", ("u1",), "t-a", True),
        ("topic", ("a", "m"), "t-topic", True),
    )
    assert newest_marker(graph, _sha("topic")) is None


# --- already upstream, by message and identity -------------------------------------------------

REVIEW = "https://chromium-review.googlesource.com/c/chromium/src/+/"
MAIN_FIX = "a" * 40
PICK = "b" * 40
OTHER = "c" * 40
PICK_MESSAGE = f"""[M125] [Blink] Check input capacity in FrameLoader

FrameLoader could read past the end of its input.

(cherry picked from commit {MAIN_FIX})

Bug: 40123456
Change-Id: I1111111111111111111111111111111111111111
Reviewed-on: {REVIEW}5500010
Commit-Queue: Dev <dev@chromium.org>
Cr-Original-Commit-Position: refs/heads/main@{{#1300000}}
Reviewed-on: {REVIEW}6000010
Cr-Commit-Position: refs/branch-heads/6422@{{#12}}
Cr-Branched-From: {"d" * 40}-refs/heads/main@{{#1290000}}
"""


def _fork_patch(name: str, message: str, patch_id: str = "") -> ForkPatch:
    return ForkPatch(_sha(name), message.split("\n", 1)[0], "Fork", ("f.cc",), patch_id, message)


def test_already_upstream_by_every_trace_fix_detection_knows():
    candidates = {PICK: PICK_MESSAGE, OTHER: "Unrelated\n\nChange-Id: I999\n"}
    patches = [
        _fork_patch("trailer", f"Fix\n\n(cherry picked from commit {MAIN_FIX})\n"),
        _fork_patch("position", "Fix\n\nCr-Original-Commit-Position: refs/heads/main@{#1300000}\n"),
        _fork_patch("change", "Fix\n\nChange-Id: I1111111111111111111111111111111111111111\n"),
        _fork_patch("review", f"Fix\n\nReviewed-on: {REVIEW}5500010\n"),
        _fork_patch("identity", "Backport by hand\n\nChange-Id: I222\n", patch_id="same"),
        _fork_patch("own", "[Fork] Brand the about dialog\n\nChange-Id: I333\n", "mine"),
    ]
    found = match_upstreamed(patches, candidates, {PICK: "same", OTHER: "other"})
    assert found == {_sha(n): PICK for n in ("trailer", "position", "change", "review", "identity")}


def test_the_strongest_match_names_the_upstream_commit():
    # Same diff as one upstream commit, a cherry-pick trailer naming the other's source.
    candidates = {PICK: PICK_MESSAGE, OTHER: "Same diff\n"}
    patch = _fork_patch("p", f"Fix\n\n(cherry picked from commit {MAIN_FIX})\n", patch_id="x")
    assert match_upstreamed([patch], candidates, {OTHER: "x"}) == {patch.sha: PICK}
    assert match_upstreamed([patch], {}, {}) == {}


# --- every fork shape of a generated world -----------------------------------------------------


def shape(fork: dict) -> str:
    """A fork's history shape, e.g. "merge/pull-request+topics"."""
    label = fork["style"] + (f"/{fork['sync_merge']}" if fork["sync_merge"] else "")
    return label + ("+topics" if fork["topics"] else "")


ALL_SHAPES = {
    "rebase",
    "rebase+topics",
    "merge/direct",
    "merge/direct+topics",
    "merge/pull-request",
    "merge/pull-request+topics",
    "merge/upstream-first",
    "merging-rebase",
    "merging-rebase+topics",
}


def _branches(world):
    upstream = world["upstream"]["path"]
    for fork in world["forks"]:
        for branch in fork["branches"]:
            tip_of_upstream = rev_parse(upstream, branch["upstream_ref"])
            yield f"{fork['slug']}:{branch['name']}", shape(fork), branch, tip_of_upstream


def test_the_patch_set_of_every_shape_is_the_truth_and_plain_gits(shapes_world):
    repo = shapes_world["upstream"]["path"]
    shapes, off_the_line = set(), set()
    for label, kind, branch, upstream in _branches(shapes_world):
        tip = branch["tip"]
        patches = list_patches(repo, tip, upstream)
        expected = [p["sha"] for p in branch["patches"]]
        assert [p.sha for p in patches] == expected == plain_patch_set(repo, tip, upstream), label
        for p, truth in zip(patches, branch["patches"], strict=True):
            assert sorted(p.files) == sorted(truth["files"]), label
            raw = git(repo, "cat-file", "commit", p.sha)
            assert p.message == raw.split("\n\n", 1)[1], label
        marker = plain_marker(repo, tip, upstream)
        newest = branch["markers"][-1] if branch["markers"] else None
        assert newest_marker(read_fork_graph(repo, tip, upstream), tip) == newest, label
        assert (marker[0] if marker else None) == newest, label
        first_parent = git(repo, "rev-list", "--first-parent", "--no-merges", tip, f"^{upstream}")
        if len(first_parent.split()) < len(expected):
            off_the_line.add(kind)
        shapes.add(kind)
    assert shapes == ALL_SHAPES
    # Where a first-parent walk would have lost patches (issue 15).
    assert off_the_line == {
        "rebase+topics",
        "merge/direct+topics",
        "merge/pull-request+topics",
        "merge/upstream-first",
        "merging-rebase+topics",
    }


def test_already_upstream_in_every_shape_is_the_truth_and_git_cherrys(shapes_world):
    repo = shapes_world["upstream"]["path"]
    by_identity = by_trailer = 0
    for label, _kind, branch, upstream in _branches(shapes_world):
        tip = branch["tip"]
        patches = list_patches(repo, tip, upstream)
        found = find_upstreamed(repo, patches, tip, upstream)
        assert set(found) == {p["sha"] for p in branch["patches"] if p["upstreamed"]}, label
        marker = plain_marker(repo, tip, upstream)
        limit = [marker[1][1]] if marker else []
        cherry = [line.split() for line in git(repo, "cherry", upstream, tip, *limit).splitlines()]
        assert {sha for _sign, sha in cherry} == {p.sha for p in patches}, label
        same_identity = {sha for sign, sha in cherry if sign == "-"}
        for sha, upstream_sha in found.items():
            assert not is_in(repo, upstream_sha, tip) and is_in(repo, upstream_sha, upstream)
            if sha in same_identity:
                assert patch_id(repo, sha) == patch_id(repo, upstream_sha), label
                by_identity += 1
            else:  # named by its trailers: here the generator's change-id backports
                mine = footers(git(repo, "log", "-1", "--format=%B", sha))
                theirs = footers(git(repo, "log", "-1", "--format=%B", upstream_sha))
                assert mine["Change-Id"] == theirs["Change-Id"], label
                by_trailer += 1
        assert same_identity <= set(found), label
    assert by_identity >= 5 and by_trailer >= 1, (by_identity, by_trailer)


def is_in(repo, commit: str, tip: str) -> bool:
    return (
        run_git(["merge-base", "--is-ancestor", commit, tip], git_dir=repo, check=False).returncode
        == 0
    )


def test_predicted_conflicts_in_every_shape_are_the_truth_and_merge_trees(shapes_world):
    repo = shapes_world["upstream"]["path"]
    with_conflicts = set()
    for label, kind, branch, upstream in _branches(shapes_world):
        tip = branch["tip"]
        files = conflicting_files(repo, tip, upstream)
        result = run_git(
            ["merge-tree", "--write-tree", "--name-only", upstream, tip], git_dir=repo, check=False
        )
        lines = result.text.splitlines()
        plain = lines[1 : lines.index("")] if "" in lines else lines[1:]
        assert sorted(files) == sorted(set(plain)) == branch["conflicting_files"], label
        attributed = attribute_conflicts(files, list_patches(repo, tip, upstream))
        assert set(attributed) == {p["sha"] for p in branch["patches"] if p["conflicts"]}, label
        if attributed:
            with_conflicts.add(kind)
    assert with_conflicts == ALL_SHAPES
