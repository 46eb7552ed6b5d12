import json
import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import SAMPLES
from tracker.bulletins import (
    BulletinParseError,
    VersionMention,
    html_to_lines,
    parse_bulletin,
    parse_security_line,
)

SELECTED = SAMPLES / "chrome-releases-blog.cve-lines.selected.txt"
WITH_FIXES = SAMPLES / "chrome-releases-blog.v8-cve-lines-with-fix-commits.2021-2026.jsonl"
# Each record of the selected-lines file is "<published>\t<post URL>\t<why selected>", then the
# verbatim line, then a blank line.
_RECORD_HEADER = re.compile(r"^\d{4}-\d{2}-\d{2}T[^\t]*\t")


def _selected_lines():
    lines = []
    for line in SELECTED.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or _RECORD_HEADER.match(line):
            continue
        lines.append(line)
    return lines


def _scraped_rows():
    return [json.loads(line) for line in WITH_FIXES.read_text(encoding="utf-8").splitlines()]


SELECTED_LINES = _selected_lines()
SCRAPED_ROWS = _scraped_rows()


def test_the_sample_files_hold_what_their_source_notes_say():
    assert len(SELECTED_LINES) == 42
    assert len(SCRAPED_ROWS) == 143


def test_every_selected_sample_line_parses():
    failures = []
    for line in SELECTED_LINES:
        try:
            parse_security_line(line)
        except BulletinParseError as exc:
            failures.append(f"{line[:60]}...: {exc}")

    assert not failures, "lines that did not parse:\n" + "\n".join(failures)


def test_every_scraped_line_parses_to_the_scrapers_own_fields():
    failures = []
    for row in SCRAPED_ROWS:
        try:
            parsed = parse_security_line(row["raw_line"])
        except BulletinParseError as exc:
            failures.append(f"{row['cve']}: {exc}")
            continue
        got = {
            "cve": parsed.cve,
            "severity": parsed.severity,
            "bug_tracker_ids": [str(bug) for bug in parsed.bug_ids],
            "reporter": parsed.reporter,
            "report_date": parsed.report_date.isoformat() if parsed.report_date else "",
            "reward": parsed.reward_text,
            "description": parsed.title,
        }
        expected = {key: row[key] for key in got}
        if got != expected:
            diff = {key: (expected[key], got[key]) for key in got if got[key] != expected[key]}
            failures.append(f"{row['cve']}: (expected, got) {diff}")

    assert not failures, "lines whose parse differs from the sample:\n" + "\n".join(failures)


def test_selected_lines_agree_with_the_scraped_rows_they_were_taken_from():
    by_cve = {row["cve"]: row for row in SCRAPED_ROWS}
    compared = 0
    for line in SELECTED_LINES:
        parsed = parse_security_line(line)
        row = by_cve.get(parsed.cve)
        if row is None:
            continue  # the scraped file holds a random three quarters of the rows
        compared += 1
        assert parsed.raw_line == row["raw_line"], parsed.cve

    assert compared > 20


def test_a_plain_line_parses_into_all_fields():
    line = (
        "[$3000][486927780] High CVE-2026-5861: Use after free in V8. "
        "Reported by 5shain on 2026-02-23"
    )

    parsed = parse_security_line(line)

    assert parsed.reward_text == "$3000"
    assert parsed.reward_amounts == [3000]
    assert parsed.reward_status == "amount"
    assert parsed.bug_ids == [486927780]
    assert parsed.severity == "High"
    assert parsed.cve == "CVE-2026-5861"
    assert parsed.title == "Use after free in V8"
    assert parsed.component == "V8"
    assert parsed.reporter == "5shain"
    assert parsed.report_date == date(2026, 2, 23)
    assert parsed.trailing_text == ""
    assert parsed.raw_line == line


@pytest.mark.parametrize(
    ("reward", "amounts", "status"),
    [
        ("$22000 + $22000", [22000, 22000], "amount"),
        ("$15000, $7000", [15000, 7000], "amount"),
        ("$1,000", [1000], "amount"),
        ("$TBD", [], "tbd"),
        ("TBD", [], "tbd"),
        ("N/A", [], "na"),
        ("$NA", [], "na"),
        ("NA", [], "na"),
        ("$N/A", [], "na"),
        ("", [], "na"),
    ],
)
def test_reward_spellings(reward, amounts, status):
    parsed = parse_security_line(f"[{reward}][1194046] High CVE-2021-21222: Bug in V8.")

    assert (parsed.reward_text, parsed.reward_amounts, parsed.reward_status) == (
        reward,
        amounts,
        status,
    )


@pytest.mark.parametrize("reward", ["$lots", "$" + "9" * 5000, "$5k"])
def test_an_unknown_reward_is_not_guessed(reward):
    with pytest.raises(BulletinParseError, match="reward"):
        parse_security_line(f"[{reward}][1194046] High CVE-2021-21222: Bug in V8.")


