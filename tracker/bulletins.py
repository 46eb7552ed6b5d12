"""Parse the security part of a Chrome Releases post (a *bulletin*) from its HTML or text.

A *security line* credits one fixed vulnerability (SOURCES.md section 3.3)::

    [$22000 + $22000][1195977] High CVE-2021-21225: Out of bounds memory access in V8.
        Reported by Brendon Tiszka (@btiszka) supporting the EFF on 2021-04-05

that is ``[<reward>][<issue ids>] <severity> <CVE>: <title>. Reported by <who> on <date>``,
where the reward bracket, the "Reported by" part and the date may be missing and sentences
may follow the date. The *title* is "<kind of bug> in <component>".

`parse_bulletin()` never raises: lines that look like security lines but do not parse are
returned in `Bulletin.unparsed_lines` for review instead of being dropped. Blog posts are
edited after publication, so callers re-parse stored HTML whenever the post's ``updated``
time changes.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

SEVERITIES = ("Critical", "High", "Medium", "Low")

_LINE_RE = re.compile(
    r"""
    (?:\[(?P<reward>[^\[\]]*)\]\s*)?         # [$3000] [TBD] [N/A] ... (absent on a few lines)
    \[(?P<bugs>[^\[\]]*)\]\s*                # [486927780] or [327740539, 40072287]
    (?P<severity>critical|high|medium|low)\s+
    (?P<cve>cve-\d{4}-\d{4,})\s*:\s*         # "CVE-2021-37985 :" occurs too
    (?P<rest>.*)
    """,
    re.IGNORECASE | re.VERBOSE | re.ASCII | re.DOTALL,
)
_REPORTED_BY_RE = re.compile(r"\s*\.?\s*\breported\s+by\b\s*", re.IGNORECASE)
# The report date closes the credit sentence: " on 2024-03-01" then a period or the end.
# An earlier " on <date>" followed by more words is part of a multi-reporter credit.
_DATE_END_RE = re.compile(r"\s+on\s+(\d{4}-\d{2}-\d{2})\s*(?:\.|$)\s*", re.ASCII)
_DATE_ANY_RE = re.compile(r"\s+on\s+(\d{4}-\d{2}-\d{2})\b", re.ASCII)
_SENTENCE_END_RE = re.compile(r"\s*\.(?:\s+|$)")
# Dollar amounts: "$22000", "$1,000", "$7500.00". Longer digit runs are not amounts.
_AMOUNT_RE = re.compile(
    r"\$?\s*(?<![\d,])(\d{1,3}(?:,\d{3}){1,2}|\d{1,7})(?![\d,]\d)(?:\.\d{2})?", re.ASCII
)
_BUG_ID_RE = re.compile(r"\d{6,9}", re.ASCII)
_CVE_RE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE | re.ASCII)
_IN_THE_WILD_RE = re.compile(
    r"google\s+is\s+aware\b(?P<span>.{0,400}?)\bin\s+the\s+wild", re.IGNORECASE | re.DOTALL
)
_FIX_COUNT_RE = re.compile(
    r"this\s+update\s+includes\s+(?P<count>\d{1,4}|[a-z]+)\s+(?:new\s+)?security\s+fix(?:es)?",
    re.IGNORECASE,
)
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
# A version, optionally followed by alternative build(s) for some platforms ("/.202", "/202"),
# and by the platforms it is for, up to the next version or the end of the clause.
_VERSION_GROUP_RE = re.compile(
    r"(?<![\d.])(?P<version>\d{1,4}\.\d{1,4}\.\d{1,6}\.\d{1,6})(?P<alts>(?:\s*/\s*\.?\d{1,6})*)"
    r"(?![\d.]\d)\)?(?:\s+for\s+(?P<platforms>[^.;()]*?)"
    r"(?=\s+and\s+\d|\s*,\s*\d|\s+(?:which|that|as|in|to|over|and\s+will)\b|\s*[.;()]|\s*$))?",
    re.IGNORECASE | re.ASCII,
)
_VERSION_SENTENCE_RE = re.compile(
    r"(?:updated\s+to|promot\w*|released|contains|is\s+now\s+available)",
    re.IGNORECASE,
)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# Tags that end a line of text; source newlines inside the HTML are kept as line breaks too,
# as the scraper that produced the reference samples did.
_BREAK_TAG_RE = re.compile(
    r"<\s*br\s*/?\s*>|<\s*/\s*(?:p|li|div|h[1-6]|tr|ul|ol|table|blockquote|pre)\s*>"
    r"|<\s*(?:li|p|div|tr)(?:\s[^>]*)?>",
    re.IGNORECASE,
)
_INVISIBLE_RE = re.compile(
    r"<\s*(script|style)\b[^>]*>.*?<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL
)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_TAG_RE = re.compile(r"<[^>]*>")
_SPACE_RE = re.compile(r"[^\S\n]+")
# "[1234567] Various fixes from internal audits, fuzzing and other initiatives" credits
# Google's own work, which is not a security line and not worth a review.
_INTERNAL_FIXES_RE = re.compile(r"\[[\d,\s]*\]\s*various\s+fixes\b", re.IGNORECASE)


class BulletinParseError(ValueError):
    """A line is not a security line this module can read."""


@dataclass(frozen=True)
class SecurityLine:
    """One parsed security line.

    - `reward_text`: the reward bracket as written (``$22000 + $22000``, ``TBD``, ``N/A``).
    - `reward_amounts`: the dollar amounts in it (empty unless `reward_status` is "amount").
    - `reward_status`: "amount", "tbd" (to be decided) or "na" (no reward: N/A, NA, empty).
    - `bug_ids`: issue ids (6-7 digit Monorail ids, 8-digit migrated ``40xxxxxx`` ids,
      9-digit Buganizer ids), all valid ``issues.chromium.org/issues/<id>`` targets.
    - `severity`: Chromium's rating, "Critical"/"High"/"Medium"/"Low" (S0..S3).
    - `title`: "<kind> in <component>"; `component`: the text after the last " in " (or "").
    - `reporter`: who reported it, "" when the line does not say.
    - `report_date`: when it was reported, None when the line does not say.
    - `trailing_text`: sentences after the credit (for example a mitigation note), or "".
    """

    reward_text: str
    reward_amounts: list[int]
    reward_status: str
    bug_ids: list[int]
    severity: str
    cve: str
    title: str
    component: str
    reporter: str
    report_date: date | None
    trailing_text: str
    raw_line: str


class VersionMention(NamedTuple):
    """A version named in the post's version sentence and the platforms text it applies to."""

    version: str
    platforms: str


