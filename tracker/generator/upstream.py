"""Plan and write a Chromium-shaped upstream.

Main carries `Cr-Commit-Position: refs/heads/main@{#N}` footers, `chrome/VERSION` bumps at
each milestone, and security fixes with bug ids in the forms real Chromium uses. Each milestone
but the newest is cut to `refs/branch-heads/BUILD`, whose commits carry branch positions and
`Cr-Branched-From`, cherry-picks of fixes, and "Incrementing VERSION" commits tagged
MAJOR.0.BUILD.PATCH. Everything is planned first (so forks can refer to it) and then written.

With `WorldSpec.chromium_branches`, the upstream also has release branches in the shape of a
Chromium dependency repository such as ANGLE: ``refs/heads/chromium/NNNN``, one per Chromium
build, with no Cr-Branched-From (nor branch positions), most of them bare branch points (their
tip a main commit), one in 25 with cherry-picks of later main commits, and every fourth of
those with a ``NNNN_1`` branch cut from its commits (sharing them), every other one of which
has a ``NNNN_1_1`` at the very same tip. One branch's first cherry-pick is dated before its
branch point (clocks are skewed).
"""

from __future__ import annotations

import hashlib
import random
from array import array
from dataclasses import dataclass, field

from tracker.generator.fastimport import FastImportWriter, Person
from tracker.generator.spec import DAY, WorldSpec

MAIN = -1
UPSTREAM_NS = "refs/ns/upstream"
LINES_PER_FILE = 12
PATCH_LINE = 6  # the line of a hot file that fork patches and scheduled upstream changes touch

DIRS = (
    "base",
    "cc/trees",
    "chrome/browser/ui/tabs",
    "components/autofill/core",
    "content/browser/renderer_host",
    "extensions/browser",
    "gpu/command_buffer/service",
    "media/filters",
    "net/http",
    "pdf",
    "services/network",
    "third_party/blink/renderer/core/dom",
    "ui/views/controls",
)
COMPONENTS = (
    ("Blink", "DOM"),
    ("Views", "Tab Strip"),
    ("Autofill", "Autofill"),
    ("Mojo", "IPC"),
    ("GPU", "ANGLE"),
    ("Media", "Media"),
    ("Net", "Network"),
    ("PDF", "PDFium"),
    ("Extensions", "Extensions"),
    ("DevTools", "DevTools"),
)
VERBS = ("Fix", "Remove", "Add", "Refactor", "Avoid", "Clean up", "Use", "Handle", "Simplify")
OBJECTS = (
    "null check in",
    "lifetime of",
    "race in",
    "unused code in",
    "crash in",
    "metrics for",
    "flag for",
    "test for",
)
THINGS = (
    "TabStripModel",
    "RenderFrameHostImpl",
    "URLLoader",
    "AutofillManager",
    "MediaSession",
    "PaintLayer",
    "ScopedObservation",
    "BrowserView",
    "SharedImage",
)
VULN_TYPES = (
    "Use after free",
    "Heap buffer overflow",
    "Type Confusion",
    "Inappropriate implementation",
    "Out of bounds read",
    "Insufficient policy enforcement",
    "Integer overflow",
)
SEVERITIES = ("Critical", "High", "High", "High", "Medium", "Medium", "Low")
REPORTERS = (
    "Anonymous",
    "Sergei Glazunov of Google Project Zero",
    "Man Yue Mo of GitHub Security Lab",
    "Cassidy Kim(@cassidy6564)",
    "Google Big Sleep",
)
AUTHORS = tuple(
    Person(n, e)
    for n, e in (
        ("Ada Lovelace", "ada@chromium.org"),
        ("Taylor Bergquist", "tbergquist@chromium.org"),
        ("Peter Boström", "pbos@chromium.org"),
        ("Grace Hopper", "grace@google.com"),
        ("Linus Pauling", "linus@chromium.org"),
        ("Mei Tanaka", "mtanaka@chromium.org"),
    )
)
COMMIT_BOT = Person(
    "Chromium LUCI CQ", "chromium-scoped@luci-project-accounts.iam.gserviceaccount.com"
)
RELEASE_BOT = Person(
    "Chrome Release Bot (LUCI)",
    "chrome-official-brancher@chops-service-accounts.iam.gserviceaccount.com",
)


ROLLER = Person(
    "v8-ci-autoroll-builder",
    "v8-ci-autoroll-builder@chops-service-accounts.iam.gserviceaccount.com",
)


def fake_hex(*parts: object, length: int = 40) -> str:
    """A deterministic hex string (Change-Id bodies, fake DEPS revisions)."""
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:length]