def test_several_ids_in_one_bracket_and_several_reporters():
    parsed = parse_security_line(
        "[$15000, $7000][327740539, 40072287] High CVE-2024-2625: Object lifecycle issue in V8. "
        "Reported by Ganjiang Zhou(@refrain_areu) of ChaMd5-H1 team on 2024-03-01 and CFF of "
        "Topsec Alpha Team on 2023-09-14"
    )

    assert parsed.bug_ids == [327740539, 40072287]
    # the date that closes the credit is the report date, as the scraper read it
    assert parsed.report_date == date(2023, 9, 14)
    assert parsed.reporter.startswith("Ganjiang Zhou(@refrain_areu)")
    assert parsed.reporter.endswith("and CFF of Topsec Alpha Team")


def test_spaces_before_the_colon_and_the_period_are_tolerated():
    parsed = parse_security_line(
        "[$TBD][1260129] High CVE-2022-0102: Type Confusion in V8 . Reported by Brendon Tiszka "
        "on 2021-10-14"
    )
    spaced = parse_security_line(
        "[$5000][1241860] High CVE-2021-37985 : Use after free in V8. Reported by Yangkang "
        "(@dnpushme) of 360 ATA on 2021-08-20"
    )

    assert parsed.title == "Type Confusion in V8"
    assert spaced.cve == "CVE-2021-37985"


def test_a_line_without_a_credit_has_no_reporter_or_date():
    parsed = parse_security_line("[NA][427663123] High CVE-2025-6554: Type Confusion in V8.")

    assert (parsed.title, parsed.reporter, parsed.report_date) == ("Type Confusion in V8", "", None)


def test_sentences_after_the_date_are_kept_as_trailing_text():
    parsed = parse_security_line(
        "[N/A][420636529] High CVE-2025-5419: Out of bounds read and write in V8. Reported by "
        "Clement Lecigne and Beno\u00eet Sevens of Google Threat Analysis Group on 2025-05-27. "
        "This issue was mitigated on 2025-05-28 by a configuration change pushed out to Stable "
        "across all Chrome platforms."
    )

    assert parsed.report_date == date(2025, 5, 27)
    assert parsed.reporter == (
        "Clement Lecigne and Beno\u00eet Sevens of Google Threat Analysis Group"
    )
    assert parsed.trailing_text.startswith("This issue was mitigated on 2025-05-28")
    assert parsed.component == "V8"


def test_long_cve_numbers_lowercase_severity_and_the_last_in_for_the_component():
    parsed = parse_security_line(
        "[$2000][40012345] critical cve-2026-123456789: Use after free in Extensions in Chrome."
    )

    assert parsed.cve == "CVE-2026-123456789"
    assert parsed.severity == "Critical"
    assert parsed.component == "Chrome"


def test_a_title_without_in_has_no_component():
    parsed = parse_security_line("[TBD][1234567] Low CVE-2024-0001: Insufficient validation.")

    assert parsed.component == ""


@pytest.mark.parametrize(
    "line",
    [
        "",
        "The Stable channel has been updated to 124.0.6367.201",
        "[TBD][12345] High CVE-2024-0001: id too short in V8.",
        "[TBD][1234567] Severe CVE-2024-0001: not a severity in V8.",
        "[TBD][1234567] High CVE-2024-01: short number in V8.",
        "[TBD][1234567] High CVE-2024-0001:",
        "[1234567] Various fixes from internal audits, fuzzing and other initiatives",
    ],
)
def test_lines_that_are_not_security_lines_raise(line):
    with pytest.raises(BulletinParseError):
        parse_security_line(line)


def test_html_to_lines_breaks_at_block_ends_and_unescapes():
    text = (
        "<div><span>[$TBD][<a href='https://crbug.com/1194046'>1194046</a>] High CVE-2021-21222:"
        " Heap&nbsp;buffer overflow in V8.</span></div><p>Second&amp;line</p>Third<br/>"
        "<ul><li>One</li><li>Two</li></ul><script>var x = '<p>'</script><!-- [note] -->"
    )

    assert html_to_lines(text) == [
        "[$TBD][1194046] High CVE-2021-21222: Heap buffer overflow in V8.",
        "Second&line",
        "Third",
        "One",
        "Two",
    ]


def test_in_the_wild_notes_in_the_old_and_new_wording():
    new = parse_bulletin(
        "<p>Google is aware that an exploit for CVE-2024-4671 exists in the wild.</p>"
    )
    old = parse_bulletin(
        "Google is aware of reports that an exploit for CVE-2021-21224 exists in the wild."
    )
    several = parse_bulletin(
        "GOOGLE IS AWARE of reports that exploits for cve-2021-21206 and\nCVE-2021-21220 exist"
        "  in   the wild."
    )

    assert new.in_the_wild_cves == ["CVE-2024-4671"]
    assert old.in_the_wild_cves == ["CVE-2021-21224"]
    assert several.in_the_wild_cves == ["CVE-2021-21206", "CVE-2021-21220"]
    # the notes mention CVEs but are understood, so they are not left for review
    assert new.unparsed_lines == old.unparsed_lines == several.unparsed_lines == []


