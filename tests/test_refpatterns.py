"""Ref pattern lists: several `*`, several patterns, exclusions; what git is asked to fetch."""

import re

import pytest

from tracker.git import UnsafeGitInput
from tracker.refpatterns import RefPatterns, RefSelection, fetch_sources, parse_ref_list, sample

GIT_FOR_WINDOWS_TAGS = [
    "refs/tags/v2.45.0",
    "refs/tags/v2.45.0-rc1",
    "refs/tags/v2.45.0.windows.1",
    "refs/tags/v2.45.1.windows.1",
    "refs/tags/v2.46.0-rc0.windows.1",
    "refs/tags/gitgui-0.21.0",
]


def test_several_stars_select_a_forks_own_release_tags():
    patterns = RefPatterns.parse("refs/tags/v*.windows.*")
    assert patterns.select(GIT_FOR_WINDOWS_TAGS) == [
        "refs/tags/v2.45.0.windows.1",
        "refs/tags/v2.45.1.windows.1",
        "refs/tags/v2.46.0-rc0.windows.1",
    ]


def test_exclusions_win_over_patterns():
    patterns = RefPatterns.parse("refs/tags/v*.windows.*, !refs/tags/*-rc*")
    assert patterns.select(GIT_FOR_WINDOWS_TAGS) == [
        "refs/tags/v2.45.0.windows.1",
        "refs/tags/v2.45.1.windows.1",
    ]
    assert str(patterns) == "refs/tags/v*.windows.*, !refs/tags/*-rc*"


def test_several_patterns_separated_by_commas_or_spaces():
    patterns = RefPatterns.parse("refs/tags/gitgui-*\nrefs/tags/v*.windows.1,, !refs/tags/v2.46*")
    assert patterns.include == ("refs/tags/gitgui-*", "refs/tags/v*.windows.1")
    assert patterns.exclude == ("refs/tags/v2.46*",)
    assert patterns.select(GIT_FOR_WINDOWS_TAGS) == [
        "refs/tags/gitgui-0.21.0",
        "refs/tags/v2.45.0.windows.1",
        "refs/tags/v2.45.1.windows.1",
    ]


def test_a_star_crosses_slashes_and_a_pattern_without_one_is_an_exact_ref():
    heads = RefPatterns.parse("refs/heads/*")
    assert heads.matches("refs/heads/release/125") and heads.matches("refs/heads/main")
    assert not heads.matches("refs/tags/main")
    exact = RefPatterns.parse("refs/heads/main")
    assert exact.matches("refs/heads/main") and not exact.matches("refs/heads/main2")
    # A glob right after a character other than '/' (the silently never-ingested case).
    chromium = RefPatterns.parse("refs/heads/chromium-*")
    assert chromium.select(["refs/heads/chromium-6422", "refs/heads/main"]) == [
        "refs/heads/chromium-6422"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "selects nothing"),
        ("!refs/tags/*-rc*", "selects nothing"),
        ("v*", "does not start with refs/"),
        ("tags/v*", "does not start with refs/"),
        ("--upload-pack=x", "does not start with refs/"),
        ("refs/tags/v?", "one of ~^:?["),
        ("refs/tags/[ab]*", "one of ~^:?["),
        ("refs/tags/../heads/*", "'..'"),
        ("refs/tags/*.lock", "'.lock'"),
        ("refs/tags/*/", "ends with '/'"),
        ("refs/tags/v* refs/tags/x..y", "'refs/tags/x..y' is not allowed"),
        ("!!refs/tags/x refs/tags/*", "'!!refs/tags/x' is not allowed"),
    ],
)
def test_bad_patterns_are_refused_with_the_pattern_named(text, problem):
    with pytest.raises(UnsafeGitInput, match=re.escape(problem)):
        RefPatterns.parse(text)


def test_patterns_may_be_limited_to_a_namespace():
    assert RefPatterns.parse("refs/tags/v*", under="refs/tags/").include == ("refs/tags/v*",)
    with pytest.raises(UnsafeGitInput, match="not under refs/tags/"):
        RefPatterns.parse("refs/heads/*", under="refs/tags/")
    with pytest.raises(UnsafeGitInput, match="not under refs/tags/"):
        RefPatterns.parse("refs/tags/v*, !refs/heads/x", under="refs/tags/")


def test_fetch_sources_have_one_star_each_and_no_source_covered_by_another():
    assert RefPatterns.parse("refs/tags/v*.windows.*, !refs/tags/*-rc*").fetch_sources() == [
        "refs/tags/v*"
    ]
    assert fetch_sources(["refs/tags/v*.windows.*", "refs/tags/*", "refs/tags/x"]) == [
        "refs/tags/*"
    ]
    assert fetch_sources(["refs/heads/main", "refs/heads/chromium-*", "refs/heads/main"]) == [
        "refs/heads/chromium-*",
        "refs/heads/main",
    ]
    assert fetch_sources(["refs/heads/chromium-*", "refs/heads/chromium-6422"]) == [
        "refs/heads/chromium-*"
    ]


def test_listing_prefixes_end_at_a_slash():
    assert RefPatterns.parse("refs/heads/chromium-*").listing_prefixes() == ["refs/heads/"]
    assert RefPatterns.parse(
        "refs/branch-heads/*, refs/heads/release/*/x, refs/heads/main"
    ).listing_prefixes() == ["refs/branch-heads/", "refs/heads/"]


def test_exact_ref_lists():
    assert parse_ref_list("refs/heads/main, refs/branch-heads/6422 refs/heads/main") == (
        "refs/heads/main",
        "refs/branch-heads/6422",
    )
    assert parse_ref_list("") == ()
    for bad, problem in [
        ("refs/heads/*", "exact ref names"),
        ("main", "does not start with refs/"),
        ("refs/heads/a..b", "'..'"),
    ]:
        with pytest.raises(UnsafeGitInput, match=problem):
            parse_ref_list(bad)


def test_sample_names_a_few():
    assert sample([]) == "none"
    assert sample(["a", "b"]) == "a, b"
    assert sample([str(i) for i in range(8)], limit=3) == "0, 1, 2 and 5 more"


def test_a_selection_joins_exact_refs_and_pattern_lists_each_with_its_exclusions():
    selection = RefSelection(
        exact=("refs/heads/main",),
        patterns=(
            RefPatterns.parse("refs/heads/chromium-*, !refs/heads/chromium-old*"),
            RefPatterns.parse("refs/tags/*"),
        ),
        optional=("refs/heads/dev",),
    )
    assert selection.matches("refs/heads/main") and selection.matches("refs/heads/dev")
    assert selection.matches("refs/heads/chromium-6422") and selection.matches("refs/tags/x")
    assert not selection.matches("refs/heads/chromium-old1")
    assert not selection.matches("refs/heads/dev2")  # fetched through refs/heads/dev*, dropped
    assert selection.fetch_sources() == [
        "refs/heads/chromium-*",
        "refs/heads/dev*",
        "refs/heads/main",
        "refs/tags/*",
    ]
