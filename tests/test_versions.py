import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.versions import (
    MAX_COMPONENT,
    ChromiumVersion,
    VersionParseError,
    format_version_file,
    parse_version,
    parse_version_file,
)

# chrome/VERSION at refs/tags/125.0.6422.141.
M125_VERSION_FILE = "MAJOR=125\nMINOR=0\nBUILD=6422\nPATCH=141\n"

components = st.integers(min_value=0, max_value=MAX_COMPONENT - 1)
versions = st.builds(ChromiumVersion, components, components, components, components)


def test_parse_version_reads_the_four_numbers():
    version = parse_version("125.0.6422.141")

    assert version == ChromiumVersion(125, 0, 6422, 141)
    assert version.milestone == 125
    assert version.as_tuple() == (125, 0, 6422, 141)
    assert str(version) == "125.0.6422.141"


def test_parse_version_strips_surrounding_whitespace():
    assert parse_version("  120.0.6099.71\n") == ChromiumVersion(120, 0, 6099, 71)


def test_parse_classmethod_is_parse_version():
    assert ChromiumVersion.parse("113.0.5672.127") == parse_version("113.0.5672.127")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "125",
        "125.0.6422",
        "125.0.6422.141.1",
        "v125.0.6422.141",
        "125.0.6422.141a",
        "125.0.6422.-1",
        "125.0.6422.+1",
        "125..6422.141",
        "125.0.6422.141 stable",
        "125 .0.6422.141",
        "١٢٥.0.6422.141",  # Arabic-Indic digits: int() would take them, a version does not
        "125.0.6422.1_41",
        "10000000.0.0.0",  # components must stay below MAX_COMPONENT
        "1.2.3.999999999999",
    ],
)
def test_parse_version_refuses_anything_but_four_numbers(text):
    with pytest.raises(VersionParseError):
        parse_version(text)


def test_parse_version_refuses_non_strings():
    with pytest.raises(VersionParseError):
        parse_version(125)  # type: ignore[arg-type]


def test_versions_order_numerically_not_as_strings():
    texts = ["125.0.6422.141", "9.0.597.0", "125.0.6422.60", "125.0.6478.0", "124.0.6367.243"]

    ordered = sorted(parse_version(t) for t in texts)

    assert [str(v) for v in ordered] == [
        "9.0.597.0",
        "124.0.6367.243",
        "125.0.6422.60",
        "125.0.6422.141",
        "125.0.6478.0",
    ]
    assert parse_version("125.0.6422.141") > parse_version("125.0.6422.60")


def test_versions_are_hashable_values():
    assert len({parse_version("125.0.6422.141"), ChromiumVersion(125, 0, 6422, 141)}) == 1


def test_constructor_refuses_out_of_range_or_non_int_components():
    with pytest.raises(VersionParseError):
        ChromiumVersion(-1, 0, 0, 0)
    with pytest.raises(VersionParseError):
        ChromiumVersion(MAX_COMPONENT, 0, 0, 0)
    with pytest.raises(VersionParseError):
        ChromiumVersion(True, 0, 0, 0)
    with pytest.raises(VersionParseError):
        ChromiumVersion("125", 0, 0, 0)  # type: ignore[arg-type]


def test_parse_version_file_reads_chrome_version():
    assert parse_version_file(M125_VERSION_FILE) == ChromiumVersion(125, 0, 6422, 141)


def test_parse_version_file_tolerates_crlf_blank_lines_spaces_and_any_order():
    text = "\r\n  PATCH = 141\r\n\r\nBUILD=6422\r\nMAJOR =125\r\n MINOR= 0 \r\n\r\n"

    assert parse_version_file(text) == ChromiumVersion(125, 0, 6422, 141)


def test_parse_version_file_ignores_other_lines():
    text = "# generated\nMAJOR=125\nMINOR=0\nBUILD=6422\nPATCH=141\nCHANNEL=stable\n"

    assert parse_version_file(text) == ChromiumVersion(125, 0, 6422, 141)


@pytest.mark.parametrize("key", ["MAJOR", "MINOR", "BUILD", "PATCH"])
def test_parse_version_file_names_a_missing_key(key):
    text = "".join(line + "\n" for line in M125_VERSION_FILE.splitlines() if key not in line)

    with pytest.raises(VersionParseError, match=key):
        parse_version_file(text)


@pytest.mark.parametrize("value", ["", "x", "6422a", "-1", "1.0", "99999999999"])
def test_parse_version_file_names_a_non_numeric_key(value):
    text = M125_VERSION_FILE.replace("BUILD=6422", f"BUILD={value}")

    with pytest.raises(VersionParseError, match="BUILD"):
        parse_version_file(text)


def test_parse_version_file_refuses_conflicting_repeated_key():
    with pytest.raises(VersionParseError, match="PATCH"):
        parse_version_file(M125_VERSION_FILE + "PATCH=142\n")


def test_format_version_file_writes_the_exact_file():
    assert format_version_file(ChromiumVersion(125, 0, 6422, 141)) == M125_VERSION_FILE


@settings(max_examples=300)
@given(st.text())
def test_parse_version_raises_only_version_parse_error(text):
    try:
        version = parse_version(text)
    except VersionParseError:
        return
    assert parse_version(str(version)) == version


@settings(max_examples=300)
@given(st.text())
def test_parse_version_file_raises_only_version_parse_error(text):
    with contextlib.suppress(VersionParseError):
        parse_version_file(text)


@settings(max_examples=200)
@given(versions)
def test_version_file_round_trips(version):
    assert parse_version_file(format_version_file(version)) == version


@settings(max_examples=200)
@given(versions)
def test_version_string_round_trips(version):
    assert parse_version(str(version)) == version


@settings(max_examples=200)
@given(versions, versions)
def test_order_is_the_order_of_the_number_tuples(a, b):
    assert (a < b) == (a.as_tuple() < b.as_tuple())


def test_version_columns_for_a_version_and_for_none():
    from tracker.versions import ChromiumVersion, version_columns

    assert version_columns(ChromiumVersion(125, 0, 6422, 141), prefix="base_") == {
        "base_version": "125.0.6422.141",
        "base_major": 125,
        "base_minor": 0,
        "base_build": 6422,
        "base_patch": 141,
    }
    assert version_columns(None) == {
        "version": "",
        "major": None,
        "minor": None,
        "build": None,
        "patch": None,
    }


def test_release_tags_order_as_semantic_versions():
    from tracker.versions import TagVersion, tag_order, version_columns

    tags = ["v2.45.0", "v2.45.0-rc1", "v2.45.0-rc2", "v2.44.1", "v2.5.0", "v10.0", "no-number"]
    assert sorted(tags, key=tag_order) == [
        "no-number",
        "v2.5.0",
        "v2.44.1",
        "v2.45.0-rc1",
        "v2.45.0-rc2",
        "v2.45.0",
        "v10.0",
    ]
    assert version_columns(TagVersion("v2.45.0"), prefix="base_") == {
        "base_version": "v2.45.0",
        "base_major": None,
        "base_minor": None,
        "base_build": None,
        "base_patch": None,
    }