@dataclass
class Bulletin:
    """What `parse_bulletin()` found in one post.

    - `security_lines`: the parsed security lines, in post order.
    - `unparsed_lines`: lines that look like security lines (start with ``[`` or mention a
      CVE) but did not parse; kept for review.
    - `in_the_wild_cves`: CVEs the post says have an exploit in the wild.
    - `versions`: versions from the version sentence, ``/.202`` alternatives expanded.
    - `security_fix_count`: N from "This update includes N security fixes", or None. It
      counts internal fixes that get no line, so it can exceed ``len(security_lines)``.
    """

    security_lines: list[SecurityLine] = field(default_factory=list)
    unparsed_lines: list[str] = field(default_factory=list)
    in_the_wild_cves: list[str] = field(default_factory=list)
    versions: list[VersionMention] = field(default_factory=list)
    security_fix_count: int | None = None

    @property
    def version_set(self) -> set[str]:
        """The distinct version strings of `versions`."""
        return {mention.version for mention in self.versions}


def html_to_lines(html_text: str) -> list[str]:
    """Turn post HTML into its non-empty text lines.

    ``<br>``, ``</p>``, ``</li>``, ``</div>`` (and similar block ends) become line breaks;
    comments, scripts and styles disappear; other tags are removed; entities are unescaped;
    runs of spaces collapse to one and lines are stripped.
    """
    text = _COMMENT_RE.sub("", html_text)
    text = _INVISIBLE_RE.sub("", text)
    text = _BREAK_TAG_RE.sub("\n", text)
    text = _TAG_RE.sub("", text)
    text = html.unescape(text).replace("\r\n", "\n").replace("\r", "\n")
    lines = []
    for raw in text.split("\n"):
        line = _SPACE_RE.sub(" ", raw).strip()
        if line:
            lines.append(line)
    return lines