@dataclass
class Vulnerability:
    """An upstream security bug and its fix. `parts` are the main indices of its fix commits
    (two for a two-commit fix); for a dependency-roll fix, the index of the roll."""

    number: int
    cve: str
    bug_ids: tuple[int, ...]
    severity: str
    in_the_wild: bool
    vuln_type: str
    component: str
    kind: str  # "chromium" or "dependency_roll"
    reporter: str
    report_time: int
    land_time: int
    parts: list[int] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.vuln_type} in {self.component}"

    def fix_path(self, part: int) -> str:
        return (
            f"security/{self.component.lower().replace(' ', '_')}/fix_{self.bug_ids[0]}_{part}.cc"
        )

    def fix_content(self, part: int, adjusted: bool = False) -> bytes:
        lines = [
            f"// Fix for crbug.com/{self.bug_ids[0]} (part {part + 1})",
            f"bool Check{self.number}_{part}(const Input& input) {{",
            "  return input.size() <= input.capacity();",
            "}",
        ]
        if adjusted:
            lines.insert(3, "  // Adjusted for the fork's release branch.")
        return ("\n".join(lines) + "\n").encode()


@dataclass
class BranchCommit:
    time: int
    kind: str  # "bump", "pick" or "roll"
    vuln: int = -1
    part: int = 0
    patch: int = 0  # the PATCH number of a bump
    mark: int = 0


@dataclass
class Milestone:
    k: int
    milestone: int
    build: int
    bp_index: int
    cut_time: int
    stable_start: int = 0
    support_end: int = 0
    extended: bool = False
    commits: list[BranchCommit] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"refs/branch-heads/{self.build}"

    def version(self, patch: int) -> str:
        return f"{self.milestone}.0.{self.build}.{patch}"

    def channel_at(self, when: int) -> str | None:
        if when < self.stable_start:
            return "Beta"
        if when < self.support_end:
            return "Extended" if self.extended and when >= self.stable_end else "Stable"
        return None

    stable_end: int = 0
    _picks: dict[tuple[int, int], int] | None = None

    def pick_index(self) -> dict[tuple[int, int], int]:
        """(vulnerability, part) -> index of the branch commit that brings it (after planning)."""
        if self._picks is None:
            self._picks = {
                (c.vuln, c.part): j
                for j, c in enumerate(self.commits)
                if c.kind in ("pick", "roll")
            }
        return self._picks


@dataclass(frozen=True)
class UpRef:
    """A point in upstream history: main commit `index`, or commit `index` (0-based) on the
    release branch of milestone number `line` (the k of the plan's milestone list)."""

    line: int
    index: int


@dataclass
class ChromiumBranch:
    """A release branch ``refs/heads/chromium/<name>`` without branch-point footers.

    Cut from main commit `bp_index`, or, when `parent` is set (an index into the plan's
    `chromium` list), from the commit after `parent_picks` of that branch's own commits; then
    its own cherry-picks of the main commits `picks`, oldest first. `marks` are the marks of
    its own commits once written (the last one its tip).
    """

    name: str
    bp_index: int
    picks: list[int] = field(default_factory=list)
    parent: int = -1
    parent_picks: int = 0
    skewed: bool = False
    marks: list[int] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"refs/heads/chromium/{self.name}"


FIRST_CHROMIUM_BRANCH = 2013  # ANGLE's oldest, refs/heads/chromium/2013


# The vulnerabilities with special shapes land late, while forks' release branches are live:
# 4 the dependency roll, 3 the two-commit fix, 5 the in-the-wild one, 2 the one with two ids.
_LATE_SPECIALS = (4, 3, 5, 2)


def _landing_slot(number: int, count: int) -> int:
    """Order in time of vulnerability `number` among `count` (specials land late)."""
    if count < 10:
        return number
    late = {v: count - 5 + i for i, v in enumerate(_LATE_SPECIALS)}
    if number in late:
        return late[number]
    others = [n for n in range(count) if n not in late]
    free = [s for s in range(count) if s not in late.values()]
    return free[others.index(number)]


