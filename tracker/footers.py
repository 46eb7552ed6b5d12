"""Structured facts from a Chromium commit message.

Terms (see docs/contributing.md "CL footer reference" in chromium/src):

- *Footers* are ``Key: value`` lines in the **last paragraph** of the message (the last block
  of lines separated by a blank line). A ``Bug: 1234`` line in the body is prose, not a footer.
  A message of one paragraph is both subject and footer paragraph.
- Exceptions to the last-paragraph rule, matched anywhere: ``(cherry picked from commit
  <sha>)`` (git adds it to the body, and a cherry-pick of a cherry-pick carries two) and the
  legacy ``BUG=`` line of pre-2017 commits.
- *Commit position*: ``Cr-Commit-Position: refs/heads/main@{#1303471}``, the commit's number
  on its ref, added by the git-numberer when the change lands. Numbers grow by one per commit
  on a ref. ``refs/heads/master`` is the pre-2021 name of ``refs/heads/main``; the numbers
  simply continue.
- *Branch point*: ``Cr-Branched-From: <sha>-<ref>@{#N}`` on branch commits: the commit the
  branch was cut from. Branches of branches (V8 release branches, ChromeOS side branches)
  carry one line per level, innermost first.
- *Original positions*: a cherry-pick keeps the original's footers renamed
  ``Cr-Original-Commit-Position``, ``Cr-Original-Original-Commit-Position`` (a cherry-pick of
  a cherry-pick), and ``Cr-Original-Branched-From``.
- *Bug references*: ``Bug:`` and ``Fixed:`` hold comma-separated ids, bare (Chromium) or
  ``project:id``. Chromium issues moved to Buganizer in 2024 and kept ids >= 40000000, so
  ``b/351327767`` is Chromium issue 351327767.

`parse_footers` never raises on a str: malformed footers are ignored, not reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "MIGRATED_ISSUE_ID_MIN",
    "BranchedFrom",
    "BugRef",
    "CommitFooters",
    "Position",
    "is_main_ref",
    "parse_bug_list",
    "parse_footers",
    "parse_position",
    "review_number",
]

# Chromium issues on the Buganizer tracker (issues.chromium.org) have ids from 40,000,000 up:
# migrated Monorail issues were renumbered into 40xxxxxx-42xxxxxx, new ones are larger.
MIGRATED_ISSUE_ID_MIN = 40_000_000
CHROMIUM_REVIEW_HOST = "chromium-review.googlesource.com"
MAIN_REFS = frozenset({"refs/heads/main", "refs/heads/master"})

# Numbers are bounded to 12 digits: int() of a huge digit string is slow (and refused past
# 4300 digits), and no real id or position comes near that.
_NUM = r"[0-9]{1,12}"
# depot_tools git_footers.FOOTER_PATTERN, restricted to ASCII: "Key: value".
_FOOTER = re.compile(r"[ \t]*([A-Za-z0-9_-]+):[ \t]*(.*)")
_POSITION = re.compile(rf"([A-Za-z0-9_./-]+)@\{{#({_NUM})\}}")
_BRANCHED_FROM = re.compile(rf"([0-9a-fA-F]{{40}})-([A-Za-z0-9_./-]+)@\{{#({_NUM})\}}")
_ORIGINAL_POSITION_KEY = re.compile(r"cr(-original)+-commit-position")
_CHERRY_PICK = re.compile(r"\(cherry picked from commit ([0-9a-fA-F]{40})(?![0-9a-fA-F])")
_LEGACY_BUG = re.compile(r"[ \t]*BUG[ \t]*=(.*)", re.IGNORECASE)
_CHANGE_ID = re.compile(r"I[0-9a-fA-F]{40}")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_BUG_SEPARATORS = re.compile(r"[,\s]+")
_BARE_ID = re.compile(_NUM)
_PROJECT_ID = re.compile(rf"([A-Za-z][A-Za-z0-9_.-]*)[:/]({_NUM})")
_CRBUG_PATH = re.compile(rf"/(?:([A-Za-z][A-Za-z0-9_.-]*)/)?({_NUM})/?")
_ISSUES_PATH = re.compile(rf"/issues/({_NUM})/?")
_CHROMIUM_ALIASES = frozenset({"chromium", "crbug", "crbug.com"})
_PUNCTUATION_AROUND_IDS = "()[]<>.;'\"`"
_REVERT_SUBJECT = re.compile(r'Revert(\^[0-9]+)? "')


@dataclass(frozen=True)
class Position:
    """A commit position: commit number `number` on `ref` (``refs/heads/main@{#1303471}``)."""

    ref: str
    number: int

    def __str__(self) -> str:
        return f"{self.ref}@{{#{self.number}}}"

    @property
    def is_main(self) -> bool:
        """True on Chromium's trunk (``refs/heads/main`` or its old name ``master``)."""
        return is_main_ref(self.ref)


@dataclass(frozen=True)
class BranchedFrom:
    """A branch point: the branch was cut from commit `sha`, which is `ref` ``@{#number}``."""

    sha: str
    ref: str
    number: int

    @property
    def position(self) -> Position:
        return Position(self.ref, self.number)


@dataclass(frozen=True)
class BugRef:
    """An issue reference: `project` ("chromium", "v8", "b" for Google-internal...) and `id`."""

    project: str
    id: int

    def __str__(self) -> str:
        return f"{self.project}:{self.id}"


@dataclass(frozen=True)
class CommitFooters:
    """What a Chromium commit message says about the commit (see the module docstring).

    - `subject`: the first non-blank line.
    - `commit_position`: the last ``Cr-Commit-Position`` footer, or None (unnumbered repos,
      commits that never went through the commit queue).
    - `original_positions`: ``Cr-Original(-Original)*-Commit-Position`` footers in message order.
    - `branched_from`, `original_branched_from`: ``Cr-Branched-From`` and
      ``Cr-Original-Branched-From`` footers in message order.
    - `bug_refs`: every issue in ``Bug:``, ``Fixed:`` footers and legacy ``BUG=`` lines, in
      order, without duplicates; `fixed_refs`: the subset from ``Fixed:``.
    - `change_id`: the first ``Change-Id`` footer; Gerrit keeps it on every cherry-pick, so it
      joins a main commit to its merges.
    - `reviewed_on`: every ``Reviewed-on:`` (and old ``Review-Url:``) URL; a cherry-pick has the
      original CL's and its own.
    - `cherry_picked_from`: lower-case shas of every ``(cherry picked from commit <sha>)`` in
      the message, in order. In a revert or reland these lines can be quoted from the
      description of the reverted commit (``> (cherry picked ...``); check `is_revert`.
    - `is_revert`: the subject is ``Revert "..."`` or ``Revert^N "..."``, optionally after a
      ``[M125]``-style tag.
    """

    subject: str = ""
    commit_position: Position | None = None
    original_positions: tuple[Position, ...] = ()
    branched_from: tuple[BranchedFrom, ...] = ()
    original_branched_from: tuple[BranchedFrom, ...] = ()
    bug_refs: tuple[BugRef, ...] = ()
    fixed_refs: tuple[BugRef, ...] = ()
    change_id: str | None = None
    reviewed_on: tuple[str, ...] = ()
    cherry_picked_from: tuple[str, ...] = ()
    is_revert: bool = False

    @property
    def chromium_bug_ids(self) -> tuple[int, ...]:
        """Ids of the Chromium issues in `bug_refs` (old Monorail ids and Buganizer ids)."""
        return tuple(ref.id for ref in self.bug_refs if ref.project == "chromium")


def is_main_ref(ref: str) -> bool:
    """True for Chromium's trunk ref, ``refs/heads/main`` or its pre-2021 name ``master``."""
    return ref in MAIN_REFS


def parse_position(value: str) -> Position | None:
    """``refs/heads/main@{#1303471}`` -> Position; None when `value` is not a position."""
    match = _POSITION.fullmatch(value.strip())
    if match is None:
        return None
    return Position(match.group(1), int(match.group(2)))


def _parse_branched_from(value: str) -> BranchedFrom | None:
    match = _BRANCHED_FROM.fullmatch(value.strip())
    if match is None:
        return None
    return BranchedFrom(match.group(1).lower(), match.group(2), int(match.group(3)))


def _bug_from_url(token: str) -> BugRef | None:
    try:
        parts = urlsplit(token)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host in {"crbug.com", "www.crbug.com"}:
        match = _CRBUG_PATH.fullmatch(parts.path)
        if match:
            project = (match.group(1) or "chromium").lower()
            return _bug_ref(project, int(match.group(2)))
    elif host == "issues.chromium.org":
        match = _ISSUES_PATH.fullmatch(parts.path)
        if match:
            return BugRef("chromium", int(match.group(1)))
    elif host == "bugs.chromium.org":
        # Monorail: /p/<project>/issues/detail?id=<n>
        segments = parts.path.strip("/").split("/")
        ids = parse_qs(parts.query).get("id", [])
        if len(segments) == 4 and segments[0] == "p" and ids and _BARE_ID.fullmatch(ids[0]):
            return _bug_ref(segments[1].lower(), int(ids[0]))
    return None


def _bug_ref(project: str, number: int) -> BugRef:
    if project in _CHROMIUM_ALIASES:
        return BugRef("chromium", number)
    if project == "b" and number >= MIGRATED_ISSUE_ID_MIN:
        return BugRef("chromium", number)
    return BugRef(project, number)


def _bug_from_token(token: str) -> BugRef | None:
    token = token.strip(_PUNCTUATION_AROUND_IDS)
    if not token:
        return None
    if _BARE_ID.fullmatch(token):
        return BugRef("chromium", int(token))
    if "://" in token:
        return _bug_from_url(token.split("#", 1)[0])
    if token.lower().startswith(("crbug.com/", "issues.chromium.org/", "bugs.chromium.org/")):
        return _bug_from_url("https://" + token.split("#", 1)[0])
    match = _PROJECT_ID.fullmatch(token)
    if match is None:
        return None
    project, separator = match.group(1).lower(), token[len(match.group(1))]
    # "project/N" is only a convention for b/ (Buganizer); "foo/123" is more likely a path.
    if separator == "/" and project != "b":
        return None
    return _bug_ref(project, int(match.group(2)))


def parse_bug_list(value: str) -> tuple[BugRef, ...]:
    """Issue references in the value of a ``Bug:``/``Fixed:`` footer or ``BUG=`` line.

    Entries are separated by commas and/or whitespace. Accepted: bare numbers (Chromium),
    ``project:N`` (``chromium:``, ``v8:``, ``skia:``...; lower-cased), ``b/N`` and ``b:N``
    (Chromium when N >= 40000000, else the Google-internal tracker "b"), ``crbug.com/N``,
    ``crbug.com/<project>/N`` and issues.chromium.org / bugs.chromium.org URLs. Anything else
    ("None", "(see ...)") is skipped. Order is kept; duplicates are dropped.
    """
    refs: dict[BugRef, None] = {}
    for token in _BUG_SEPARATORS.split(value):
        ref = _bug_from_token(token)
        if ref is not None:
            refs.setdefault(ref)
    return tuple(refs)


def review_number(url: str) -> tuple[str, int] | None:
    """(host, change number) of a code review URL, or None.

    Understands Gerrit ``https://chromium-review.googlesource.com/c/chromium/src/+/5545011``
    (optionally with a patchset), short ``/c/5545011`` and old ``/675964`` and ``/#/c/675964/``
    forms, ``https://crrev.com/c/5545011`` (reported as chromium-review.googlesource.com) and
    Rietveld ``https://codereview.chromium.org/2345``. The host is lower-cased, so
    the same CL gives the same key whatever the URL form.
    """
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not host:
        return None
    path = parts.path
    if parts.fragment.startswith("/"):
        path = parts.fragment  # old Gerrit UI: https://host/#/c/675964/
    segments = [s for s in path.split("/") if s]
    number: str | None = None
    if host == "crrev.com":
        # crrev.com/c/<n> redirects to the chromium/src Gerrit CL; crrev.com/<n> is a commit
        # position, not a CL.
        if len(segments) == 2 and segments[0] == "c" and _BARE_ID.fullmatch(segments[1]):
            return CHROMIUM_REVIEW_HOST, int(segments[1])
        return None
    if "+" in segments:
        after = segments[segments.index("+") + 1 :]
        number = after[0] if after else None
    elif len(segments) in (2, 3) and segments[0] == "c":
        number = segments[1]  # /c/<n> or /c/<n>/<patchset>
    elif len(segments) in (1, 2):
        number = segments[0]  # /<n> (Gerrit, Rietveld) or /<n>/<patchset>
    if number is None or not _BARE_ID.fullmatch(number):
        return None
    return host, int(number)


def _footer_start(lines: list[str]) -> int:
    """Index in `lines` of the first line of the last paragraph (len(lines) if none)."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and lines[start - 1].strip():
        start -= 1
    return start


def _is_revert(subject: str) -> bool:
    text = subject
    # Merge tags such as "[M125] " or "[Sheriff] " come before the Revert.
    while text.startswith("["):
        end = text.find("]")
        if end < 0:
            break
        text = text[end + 1 :].lstrip()
    return _REVERT_SUBJECT.match(text) is not None


def parse_footers(message: str) -> CommitFooters:
    """Parse a Chromium commit message into CommitFooters; never raises on a str.

    Footer keys are matched case-insensitively (depot_tools normalises ``BUG:`` to ``Bug:``);
    CRLF line ends, trailing whitespace and tabs are tolerated.
    """
    # Lines keep their trailing whitespace: the matches below allow it and strip what they
    # keep, and stripping every line of a long body was a sixth of the parse.
    lines = message.replace("\r\n", "\n").split("\n")
    subject = next((line.strip() for line in lines if line and not line.isspace()), "")
    footer_start = _footer_start(lines)

    commit_position: Position | None = None
    original_positions: list[Position] = []
    branched_from: list[BranchedFrom] = []
    original_branched_from: list[BranchedFrom] = []
    bug_refs: dict[BugRef, None] = {}
    fixed_refs: dict[BugRef, None] = {}
    change_id: str | None = None
    reviewed_on: list[str] = []

    for index, line in enumerate(lines):
        # Testing for "=" first (most lines have none) costs far less than a match.
        legacy = _LEGACY_BUG.fullmatch(line) if "=" in line else None
        if legacy:  # legacy BUG= lines count anywhere in the message
            bug_refs.update(dict.fromkeys(parse_bug_list(legacy.group(1))))
            continue
        footer = _FOOTER.fullmatch(line) if index >= footer_start else None
        if footer is None:
            continue
        key, value = footer.group(1).lower(), footer.group(2).strip()
        if key == "cr-commit-position":
            commit_position = parse_position(value) or commit_position
        elif key.startswith("cr-original-") and _ORIGINAL_POSITION_KEY.fullmatch(key):
            position = parse_position(value)
            if position is not None:
                original_positions.append(position)
        elif key in ("cr-branched-from", "cr-original-branched-from"):
            branch_point = _parse_branched_from(value)
            if branch_point is not None:
                target = branched_from if key == "cr-branched-from" else original_branched_from
                target.append(branch_point)
        elif key in ("bug", "fixed"):
            refs = parse_bug_list(value)
            bug_refs.update(dict.fromkeys(refs))
            if key == "fixed":
                fixed_refs.update(dict.fromkeys(refs))
        elif key == "change-id":
            if change_id is None and _CHANGE_ID.fullmatch(value):
                change_id = "I" + value[1:].lower()
        elif key in ("reviewed-on", "review-url"):
            url = _URL.match(value)
            if url is not None:
                reviewed_on.append(url.group(0))

    cherry_picked_from = tuple(m.group(1).lower() for m in _CHERRY_PICK.finditer(message))
    return CommitFooters(
        subject=subject,
        commit_position=commit_position,
        original_positions=tuple(original_positions),
        branched_from=tuple(branched_from),
        original_branched_from=tuple(original_branched_from),
        bug_refs=tuple(bug_refs),
        fixed_refs=tuple(fixed_refs),
        change_id=change_id,
        reviewed_on=tuple(reviewed_on),
        cherry_picked_from=cherry_picked_from,
        is_revert=_is_revert(subject),
    )
