"""Pure parts of the patch set: churn matching and conflict attribution."""

from hypothesis import given
from hypothesis import strategies as st

from tracker.patches import ForkPatch, attribute_conflicts, classify_churn


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