def test_the_version_sentence_expands_alternative_builds():
    bulletin = parse_bulletin(
        "<p>The Stable channel has been updated to 124.0.6367.201/.202 for Mac and Windows and "
        "124.0.6367.201 for Linux which will roll out over the coming days/weeks.</p>"
    )

    assert bulletin.versions == [
        VersionMention("124.0.6367.201", "Mac and Windows"),
        VersionMention("124.0.6367.202", "Mac and Windows"),
        VersionMention("124.0.6367.201", "Linux"),
    ]
    assert bulletin.version_set == {"124.0.6367.201", "124.0.6367.202"}


def test_versions_without_platforms_and_in_the_extended_channel():
    bulletin = parse_bulletin(
        "The Extended Stable channel has been updated to 124.0.6367.207/208 for Windows and Mac. "
        "Chrome 124.0.6367.1 is mentioned elsewhere."
    )

    assert bulletin.version_set == {"124.0.6367.207", "124.0.6367.208"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "The Stable channel has been updated to 125.0.6422.41/.42 for Windows and Mac as part "
            "of our early stable release to a small percentage of users.",
            [("125.0.6422.41", "Windows and Mac"), ("125.0.6422.42", "Windows and Mac")],
        ),
        (
            "Hi, everyone! We've just released Chrome 138 (138.0.7204.63) for Android. It'll "
            "become available on Google Play over the next few days.",
            [("138.0.7204.63", "Android")],
        ),
        (
            "The Chrome team is delighted to announce the promotion of Chrome 125 to the stable "
            "channel for Windows, Mac and Linux. Chrome 125.0.6422.60/.61 contains a number of "
            "fixes and improvements.",
            [("125.0.6422.60", ""), ("125.0.6422.61", "")],
        ),
    ],
)
def test_other_version_sentences(text, expected):
    assert parse_bulletin(text).versions == [VersionMention(*pair) for pair in expected]


def test_security_fix_count_tolerates_bold_and_words():
    assert parse_bulletin("This update includes <b>23</b> security fixes.").security_fix_count == 23
    assert parse_bulletin("This update includes 1 security fix.").security_fix_count == 1
    assert parse_bulletin("This update includes two security fixes.").security_fix_count == 2
    assert parse_bulletin("No count here.").security_fix_count is None


def test_a_bulletin_keeps_lines_it_cannot_read_for_review():
    html = (
        "[$TBD][1194046] High CVE-2021-21222: Heap buffer overflow in V8. Reported by Guang Gong "
        "on 2021-03-30<br>"
        "[$TBD][pending] High CVE-2021-99999: Something in Blink.<br>"
        "Also fixed: CVE-2021-88888 (details later)<br>"
        "[1194046] Various fixes from internal audits, fuzzing and other initiatives<br>"
        "Nothing to see here"
    )

    bulletin = parse_bulletin(html)

    assert [line.cve for line in bulletin.security_lines] == ["CVE-2021-21222"]
    assert bulletin.unparsed_lines == [
        "[$TBD][pending] High CVE-2021-99999: Something in Blink.",
        "Also fixed: CVE-2021-88888 (details later)",
    ]


def test_a_security_line_split_by_a_source_newline_is_joined():
    bulletin = parse_bulletin(
        "<div>[$7000][40073339] High CVE-2024-3174: Inappropriate\nimplementation in V8. "
        "Reported by Alan Goodman on 2023-09-25</div>"
    )

    [line] = bulletin.security_lines
    assert line.title == "Inappropriate implementation in V8"
    assert bulletin.unparsed_lines == []


REAL_LINES = SELECTED_LINES + [row["raw_line"] for row in SCRAPED_ROWS]


@st.composite
def mutated_lines(draw):
    """A real line with a slice replaced by random text, or a random slice of it."""
    line = draw(st.sampled_from(REAL_LINES))
    start = draw(st.integers(0, len(line)))
    end = draw(st.integers(start, len(line)))
    if draw(st.booleans()):
        return line[start:end]
    return line[:start] + draw(st.text(max_size=12)) + line[end:]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | mutated_lines())
def test_parse_security_line_raises_only_its_own_error(line):
    try:
        parsed = parse_security_line(line)
    except BulletinParseError:
        return
    assert parsed.severity in ("Critical", "High", "Medium", "Low")
    assert parsed.reward_status in ("amount", "tbd", "na")
    assert all(100_000 <= bug < 1_000_000_000 for bug in parsed.bug_ids)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(mutated_lines() | st.text(max_size=80) | st.sampled_from(REAL_LINES), max_size=6),
    st.sampled_from(["<br>", "\n", "</p><p>", "</li><li>", " "]),
)
def test_parse_bulletin_never_raises(lines, separator):
    bulletin = parse_bulletin(separator.join(lines))

    assert isinstance(bulletin.unparsed_lines, list)


def test_a_credit_split_from_its_date_is_joined():
    bulletin = parse_bulletin(
        "[$TBD][1195777] High CVE-2021-21224: Type Confusion in V8. Reported by Jose Martinez"
        "<br>(tr0y4) from VerSprite Inc. on 2021-04-05<br>Unrelated text"
    )

    [line] = bulletin.security_lines
    assert line.reporter == "Jose Martinez (tr0y4) from VerSprite Inc."
    assert line.report_date == date(2021, 4, 5)