class UpstreamPlan:
    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        n = spec.main_commits
        if n < 50 * spec.milestones:
            raise ValueError("main_commits must be at least 50 per milestone")
        start, now = spec.start_ts, spec.now_ts
        step = (now - 3600 - start) / n
        self.times = array("q", (int(start + (i + 1) * step) for i in range(n)))
        self.seg_starts = [k * n // spec.milestones for k in range(spec.milestones)]
        self.events: dict[int, tuple] = {}
        self.hot_files: list[int] = []
        self.hot_events: dict[int, list[tuple[int, str]]] = {}
        self.marks: dict[int, int] = {}  # main index -> mark (special commits only)
        self.next_mark = 1
        self.milestones = self._plan_milestones()
        self.vulns: list[Vulnerability] = []
        self._plan_vulnerabilities()
        self.chromium = self._plan_chromium_branches()

    # --- time and position -------------------------------------------------------------
    def position(self, index: int) -> int:
        return self.spec.first_position + index

    def index_at(self, when: int) -> int:
        """The last main index committed at or before `when` (0 if none)."""
        lo, hi = 0, len(self.times) - 1
        if when < self.times[0]:
            return 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.times[mid] <= when:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def milestone_of_index(self, index: int) -> int:
        k = 0
        for j, s in enumerate(self.seg_starts):
            if index >= s:
                k = j
        return k

    def main_version(self, index: int) -> str:
        k = self.milestone_of_index(index)
        return f"{self.spec.first_milestone + k}.0.{self.spec.first_build + 55 * k}.0"

    def reserve(self, when: int, event: tuple) -> int:
        """Put a special commit on main at the first free index at or after `when`."""
        index = max(1, self.index_at(when))
        while index in self.events or index in self.seg_starts or self._is_branch_point(index):
            index += 1
        if index >= len(self.times):
            raise ValueError("no room on main for a scheduled commit; make main longer")
        self.events[index] = event
        return index

    def _is_branch_point(self, index: int) -> bool:
        return any(m.bp_index == index for m in getattr(self, "milestones", ()))

    def allocate_hot_file(self) -> int:
        """A pool file reserved for one fork patch: random upstream commits never touch it."""
        file_id = len(self.hot_files)
        if file_id >= self.spec.files // 2:
            raise ValueError("not enough files for the forks' patches; raise WorldSpec.files")
        self.hot_files.append(file_id)
        self.hot_events[file_id] = []
        return file_id

    def schedule_hot_change(self, when: int, file_id: int, text: str, event: tuple) -> int:
        index = self.reserve(when, ("hot", file_id, text, *event))
        self.hot_events[file_id].append((index, text))
        self.hot_events[file_id].sort()
        return index

    # --- files ---------------------------------------------------------------------------
    def file_path(self, file_id: int) -> str:
        return f"{DIRS[file_id % len(DIRS)]}/gen_{file_id:05d}.cc"

    def initial_line(self, file_id: int, line: int) -> str:
        return f"// {self.file_path(file_id)} line {line}"

    def hot_lines_at(self, file_id: int, base: UpRef) -> list[str]:
        """Contents of a hot file at an upstream point (branches never change pool files)."""
        index = base.index if base.line == MAIN else self.milestones[base.line].bp_index
        lines = [self.initial_line(file_id, n) for n in range(LINES_PER_FILE)]
        for event_index, text in self.hot_events[file_id]:
            if event_index <= index:
                lines[PATCH_LINE] = text
        return lines

    # --- milestones and branches ---------------------------------------------------------
    def _plan_milestones(self) -> list[Milestone]:
        spec = self.spec
        result = []
        for k in range(spec.milestones - 1):
            bp = self.seg_starts[k + 1] - 1
            cut = self.times[bp]
            result.append(
                Milestone(
                    k=k,
                    milestone=spec.first_milestone + k,
                    build=spec.first_build + 55 * k,
                    bp_index=bp,
                    cut_time=cut,
                    stable_start=cut + 24 * DAY,
                    extended=(spec.first_milestone + k) % 2 == 0,
                )
            )
        for k, m in enumerate(result):
            nxt = result[k + 1].stable_start if k + 1 < len(result) else 1 << 40
            m.stable_end = nxt
            m.support_end = m.stable_start + 56 * DAY if m.extended else nxt
            if m.support_end < nxt:
                m.support_end = nxt
        # Version bumps: one a day after the cut, then weekly while the branch is supported.
        for m in result:
            when, patch = m.cut_time + DAY, 1
            while when <= spec.now_ts - 3600 and when < m.support_end:
                m.commits.append(BranchCommit(time=when, kind="bump", patch=patch))
                when += 7 * DAY
                patch += 7 + (patch % 3)
        return result

    def _plan_vulnerabilities(self) -> None:
        spec, rng = self.spec, self.rng
        first = self.milestones[0].cut_time + 3 * DAY
        last = spec.now_ts - 2 * DAY
        count = spec.vulnerabilities
        for number in range(count):
            slot = _landing_slot(number, count)
            land = first + (last - first) * (slot + 0.5) / count
            land = int(land + rng.uniform(-0.3, 0.3) * (last - first) / count)
            year = 2026
            bug = rng.randrange(300_000_000, 499_999_999)
            bug_ids: tuple[int, ...] = (bug,)
            kind = "chromium"
            severity = SEVERITIES[number % len(SEVERITIES)]
            component = COMPONENTS[number % len(COMPONENTS)][1]
            if number == 1:
                bug_ids = (rng.randrange(1_400_000, 1_499_999),)  # an old Monorail id
            if number == 2:
                bug_ids = (bug, rng.randrange(40_000_000, 42_999_999))  # several ids, one line
            if number == 4:
                kind, component, severity = "dependency_roll", "V8", "High"
            vuln = Vulnerability(
                number=number,
                cve=f"CVE-{year}-{4100 + number * 7}",
                bug_ids=bug_ids,
                severity=severity,
                in_the_wild=number == 5,
                vuln_type=VULN_TYPES[number % len(VULN_TYPES)],
                component=component,
                kind=kind,
                reporter=REPORTERS[number % len(REPORTERS)],
                report_time=land - rng.randrange(5, 30) * DAY,
                land_time=land,
            )
            if number == 5:
                vuln.severity = "High"
            vuln.parts.append(self.reserve(land, ("fix", number, 0)))
            if number == 3:  # a fix in two commits
                vuln.parts.append(self.reserve(land + 2 * DAY, ("fix", number, 1)))
            self.vulns.append(vuln)
        for vuln in self.vulns:
            self._plan_picks(vuln)
        for m in self.milestones:
            m.commits.sort(key=lambda c: (c.time, c.kind != "bump"))
            m._picks = None  # built on first use, now that the order is final

    def _plan_picks(self, vuln: Vulnerability) -> None:
        for part, index in enumerate(vuln.parts):
            landed = self.times[index]
            for m in reversed(self.milestones):  # newer first, as Chrome merges
                if m.bp_index >= index or m.cut_time > landed:
                    continue
                when = landed + DAY + (self.milestones[-1].k - m.k) * 6 * 3600
                channel = m.channel_at(when)
                if channel is None or when > self.spec.now_ts - 3600:
                    continue
                if vuln.severity == "Low" or (
                    channel == "Extended" and vuln.severity not in ("Critical", "High")
                ):
                    continue
                kind = "roll" if vuln.kind == "dependency_roll" else "pick"
                m.commits.append(BranchCommit(time=when, kind=kind, vuln=vuln.number, part=part))

    def _plan_chromium_branches(self) -> list[ChromiumBranch]:
        """The refs/heads/chromium/* branches (see the module docstring), by number."""
        count, n = self.spec.chromium_branches, len(self.times)
        if count > n - 2:
            raise ValueError("chromium_branches must be fewer than main_commits - 1")
        rng = random.Random(self.spec.seed * 104729 + 3)  # apart from the rest of the plan
        branches: list[ChromiumBranch] = []
        with_picks = 0
        for k in range(count):
            bp = 1 + k * (n - 2) // max(count, 1)
            branch = ChromiumBranch(str(FIRST_CHROMIUM_BRANCH + k), bp)
            branches.append(branch)
            if k % 25 != 7 or bp >= n - 1:
                continue
            picks = sorted(rng.sample(range(bp + 1, n), min(n - 1 - bp, rng.randint(1, 8))))
            branch.picks = picks
            branch.skewed = with_picks == 1
            with_picks += 1
            if with_picks % 4 != 1:
                continue
            parent = len(branches) - 1
            cut = rng.randint(1, len(picks))
            child = ChromiumBranch(f"{branch.name}_1", bp, parent=parent, parent_picks=cut)
            later = range(picks[cut - 1] + 1, n)
            child.picks = sorted(rng.sample(later, min(len(later), rng.randint(0, 2))))
            branches.append(child)
            if with_picks % 8 == 1:
                branches.append(
                    ChromiumBranch(
                        f"{branch.name}_1_1", bp, parent=len(branches) - 1, parent_picks=-1
                    )
                )
        return branches

    # --- containment (the ground truth of ancestry) --------------------------------------
    def part_in(self, base: UpRef, vuln: Vulnerability, part: int) -> bool:
        index = vuln.parts[part]
        if base.line == MAIN:
            return index <= base.index
        m = self.milestones[base.line]
        if index <= m.bp_index:
            return True
        picked = m.pick_index().get((vuln.number, part))
        return picked is not None and picked <= base.index

    def vuln_in(self, base: UpRef, vuln: Vulnerability) -> bool:
        return all(self.part_in(base, vuln, p) for p in range(len(vuln.parts)))

    def releases(self) -> list[tuple[int, Milestone, int, str]]:
        """Every upstream release: (time, milestone, branch index, channel), by time."""
        out = []
        for m in self.milestones:
            for j, c in enumerate(m.commits):
                if c.kind == "bump":
                    channel = m.channel_at(c.time)
                    if channel:
                        out.append((c.time, m, j, channel))
        out.sort(key=lambda r: (r[0], r[1].k))
        return out

    def version_commit(self, version: str) -> UpRef:
        for m in self.milestones:
            for j, c in enumerate(m.commits):
                if c.kind == "bump" and m.version(c.patch) == version:
                    return UpRef(m.k, j)
        raise KeyError(version)

    def latest_tag(self, k: int, when: int) -> int | None:
        """Index of the newest version-bump commit on milestone k's branch at `when`."""
        best = None
        for j, c in enumerate(self.milestones[k].commits):
            if c.kind == "bump" and c.time <= when:
                best = j
        return best

    def stable_version_at(self, when: int) -> tuple[UpRef, str] | None:
        best = None
        for t, m, j, channel in self.releases():
            if t <= when and channel == "Stable":
                best = (UpRef(m.k, j), m.version(m.commits[j].patch))
        return best

    def branch_version(self, base: UpRef) -> str:
        """chrome/VERSION at an upstream point."""
        if base.line == MAIN:
            return self.main_version(base.index)
        m = self.milestones[base.line]
        patch = 0
        for c in m.commits[: base.index + 1]:
            if c.kind == "bump":
                patch = c.patch
        return m.version(patch) if patch else self.main_version(m.bp_index)

    def new_mark(self) -> int:
        mark = self.next_mark
        self.next_mark += 1
        return mark


# --- messages ------------------------------------------------------------------------------


def _bug_footer(rng: random.Random, index: int) -> list[str]:
    roll = rng.random()
    if roll < 0.25:
        return []
    if roll < 0.5:
        return [f"Bug: {rng.randrange(300_000_000, 499_999_999)}"]
    if roll < 0.6:
        return [f"Bug: {rng.randrange(1_000_000, 1_499_999)}"]
    if roll < 0.7:
        return [f"Bug: chromium:{rng.randrange(1_000_000, 1_499_999)}"]
    if roll < 0.78:
        return [f"Bug: b/{rng.randrange(300_000_000, 499_999_999)}"]
    if roll < 0.88:
        a, b = rng.randrange(40_000_000, 42_999_999), rng.randrange(300_000_000, 499_999_999)
        return [f"Bug: {a}, {b}"]
    return [f"Fixed: {rng.randrange(300_000_000, 499_999_999)}"]


def change_id(*parts: object) -> str:
    return "I" + fake_hex("change", *parts)


def review_url(number: int) -> str:
    return f"https://chromium-review.googlesource.com/c/chromium/src/+/{number}"


def main_message(
    subject: str,
    body: str,
    bug_lines: list[str],
    cid: str,
    cl: int,
    reviewer: Person,
    author: Person,
    position: int,
    legacy: bool = False,
) -> str:
    if legacy:
        footers = [
            f"Review-Url: https://codereview.chromium.org/{cl}",
            f"Cr-Commit-Position: refs/heads/main@{{#{position}}}",
        ]
        bug = "\n".join(line.replace("Bug: ", "BUG=") for line in bug_lines)
        return f"{subject}\n\n{body}\n\n{bug}\nR={reviewer.email}\n\n" + "\n".join(footers) + "\n"
    footers = [
        *bug_lines,
        f"Change-Id: {cid}",
        f"Reviewed-on: {review_url(cl)}",
        f"Reviewed-by: {reviewer.name} <{reviewer.email}>",
        f"Commit-Queue: {author.name} <{author.email}>",
        f"Cr-Commit-Position: refs/heads/main@{{#{position}}}",
    ]
    return f"{subject}\n\n{body}\n\n" + "\n".join(footers) + "\n"


def random_subject(rng: random.Random) -> tuple[str, str]:
    component = COMPONENTS[rng.randrange(len(COMPONENTS))][0]
    subject = (
        f"[{component}] {VERBS[rng.randrange(len(VERBS))]} "
        f"{OBJECTS[rng.randrange(len(OBJECTS))]} {THINGS[rng.randrange(len(THINGS))]}"
    )
    body = (
        f"This change keeps {THINGS[rng.randrange(len(THINGS))]} consistent when the "
        "observed object goes away first.\nNo behaviour change for users."
    )
    return subject, body


def version_file(version: str) -> bytes:
    major, minor, build, patch = version.split(".")
    return f"MAJOR={major}\nMINOR={minor}\nBUILD={build}\nPATCH={patch}\n".encode()


def deps_file(v8_revision: str) -> bytes:
    return (
        "vars = {\n"
        f"  'v8_revision': '{v8_revision}',\n"
        "  'skia_revision': '3744490336cf54f6a167643a8e40298cd6ce2756',\n"
        "}\n"
    ).encode()


# --- writing -------------------------------------------------------------------------------


def main_mark(index: int) -> int:
    """Main commit `index` always gets mark index + 1; other commits get marks after main's."""
    return index + 1


def fix_message_parts(
    plan: UpstreamPlan, vuln: Vulnerability, part: int
) -> tuple[str, str, list[str]]:
    """Subject, body and footers (without Cr-Commit-Position) of a fix commit on main."""
    thing = THINGS[vuln.number % len(THINGS)]
    if vuln.kind == "dependency_roll":
        old, new = (
            fake_hex("v8", vuln.number, 0, length=12),
            fake_hex("v8", vuln.number, 1, length=12),
        )
        subject = f"Roll V8 from {old} to {new} (4 revisions)"
        body = (
            f"https://chromium.googlesource.com/v8/v8.git/+log/{old}..{new}\n\n"
            "If this roll has caused a breakage, revert this CL and stop the roller\n"
            "using the controls here:\nhttps://autoroll.skia.org/r/v8-chromium-autoroll"
        )
        footers = [
            f"Change-Id: {change_id('roll', plan.spec.seed, vuln.number)}",
            f"Reviewed-on: {review_url(5_400_000 + vuln.number * 10)}",
            f"Bot-Commit: {ROLLER.name} <{ROLLER.email}>",
            f"Commit-Queue: {ROLLER.name} <{ROLLER.email}>",
        ]
        return subject, body, footers
    author = AUTHORS[vuln.number % len(AUTHORS)]
    reviewer = AUTHORS[(vuln.number + 1) % len(AUTHORS)]
    subject = f"[{COMPONENTS[vuln.number % len(COMPONENTS)][0]}] Check input capacity in {thing}"
    if part:
        subject += " (part 2)"
    body = (
        f"{thing} could read past the end of its input when the caller\n"
        "shrank it during iteration. Copy the input first."
    )
    ids = vuln.bug_ids
    if len(ids) > 1:
        bug = "Bug: " + ", ".join(str(i) for i in ids)
    elif part == 1:
        bug = f"Fixed: {ids[0]}"
    else:
        bug = ("Bug: {}", "Fixed: {}", "Bug: chromium:{}", "Bug: b/{}")[vuln.number % 4].format(
            ids[0]
        )
        if ids[0] < 40_000_000:
            bug = f"Bug: {ids[0]}"
    footers = [
        bug,
        f"Change-Id: {change_id('fix', plan.spec.seed, vuln.number, part)}",
        f"Reviewed-on: {review_url(5_500_000 + vuln.number * 10 + part)}",
        f"Reviewed-by: {reviewer.name} <{reviewer.email}>",
        f"Commit-Queue: {author.name} <{author.email}>",
    ]
    return subject, body, footers


def fix_files(vuln: Vulnerability, part: int, adjusted: bool = False) -> dict[str, bytes]:
    if vuln.kind == "dependency_roll":
        return {"DEPS": deps_file(fake_hex("v8", vuln.number, 1))}
    return {vuln.fix_path(part): vuln.fix_content(part, adjusted)}


def write_main(plan: UpstreamPlan, w: FastImportWriter) -> None:
    """Phase 1: every main commit, in order, on UPSTREAM_NS/heads/main."""
    spec = plan.spec
    rng = random.Random(spec.seed * 7919 + 1)
    ref = f"{UPSTREAM_NS}/heads/main"
    hot_limit = spec.files // 2
    contents = [[plan.initial_line(f, n) for n in range(LINES_PER_FILE)] for f in range(spec.files)]
    vulns = {v.number: v for v in plan.vulns}
    for i in range(len(plan.times)):
        when = plan.times[i]
        author = AUTHORS[rng.randrange(len(AUTHORS))]
        reviewer = AUTHORS[rng.randrange(len(AUTHORS))]
        position = plan.position(i)
        event = plan.events.get(i)
        files: dict[str, bytes]
        if i == 0:
            files = {plan.file_path(f): _text(contents[f]) for f in range(spec.files)}
            files["chrome/VERSION"] = version_file(plan.main_version(0))
            files["DEPS"] = deps_file(fake_hex("v8", "initial"))
            files["README.md"] = b"# Chromium (generated)\n"
            message = main_message(
                "Initial import",
                "Generated history.",
                [],
                change_id("root", spec.seed),
                4_000_000,
                reviewer,
                author,
                position,
            )
        elif i in plan.seg_starts:
            version = plan.main_version(i)
            files = {"chrome/VERSION": version_file(version)}
            message = main_message(
                f"Incrementing VERSION to {version}",
                "Automatic version bump.",
                [],
                change_id("bump", spec.seed, i),
                4_100_000 + i,
                reviewer,
                COMMIT_BOT,
                position,
            )
            author = COMMIT_BOT
        elif event and event[0] == "fix":
            vuln, part = vulns[event[1]], event[2]
            author = AUTHORS[vuln.number % len(AUTHORS)]
            subject, body, footers = fix_message_parts(plan, vuln, part)
            files = fix_files(vuln, part)
            message = (
                f"{subject}\n\n{body}\n\n"
                + "\n".join([*footers, f"Cr-Commit-Position: refs/heads/main@{{#{position}}}"])
                + "\n"
            )
        elif event and event[0] == "hot":
            _, file_id, text, _kind, subject = event[:5]
            contents[file_id][PATCH_LINE] = text
            files = {plan.file_path(file_id): _text(contents[file_id])}
            message = main_message(
                subject,
                "Make the behaviour configurable for embedders.",
                _bug_footer(rng, i),
                change_id("hot", spec.seed, i),
                4_200_000 + i,
                reviewer,
                author,
                position,
            )
        else:
            file_id = rng.randrange(hot_limit, spec.files)
            line = rng.randrange(LINES_PER_FILE)
            contents[file_id][line] = f"// {plan.file_path(file_id)} line {line} r{i}"
            files = {plan.file_path(file_id): _text(contents[file_id])}
            subject, body = random_subject(rng)
            message = main_message(
                subject,
                body,
                _bug_footer(rng, i),
                change_id("main", spec.seed, i),
                4_300_000 + i,
                reviewer,
                author,
                position,
                legacy=rng.random() < 0.02,
            )
        w.commit(
            ref,
            main_mark(i),
            author=author,
            author_time=when - 3600 * (1 + i % 5),
            committer=COMMIT_BOT,
            commit_time=when,
            message=message,
            parent=f":{main_mark(i - 1)}" if i else None,
            files=files,
        )
        if i == 0 or i in plan.seg_starts:  # main builds are tagged MAJOR.0.BUILD.0
            version = plan.main_version(i)
            w.tag(
                version, f":{main_mark(i)}", tagger=RELEASE_BOT, when=when, message=f"{version}\n"
            )
    plan.next_mark = len(plan.times) + 1


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def pick_message(
    plan: UpstreamPlan, m: Milestone, n: int, vuln: Vulnerability, part: int, shas: Shas
) -> str:
    subject, body, footers = fix_message_parts(plan, vuln, part)
    main_index = vuln.parts[part]
    lines = [
        *footers,
        f"Cr-Original-Commit-Position: refs/heads/main@{{#{plan.position(main_index)}}}",
        f"Reviewed-on: {review_url(6_000_000 + vuln.number * 100 + m.k * 10 + part)}",
        "Bot-Commit: Rubber Stamper <rubber-stamper@appspot.gserviceaccount.com>",
        *branch_footers(plan, m, n, shas),
    ]
    return (
        f"[M{m.milestone}] {subject}\n\n{body}\n\n"
        f"(cherry picked from commit {shas.main(main_index)})\n\n" + "\n".join(lines) + "\n"
    )


def branch_footers(plan: UpstreamPlan, m: Milestone, n: int, shas: Shas) -> list[str]:
    return [
        f"Cr-Commit-Position: {m.ref}@{{#{n}}}",
        f"Cr-Branched-From: {shas.main(m.bp_index)}"
        f"-refs/heads/main@{{#{plan.position(m.bp_index)}}}",
    ]


class Shas:
    """Commit ids by mark, read from fast-import's exported marks file."""

    def __init__(self, marks_file) -> None:
        self.by_mark: dict[int, str] = {}
        with open(marks_file, "rb") as fh:
            for line in fh:
                mark, sha = line.split()
                self.by_mark[int(mark[1:])] = sha.decode()

    def __getitem__(self, mark: int) -> str:
        return self.by_mark[mark]

    def main(self, index: int) -> str:
        return self.by_mark[main_mark(index)]


def chromium_pick_message(plan: UpstreamPlan, branch: ChromiumBranch, j: int, shas: Shas) -> str:
    """A cherry-pick onto a dependency repository's chromium/NNNN branch: no positions."""
    index = branch.picks[j]
    rng = random.Random(index * 31 + j)
    subject, body = random_subject(rng)
    number = branch.name.split("_")[0]
    reviewer = AUTHORS[index % len(AUTHORS)]
    return (
        f"[M{number}] {subject}\n\n{body}\n\n(cherry picked from commit {shas.main(index)})\n\n"
        f"Change-Id: {change_id('chromium-branch', plan.spec.seed, branch.name, j)}\n"
        f"Reviewed-on: https://chromium-review.googlesource.com/c/angle/angle/+/"
        f"{7_000_000 + index * 10 + j}\n"
        f"Reviewed-by: {reviewer.name} <{reviewer.email}>\n"
    )


def write_chromium_branches(plan: UpstreamPlan, w: FastImportWriter, shas: Shas) -> None:
    """The refs/heads/chromium/* branches (part of phase 2: their picks name main commits)."""
    tips: list[str] = []  # each branch's tip, as a fast-import reference
    for branch in plan.chromium:
        ref = f"{UPSTREAM_NS}/heads/chromium/{branch.name}"
        if branch.parent < 0:
            parent = f":{main_mark(branch.bp_index)}"
        elif branch.parent_picks < 0:
            parent = tips[branch.parent]
        else:
            parent = f":{plan.chromium[branch.parent].marks[branch.parent_picks - 1]}"
        if not branch.picks:
            w.reset(ref, parent)
        for j, index in enumerate(branch.picks):
            mark = plan.new_mark()
            branch.marks.append(mark)
            when = plan.times[index] + 3600
            if branch.skewed and j == 0:
                when = plan.times[branch.bp_index] - DAY
            w.commit(
                ref,
                mark,
                author=AUTHORS[index % len(AUTHORS)],
                author_time=when - 600,
                committer=COMMIT_BOT,
                commit_time=when,
                message=chromium_pick_message(plan, branch, j, shas),
                parent=parent,
                files={f"chromium_branches/{branch.name}.txt": f"pick {j} of {index}\n".encode()},
            )
            parent = f":{mark}"
        tips.append(parent)


def chromium_branch_commits(plan: UpstreamPlan, shas: Shas) -> list[dict]:
    """Ground truth of the chromium/* branches: each one's tip, branch point on main and own
    commits (those main lacks, what ``git log main..<branch>`` lists)."""
    own: list[list[str]] = []
    out = []
    for branch in plan.chromium:
        inherited: list[str] = []
        if branch.parent >= 0:
            source = own[branch.parent]
            inherited = source[: branch.parent_picks] if branch.parent_picks >= 0 else source
        mine = inherited + [shas[mark] for mark in branch.marks]
        own.append(mine)
        out.append(
            {
                "ref": branch.ref,
                "tip": mine[-1] if mine else shas.main(branch.bp_index),
                "branch_point": shas.main(branch.bp_index),
                "own_commits": mine,
            }
        )
    return out


def write_branches(plan: UpstreamPlan, w: FastImportWriter, shas: Shas) -> None:
    """Phase 2: the release branches and their version tags (needs main's commit ids)."""
    write_chromium_branches(plan, w, shas)
    vulns = {v.number: v for v in plan.vulns}
    for m in plan.milestones:
        ref = f"{UPSTREAM_NS}/branch-heads/{m.build}"
        parent = f":{main_mark(m.bp_index)}"
        for j, c in enumerate(m.commits):
            c.mark = plan.new_mark()
            n = j + 1
            if c.kind == "bump":
                version = m.version(c.patch)
                files = {"chrome/VERSION": version_file(version)}
                message = (
                    f"Incrementing VERSION to {version}\n\n"
                    + "\n".join(
                        [
                            f"Change-Id: {change_id('branch-bump', plan.spec.seed, m.k, j)}",
                            f"Reviewed-on: {review_url(6_500_000 + m.k * 1000 + j)}",
                            f"Bot-Commit: {RELEASE_BOT.name} <{RELEASE_BOT.email}>",
                            *branch_footers(plan, m, n, shas),
                        ]
                    )
                    + "\n"
                )
                author = RELEASE_BOT
            elif c.kind == "pick":
                vuln = vulns[c.vuln]
                files = fix_files(vuln, c.part)
                message = pick_message(plan, m, n, vuln, c.part, shas)
                author = AUTHORS[vuln.number % len(AUTHORS)]
            else:  # "roll": a V8 update on the branch, placed by version only
                vuln = vulns[c.vuln]
                files = fix_files(vuln, c.part)
                message = (
                    f"Update V8 to version 12.{m.milestone - 113}.227.{20 + vuln.number}\n\n"
                    + "\n".join(
                        [
                            f"Change-Id: {change_id('v8-update', plan.spec.seed, m.k, j)}",
                            f"Reviewed-on: {review_url(6_700_000 + m.k * 1000 + j)}",
                            *branch_footers(plan, m, n, shas),
                        ]
                    )
                    + "\n"
                )
                author = COMMIT_BOT
            w.commit(
                ref,
                c.mark,
                author=author,
                author_time=c.time - 600,
                committer=COMMIT_BOT,
                commit_time=c.time,
                message=message,
                parent=parent,
                files=files,
            )
            parent = f":{c.mark}"
            if c.kind == "bump":
                w.tag(
                    m.version(c.patch),
                    f":{c.mark}",
                    tagger=RELEASE_BOT,
                    when=c.time,
                    message=f"{m.version(c.patch)}\n",
                )