def parse_security_line(line: str) -> SecurityLine:
    """Parse one security line; raises `BulletinParseError` if it is not one."""
    raw_line = line.strip()
    # Blog HTML carries non-breaking and doubled spaces; the grammar only needs single ones.
    match = _LINE_RE.fullmatch(" ".join(raw_line.split()))
    if match is None:
        raise BulletinParseError(f"not a security line: {raw_line[:120]!r}")
    reward_text = (match["reward"] or "").strip()
    reward_amounts, reward_status = _parse_reward(reward_text)
    bug_ids = _parse_bug_ids(match["bugs"])
    title, reporter, report_date, trailing = _split_rest(match["rest"])
    if not title:
        raise BulletinParseError(f"no title after the CVE: {raw_line[:120]!r}")
    _, sep, component = title.rpartition(" in ")
    return SecurityLine(
        reward_text=reward_text,
        reward_amounts=reward_amounts,
        reward_status=reward_status,
        bug_ids=bug_ids,
        severity=match["severity"].capitalize(),
        cve=match["cve"].upper(),
        title=title,
        component=component.strip() if sep else "",
        reporter=reporter,
        report_date=report_date,
        trailing_text=trailing,
        raw_line=raw_line,
    )


def _parse_reward(text: str) -> tuple[list[int], str]:
    """``"$15000, $7000"`` -> ``([15000, 7000], "amount")``; ``"$TBD"`` -> ``([], "tbd")``."""
    amounts = [int(found.replace(",", "")) for found in _AMOUNT_RE.findall(text)]
    leftover = re.sub(r"[\s$+,&]|\band\b", "", _AMOUNT_RE.sub("", text), flags=re.IGNORECASE)
    leftover = leftover.upper()
    if leftover in ("", "TBD", "NA", "N/A"):
        if amounts:
            return amounts, "amount"
        return [], "tbd" if leftover == "TBD" else "na"
    raise BulletinParseError(f"unrecognised reward {text!r}")


def _parse_bug_ids(text: str) -> list[int]:
    tokens = [token for token in re.split(r"[\s,;&]+|\band\b", text.strip()) if token]
    if not tokens:
        raise BulletinParseError("no issue id")
    ids = []
    for token in tokens:
        if not _BUG_ID_RE.fullmatch(token):
            raise BulletinParseError(f"issue id {token!r} is not 6 to 9 digits")
        ids.append(int(token))
    return ids


def _split_rest(rest: str) -> tuple[str, str, date | None, str]:
    """Split what follows ``CVE-...:`` into title, reporter, report date and trailing text."""
    rest = rest.strip()
    credit = _REPORTED_BY_RE.search(rest)
    if credit is None:
        end = _SENTENCE_END_RE.search(rest)
        if end is None:
            return rest, "", None, ""
        return rest[: end.start()].strip(), "", None, rest[end.end() :].strip()
    title = rest[: credit.start()].strip().rstrip(".").strip()
    after = rest[credit.end() :]
    dated = _DATE_END_RE.search(after)
    if dated is None:
        # No date closes the credit; a date elsewhere in it is the best there is.
        anywhere = list(_DATE_ANY_RE.finditer(after))
        dated = anywhere[-1] if anywhere else None
    if dated is None:
        return title, after.strip().rstrip(".").strip(), None, ""
    try:
        report_date = date.fromisoformat(dated.group(1))
    except ValueError as exc:
        raise BulletinParseError(f"report date {dated.group(1)!r} is not a date") from exc
    reporter = after[: dated.start()].strip()
    trailing = after[dated.end() :].strip()
    return title, reporter, report_date, trailing


