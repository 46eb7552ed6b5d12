"""Pure parts of the patch set: churn matching, conflict attribution and already-upstream
matching."""

from hypothesis import given
from hypothesis import strategies as st

from tracker.patches import ForkPatch, attribute_conflicts, classify_churn, match_upstreamed


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


def _sha(name: str) -> str:
    return (name.encode().hex() * 40)[:40]


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