def _looks_like_security_line(line: str) -> bool:
    if _INTERNAL_FIXES_RE.match(line):
        return False
    return line.startswith("[") or _CVE_RE.search(line) is not None


def parse_bulletin(html_or_text: str) -> Bulletin:
    """Read a post body (HTML or plain text) into a `Bulletin`. Never raises."""
    lines = html_to_lines(html_or_text or "")
    whole = " ".join(lines)
    bulletin = Bulletin()
    note_spans = []
    for match in _IN_THE_WILD_RE.finditer(whole):
        note_spans.append(match.span())
        for cve in _CVE_RE.findall(match["span"]):
            if cve.upper() not in bulletin.in_the_wild_cves:
                bulletin.in_the_wild_cves.append(cve.upper())
    bulletin.security_fix_count = _fix_count(whole)
    bulletin.versions = _versions(whole)

    starts = []  # where each line begins in `whole`
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1

    index = 0
    while index < len(lines):
        line = lines[index]
        line_span = (starts[index], starts[index] + len(line))
        index += 1
        if not _looks_like_security_line(line):
            continue
        try:
            parsed = parse_security_line(line)
        except BulletinParseError:
            pass
        else:
            if index < len(lines) and _continues(parsed, lines[index]):
                try:
                    parsed = parse_security_line(f"{line} {lines[index]}")
                    index += 1
                except BulletinParseError:
                    pass
            bulletin.security_lines.append(parsed)
            continue
        # An editor's line break can split one security line in two; try it joined.
        if index < len(lines) and not lines[index].startswith("["):
            try:
                bulletin.security_lines.append(parse_security_line(f"{line} {lines[index]}"))
                index += 1
                continue
            except BulletinParseError:
                pass
        if any(start < line_span[1] and line_span[0] < end for start, end in note_spans):
            continue  # part of an in-the-wild note, already read
        bulletin.unparsed_lines.append(line)
    return bulletin


def _continues(parsed: SecurityLine, next_line: str) -> bool:
    """Whether `next_line` is the rest of `parsed`, cut off by a line break in the post.

    Only an unmistakable rest counts: the credit of a line that has none, or the report date
    of a credit that lacks one.
    """
    if next_line.startswith("["):
        return False
    if not parsed.reporter:
        return _REPORTED_BY_RE.search(next_line) is not None
    return parsed.report_date is None and _DATE_ANY_RE.search(f" {next_line}") is not None


def _fix_count(text: str) -> int | None:
    match = _FIX_COUNT_RE.search(text)
    if match is None:
        return None
    count = match["count"]
    if count.isdigit():
        return int(count)
    return _NUMBER_WORDS.get(count.lower())


def _versions(text: str) -> list[VersionMention]:
    """Versions from the version sentence(s): "updated to 124.0.6367.201/.202 for Mac ..."."""
    mentions: list[VersionMention] = []
    for sentence in _SENTENCE_SPLIT_RE.split(text):
        if not _VERSION_SENTENCE_RE.search(sentence):
            continue
        for match in _VERSION_GROUP_RE.finditer(sentence):
            platforms = (match["platforms"] or "").strip()
            for version in _expand_versions(match["version"], match["alts"]):
                mention = VersionMention(version, platforms)
                if mention not in mentions:
                    mentions.append(mention)
    return mentions


def _expand_versions(version: str, alts: str) -> list[str]:
    """``("124.0.6367.201", "/.202")`` -> both versions; an alternative replaces the PATCH."""
    versions = [version]
    head = version.rsplit(".", 1)[0]
    for alt in re.findall(r"\d+", alts or ""):
        expanded = f"{head}.{alt}"
        if expanded not in versions:
            versions.append(expanded)
    return versions
