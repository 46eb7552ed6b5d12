"""Plan and write forks of a generated upstream.

Git forks carry patch commits on top of an upstream base and move forward by rebase, by merge,
or by "merging-rebase", with their patches straight on the branch or merged in as topic
branches, and upstream merged in directly, through a sync branch, or with upstream as the first
parent (`GitForkSpec`); their release branches follow upstream release branches, backport
security fixes in every way real forks do (with and without trailers, adjusted so the patch
identity differs, one commit of a two-commit fix only) and are tagged at dated releases.
A patch-series fork pins an upstream version in a file and keeps its changes as patch files.
Every plan records what it did, so the world's ground truth follows from it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tracker.generator.fastimport import FastImportWriter, Person, blob_sha
from tracker.generator.spec import DAY, GitForkSpec, PatchSeriesForkSpec
from tracker.generator.upstream import (
    MAIN,
    PATCH_LINE,
    Milestone,
    Shas,
    UpRef,
    UpstreamPlan,
    Vulnerability,
    change_id,
    fix_files,
    fix_message_parts,
    main_mark,
    review_url,
)

FEATURES = (
    ("Add custom new tab page", "ntp"),
    ("Brand the about dialog", "about"),
    ("Enable hardware video decode on Linux", "vaapi"),
    ("Add enterprise policy for the update channel", "update_policy"),
    ("Disable field trial testing config", "field_trials"),
    ("Add sidebar extension API", "sidebar"),
    ("Ship custom DNS-over-HTTPS providers", "doh"),
    ("Remove the Google API keys infobar", "api_keys"),
    ("Add tab hibernation", "hibernation"),
)
BACKPORT_METHODS = ("trailer", "patch-id", "change-id", "original-position", "reviewed-on")
ADJUSTED = {"change-id", "original-position", "reviewed-on"}

# Ancestry helper passed in by the world builder: base -> list of (mode, sha, path) entries.
TreeLister = Callable[[str], list[tuple[str, str, str]]]


@dataclass
class Patch:
    number: int
    subject: str
    short: str
    text: str
    file_id: int | None  # a hot upstream file the patch edits, or None (a fork-only file)
    created: int
    added_at_sync: int | None = None  # index of the sync that adds it (None: from the start)
    dropped_at_sync: int | None = None
    upstreamed_index: int | None = None  # main index where upstream landed the same change
    conflict_indices: list[int] = field(default_factory=list)  # main indices that conflict

    def own_path(self, slug: str) -> str:
        return f"{slug}/{self.short}.cc"


@dataclass
class Backport:
    vuln: int
    part: int
    method: str
    time: int


@dataclass
class Emitted:
    """A fork commit written to the stream (resolved to a sha at the end)."""

    mark: int
    kind: str  # "patch", "backport", "merge", "marker"
    subject: str
    patch: int | None = None
    vuln: int | None = None
    part: int | None = None
    method: str | None = None
    files: tuple[str, ...] = ()


@dataclass
class ReleaseRecord:
    tag: str
    time: int
    mark: int
    base: UpRef
    backports: list[Backport]


class BranchPlan:
    """One branch of a git fork: its upstream line, syncs, patches, backports and releases."""

    def __init__(self, fork: GitForkPlan, name: str, line: int, start: int, syncs: list[int]):
        self.fork, self.name, self.line, self.start, self.syncs = fork, name, line, start, syncs
        self.up = fork.up
        self.backports: list[Backport] = []
        self.release_times: list[int] = []
        # Results, filled while writing:
        self.base: UpRef | None = None
        self.tip_mark = 0
        self.series: list[Emitted] = []  # the commits carried on top of the current base
        self.history: list[Emitted] = []  # every fork commit ever written on the branch
        self.base_moves: list[tuple[int, UpRef]] = []
        self.releases: list[ReleaseRecord] = []
        self.snapshots: list[dict] = []
        self.markers: list[int] = []  # merging-rebase markers, oldest first

    @property
    def upstream_ref(self) -> str:
        return "refs/heads/main" if self.line == MAIN else self.up.milestones[self.line].ref

    def base_at(self, when: int) -> UpRef:
        if self.line == MAIN:
            return UpRef(MAIN, self.up.index_at(when))
        index = self.up.latest_tag(self.line, when)
        if index is None:
            raise ValueError(f"no upstream tag on milestone line {self.line} at {when}")
        return UpRef(self.line, index)

    def base_mark(self, base: UpRef) -> int:
        if base.line == MAIN:
            return main_mark(base.index)
        return self.up.milestones[base.line].commits[base.index].mark

    def tip_upref(self) -> UpRef:
        if self.line == MAIN:
            return UpRef(MAIN, len(self.up.times) - 1)
        return UpRef(self.line, len(self.up.milestones[self.line].commits) - 1)


SYNC_MERGES = ("direct", "pull-request", "upstream-first")


class GitForkPlan:
    def __init__(self, spec: GitForkSpec, up: UpstreamPlan, ordinal: int) -> None:
        if spec.sync_merge not in SYNC_MERGES:
            raise ValueError(f"sync_merge must be one of {SYNC_MERGES}, not {spec.sync_merge!r}")
        self.spec, self.up = spec, up
        self.pull_requests = 0  # pull request numbers handed out so far (merge messages)
        self.ns = f"refs/ns/{spec.slug}"
        self.rng = random.Random(up.spec.seed * 1009 + ordinal)
        self.person = Person(f"{spec.name} Release Engineering", f"release@{spec.slug}.example")
        now = up.spec.now_ts
        self.t0 = up.spec.start_ts + 10 * DAY
        last = now - spec.last_sync_days_ago * DAY
        syncs = []
        when = last
        while when > self.t0 + DAY:
            syncs.append(when)
            when -= spec.sync_every_days * DAY
        syncs.reverse()
        self.patches: list[Patch] = []
        for n in range(spec.patches + 1):
            subject, short = FEATURES[(n + ordinal * 3) % len(FEATURES)]
            tag = spec.name.split()[0]
            self.patches.append(
                Patch(
                    number=n,
                    subject=f"[{tag}] {subject}",
                    short=short,
                    text=f"  // {spec.slug}: {short} enabled here",
                    file_id=None if n == 0 else up.allocate_hot_file(),
                    created=self.t0 - (spec.patches + 1 - n) * 3600,
                )
            )
        extra = self.patches[-1]
        if spec.patches >= 1 and len(syncs) >= 2:
            extra.added_at_sync = len(syncs) // 2
            extra.created = syncs[len(syncs) // 2] - 3600
        else:
            self.patches.pop()
        if spec.style != "merge" and spec.patches >= 5 and len(syncs) >= 3:
            self.patches[4].dropped_at_sync = len(syncs) - 2
        if spec.upstreamed_patch and spec.patches >= 2:
            p = self.patches[1]
            subject = f"[Upstream] Allow embedders to {p.subject.split('] ', 1)[1].lower()}"
            p.upstreamed_index = up.schedule_hot_change(
                last + (now - last) // 2, p.file_id, p.text, ("upstreamed", subject)
            )
        if spec.conflicting_patch and spec.patches >= 3:
            p = self.patches[2]
            p.conflict_indices.append(
                up.schedule_hot_change(
                    last + (now - last) // 3,
                    p.file_id,
                    f"  // upstream reworked {p.short}",
                    ("conflict", f"[Views] Rework {p.short.replace('_', ' ')} handling"),
                )
            )
        if spec.patches >= 4 and len(syncs) >= 2:
            p = self.patches[3]
            p.conflict_indices.append(
                up.schedule_hot_change(
                    (syncs[-2] + syncs[-1]) // 2,
                    p.file_id,
                    f"  // upstream moved {p.short}",
                    ("conflict", f"[Blink] Move {p.short.replace('_', ' ')} setup"),
                )
            )
        self.branches = [BranchPlan(self, "main", MAIN, self.t0, syncs)]
        for offset in spec.release_milestones:
            self.branches.append(self._release_branch(offset))

    def _release_branch(self, offset: int) -> BranchPlan:
        up, spec, now = self.up, self.spec, self.up.spec.now_ts
        m = up.milestones[len(up.milestones) + offset]
        start = max(m.cut_time + 2 * DAY, self.t0 + DAY)
        last = now - spec.release_last_sync_days_ago * DAY
        syncs, when = [], last
        while when > start + DAY:
            syncs.append(when)
            when -= spec.release_sync_every_days * DAY
        syncs.reverse()
        branch = BranchPlan(self, f"release/{m.milestone}", m.k, start, syncs)
        when = start + DAY
        while when < now - 3600:
            branch.release_times.append(when)
            when += spec.releases_every_days * DAY
        if spec.backports:
            self._plan_backports(branch, m, start)
        return branch

    def _plan_backports(self, branch: BranchPlan, m: Milestone, start: int) -> None:
        """Backport fixes the release branch's base lacks, in a different way each time."""
        method_cycle = 0
        for vuln in self.up.vulns:
            if vuln.kind != "chromium" or vuln.severity == "Low" or vuln.land_time < start:
                continue
            when = vuln.land_time + DAY // 2  # before upstream's own merge lands on the branch
            if when > self.up.spec.now_ts - 3600:
                continue
            if self.up.vuln_in(branch.base_at(when), vuln):
                continue
            if len(vuln.parts) > 1:  # a two-commit fix: only its first commit is backported
                branch.backports.append(Backport(vuln.number, 0, "trailer", when))
                continue
            if method_cycle < len(BACKPORT_METHODS):
                method = BACKPORT_METHODS[method_cycle]
                branch.backports.append(Backport(vuln.number, 0, method, when))
            method_cycle += 1  # past the list, fixes are left open (not backported)

    def next_pull_request(self) -> int:
        self.pull_requests += 1
        return self.pull_requests

    # --- writing -------------------------------------------------------------------------
    def write(self, w: FastImportWriter, shas: Shas, list_tree: TreeLister) -> None:
        for branch in self.branches:
            _BranchWriter(self, branch, w, shas, list_tree).run()


class _BranchWriter:
    def __init__(self, fork: GitForkPlan, b: BranchPlan, w, shas: Shas, list_tree: TreeLister):
        self.fork, self.b, self.w, self.shas, self.list_tree = fork, b, w, shas, list_tree
        self.up = fork.up
        self.ref = f"{fork.ns}/heads/{b.name}"
        self.vulns = {v.number: v for v in self.up.vulns}
        self.active_backports: list[Backport] = []
        self.release_n = 0

    def run(self) -> None:
        b = self.b
        events: list[tuple[int, int, str, object]] = [(b.start, 0, "start", None)]
        events += [(t, 1, "sync", i) for i, t in enumerate(b.syncs)]
        events += [(bp.time, 2, "backport", bp) for bp in b.backports]
        events += [(t, 3, "release", None) for t in b.release_times]
        for when, _order, kind, payload in sorted(events, key=lambda e: (e[0], e[1])):
            if kind == "start":
                b.base = b.base_at(when)
                b.base_moves.append((when, b.base))
                self._replay(when, parent=f":{b.base_mark(b.base)}")
            elif kind == "sync":
                self._sync(when, payload)
            elif kind == "backport":
                self._backport(when, payload)
            else:
                self._release(when)
        # A branch with no commits of its own (exactly at its base) still needs its ref.
        self.w.reset(self.ref, f":{b.tip_mark}")

    def _patches_at(self, sync_index: int | None) -> list[Patch]:
        """Patches in the series after sync `sync_index` (None: at the start)."""
        out = []
        for p in self.fork.patches:
            if p.added_at_sync is not None and (sync_index is None or sync_index < p.added_at_sync):
                continue
            dropped = p.dropped_at_sync
            if dropped is not None and sync_index is not None and sync_index >= dropped:
                continue
            if (
                p.upstreamed_index is not None
                and self.b.line == MAIN
                and self.b.base.index >= p.upstreamed_index
            ):
                continue  # upstream has it: the rebase drops it
            out.append(p)
        return out

    def _new(self) -> int:
        return self.up.new_mark()

    def _commit(
        self,
        emitted: Emitted,
        when: int,
        author_time: int,
        message: str,
        parent: str,
        files: dict[str, bytes],
        **kw,
    ) -> None:
        self.w.commit(
            self.ref,
            emitted.mark,
            author=self.fork.person,
            author_time=author_time,
            committer=self.fork.person,
            commit_time=when,
            message=message,
            parent=parent,
            files=files,
            **kw,
        )
        self.b.tip_mark = emitted.mark
        if emitted.kind in ("patch", "backport"):
            self.b.series.append(emitted)
            self.b.history.append(emitted)

    def _patch_files(self, p: Patch, base: UpRef) -> dict[str, bytes]:
        if p.file_id is None:
            content = f"// {self.fork.spec.name}: {p.subject}\nvoid Enable_{p.short}() {{}}\n"
            return {p.own_path(self.fork.spec.slug): content.encode()}
        lines = self.up.hot_lines_at(p.file_id, base)
        lines[PATCH_LINE] = p.text
        return {self.up.file_path(p.file_id): ("\n".join(lines) + "\n").encode()}

    def _write_patch(self, p: Patch, when: int, parent: str) -> str:
        files = self._patch_files(p, self.b.base)
        emitted = Emitted(self._new(), "patch", p.subject, patch=p.number, files=tuple(files))
        message = (
            f"{p.subject}\n\nCarried by {self.fork.spec.name} since the fork began.\n\n"
            f"Change-Id: {change_id('fork', self.fork.spec.slug, p.number)}\n"
        )
        self._commit(emitted, when, p.created, message, parent, files)
        return f":{emitted.mark}"

    def _write_backport(self, bp: Backport, when: int, parent: str) -> str:
        vuln = self.vulns[bp.vuln]
        files = fix_files(vuln, bp.part, adjusted=bp.method in ADJUSTED)
        message = backport_message(self.up, vuln, bp, self.shas, self.fork.spec)
        subject = message.split("\n", 1)[0]
        emitted = Emitted(
            self._new(),
            "backport",
            subject,
            vuln=bp.vuln,
            part=bp.part,
            method=bp.method,
            files=tuple(files),
        )
        self._commit(emitted, when, bp.time, message, parent, files)
        return f":{emitted.mark}"

    def _write_merge(self, when: int, message: str, parent: str, merged: str, **tree) -> str:
        """A merge commit on the branch (`tree`: the files, as for `FastImportWriter.commit`;
        none keeps the first parent's tree)."""
        mark = self._new()
        self.w.commit(
            self.ref,
            mark,
            author=self.fork.person,
            author_time=when,
            committer=self.fork.person,
            commit_time=when,
            message=message,
            parent=parent,
            merges=(merged,),
            **tree,
        )
        self.b.tip_mark = mark
        return f":{mark}"

    def _write_patches(self, patches: list[Patch], when: int, parent: str) -> str:
        """Write `patches` on `parent`: one after the other, or (spec.topics) on topic branches
        that all start at `parent` and are merged into the branch one by one with --no-ff."""
        size = self.fork.spec.topics
        if not size:
            for p in patches:
                parent = self._write_patch(p, when, parent)
            return parent
        start = parent
        for n in range(0, len(patches), size):
            group = patches[n : n + size]
            topic, files = start, {}
            for p in group:
                topic = self._write_patch(p, when, topic)
                files.update(self._patch_files(p, self.b.base))
            name = f"{self.fork.spec.slug}/{group[0].short.replace('_', '-')}"
            if (n // size) % 2 == 0:
                number = self.fork.next_pull_request()
                message = f"Merge pull request #{number} from {name}\n\n{group[0].subject}\n"
            else:
                message = f"Merge branch '{name}'\n"
            # The topic's files on top of the branch: what git merge writes, since each patch
            # has a file of its own.
            parent = self._write_merge(when, message, parent, topic, files=files)
        return parent

    def _replay(self, when: int, parent: str, sync_index: int | None = None) -> None:
        """Write the series (patches, then live backports) on top of `parent`."""
        self.b.series = []
        parent = self._write_patches(self._patches_at(sync_index), when, parent)
        for bp in self.active_backports:
            parent = self._write_backport(bp, when, parent)
        if parent.startswith(":") and not self.b.series:
            self.b.tip_mark = int(parent[1:])

    def _sync(self, when: int, sync_index: int) -> None:
        b, style = self.b, self.fork.spec.style
        new_base = b.base_at(when)
        changed_patches = any(
            p.added_at_sync == sync_index or p.dropped_at_sync == sync_index
            for p in self.fork.patches
        )
        if new_base == b.base and not changed_patches:
            return
        old_tip = b.tip_mark
        if new_base != b.base:
            b.base_moves.append((when, new_base))
        b.base = new_base
        self.active_backports = [
            bp
            for bp in self.active_backports
            if not self.up.part_in(new_base, self.vulns[bp.vuln], bp.part)
        ]
        if style == "merge":
            self._merge(when, sync_index, old_tip)
        elif style == "merging-rebase":
            marker = Emitted(self._new(), "marker", "")
            version = self.up.branch_version(new_base)
            self.w.commit(
                self.ref,
                marker.mark,
                author=self.fork.person,
                author_time=when,
                committer=self.fork.person,
                commit_time=when,
                message=f"Start the merging-rebase to {version}\n\n"
                "This commit starts the rebase of the fork's patches onto upstream.\n",
                parent=f":{b.base_mark(new_base)}",
                merges=(f":{old_tip}",),
            )
            b.markers.append(marker.mark)
            self._replay(when, f":{marker.mark}", sync_index)
            if not b.series:
                b.tip_mark = marker.mark
        else:
            self._replay(when, f":{b.base_mark(new_base)}", sync_index)
            if not b.series:
                b.tip_mark = b.base_mark(new_base)
        self._snapshot(when)

    def _merge(self, when: int, sync_index: int, old_tip: int) -> None:
        """Merge the new base into the branch, shaped by spec.sync_merge, then add the patches
        this sync adds (on topic branches with spec.topics)."""
        b, spec = self.b, self.fork.spec
        base_sha = self.shas[b.base_mark(b.base)]
        files: dict[str, bytes] = {}
        for p in self._patches_at(sync_index):
            if p.added_at_sync is None or p.added_at_sync < sync_index:
                files.update(self._patch_files(p, b.base))
        for bp in self.active_backports:
            files.update(fix_files(self.vulns[bp.vuln], bp.part, adjusted=bp.method in ADJUSTED))
        tree = {"deleteall": True, "entries": self.list_tree(base_sha), "files": files}
        version = self.up.branch_version(b.base)
        upstream, fork_tip = f":{b.base_mark(b.base)}", f":{old_tip}"
        if spec.sync_merge == "pull-request":
            line = "main" if b.line == MAIN else b.upstream_ref.removeprefix("refs/")
            topic = f"sync/{b.name.replace('/', '-')}-{version}"
            # The sync branch merges upstream half an hour before its pull request is merged:
            # the branch moves onto the base with the outer merge, not the inner one.
            inner = self._write_merge(
                when - 1800,
                f"Merge remote-tracking branch 'upstream/{line}' into {topic}\n",
                fork_tip,
                upstream,
                **tree,
            )
            number = self.fork.next_pull_request()
            message = (
                f"Merge pull request #{number} from {spec.slug}/{topic}\n\n"
                f"Update to upstream {version}\n"
            )
            parent = self._write_merge(when, message, fork_tip, inner, **tree)
        elif spec.sync_merge == "upstream-first":
            message = f"Merge {b.name} into upstream {version}\n"
            parent = self._write_merge(when, message, upstream, fork_tip, **tree)
        else:
            message = f"Merge upstream {version} into {b.name}\n"
            parent = self._write_merge(when, message, fork_tip, upstream, **tree)
        added = [p for p in self.fork.patches if p.added_at_sync == sync_index]
        self._write_patches(added, when, parent)
        # History stays: the series is every fork commit ever made on the branch.
        b.series = list(b.history)

    def _backport(self, when: int, bp: Backport) -> None:
        if self.up.part_in(self.b.base, self.vulns[bp.vuln], bp.part):
            return
        self.active_backports.append(bp)
        before = list(self.b.series)
        self._write_backport(bp, when, f":{self.b.tip_mark}")
        if self.fork.spec.style == "merge":
            self.b.series = list(self.b.history)
        else:
            self.b.series = [*before, self.b.series[-1]]

    def _release(self, when: int) -> None:
        b = self.b
        m = self.up.milestones[b.line]
        tag = f"v{m.milestone}.{self.release_n}.0"
        self.release_n += 1
        self.w.tag(
            tag,
            f":{b.tip_mark}",
            tagger=self.fork.person,
            when=when,
            message=f"{self.fork.spec.name} {tag}\n",
        )
        b.releases.append(ReleaseRecord(tag, when, b.tip_mark, b.base, list(self.active_backports)))

    def _snapshot(self, when: int) -> None:
        self.b.snapshots.append(
            {
                "time": when,
                "base": self.b.base,
                "tip_mark": self.b.tip_mark,
                "patches": [e.subject for e in self.b.series if e.kind == "patch"],
            }
        )


def backport_message(
    up: UpstreamPlan, vuln: Vulnerability, bp: Backport, shas: Shas, spec: GitForkSpec
) -> str:
    """The fork commit message of a backport; each method leaves a different kind of trace."""
    subject, body, footers = fix_message_parts(up, vuln, bp.part)
    index = vuln.parts[bp.part]
    position = f"refs/heads/main@{{#{up.position(index)}}}"
    own_review = f"https://review.{spec.slug}.example/c/src/+/{9000 + vuln.number * 10 + bp.part}"
    fork_cid = change_id("fork-backport", spec.slug, vuln.number, bp.part)
    if bp.method == "trailer":  # git cherry-pick -x of the main commit, message kept whole
        return (
            f"{subject}\n\n{body}\n\n"
            + "\n".join(footers)
            + f"\nCr-Commit-Position: {position}\n(cherry picked from commit {shas.main(index)})\n"
        )
    if bp.method == "patch-id":  # the diff applied by hand: no upstream trace in the message
        return (
            f"Backport input capacity check\n\nApplied by hand for {spec.name}.\n\n"
            f"Change-Id: {fork_cid}\n"
        )
    if bp.method == "change-id":
        cid = next(f for f in footers if f.startswith("Change-Id:"))
        return f"{subject}\n\nAdjusted to the release branch.\n\n{cid}\nReviewed-on: {own_review}\n"
    if bp.method == "original-position":
        return (
            f"{subject}\n\nAdjusted to the release branch.\n\n"
            f"Cr-Original-Commit-Position: {position}\nReviewed-on: {own_review}\n"
        )
    if bp.method == "reviewed-on":
        return (
            f"Merge upstream fix for {vuln.component}\n\nAdjusted to the release branch.\n\n"
            f"Reviewed-on: {review_url(5_500_000 + vuln.number * 10 + bp.part)}\n"
        )
    raise ValueError(bp.method)


# --- patch-series forks --------------------------------------------------------------------


def format_patch(up: UpstreamPlan, vuln: Vulnerability, part: int, shas: Shas) -> str:
    """`git format-patch` output for a main fix commit (how Electron-style forks carry it)."""
    from email.utils import formatdate

    from tracker.generator.upstream import AUTHORS

    index = vuln.parts[part]
    subject, body, footers = fix_message_parts(up, vuln, part)
    author = AUTHORS[vuln.number % len(AUTHORS)]
    when = up.times[index] - 3600 * (1 + index % 5)
    footer_text = "\n".join(
        [*footers, f"Cr-Commit-Position: refs/heads/main@{{#{up.position(index)}}}"]
    )
    ((path, content),) = fix_files(vuln, part).items()
    return (
        f"From {shas.main(index)} Mon Sep 17 00:00:00 2001\n"
        f"From: {author.name} <{author.email}>\n"
        f"Date: {formatdate(when, usegmt=True)}\n"
        f"Subject: [PATCH] {subject}\n\n{body}\n\n{footer_text}\n---\n"
        + new_file_diff(path, content)
        + "-- \n2.39.5\n"
    )


def new_file_diff(path: str, content: bytes) -> str:
    lines = content.decode().splitlines()
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n"
        f"index 0000000000..{blob_sha(content)[:10]}\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    )


@dataclass
class SeriesPatch:
    name: str
    content: str
    added: int
    removed: int | None = None
    vuln: int | None = None
    method: str | None = None  # for fix patches: "patch-name" or "patch-diff"


@dataclass
class SeriesRelease:
    tag: str
    time: int
    mark: int
    pin: str
    patches: list[SeriesPatch]


class PatchSeriesPlan:
    def __init__(self, spec: PatchSeriesForkSpec, up: UpstreamPlan, ordinal: int) -> None:
        self.spec, self.up = spec, up
        self.ns = f"refs/ns/{spec.slug}"
        self.person = Person(f"{spec.name} maintainers", f"maintainers@{spec.slug}.example")
        now = up.spec.now_ts
        stable = [r for r in up.releases() if r[3] == "Stable"]
        if not stable:
            raise ValueError("a patch-series fork needs an upstream Stable release to pin")
        self.t0 = stable[0][0] + DAY
        self.pin_times = list(range(self.t0, now - 3600, spec.pin_every_days * DAY))
        self.release_times = list(range(self.t0 + DAY, now - 3600, spec.releases_every_days * DAY))
        self.patches: list[SeriesPatch] = []
        for n in range(spec.patches + 1):
            subject, short = FEATURES[(n + ordinal * 2 + 1) % len(FEATURES)]
            added = self.t0 if n < spec.patches else self.pin_times[len(self.pin_times) // 2]
            self.patches.append(
                SeriesPatch(
                    f"{n + 1:04d}-{short.replace('_', '-')}.patch",
                    self._feature_patch(subject, short),
                    added,
                )
            )
        if len(self.patches) > 2 and len(self.pin_times) >= 3:
            self.patches[1].removed = self.pin_times[-2]
        self.fix_patches_planned: list[tuple[Vulnerability, str, int]] = []
        for vuln in up.vulns:
            if len(self.fix_patches_planned) == 2:
                break
            when = vuln.land_time + 2 * DAY
            if (
                vuln.kind != "chromium"
                or vuln.severity == "Low"
                or len(vuln.parts) > 1
                or when < self.t0
                or when > now - 3600
            ):
                continue
            if up.vuln_in(self.pin_at(when)[0], vuln):
                continue
            method = "patch-name" if not self.fix_patches_planned else "patch-diff"
            self.fix_patches_planned.append((vuln, method, when))
        self.releases: list[SeriesRelease] = []
        self.tip_mark = 0
        self.pins: list[tuple[int, str]] = []

    def pin_at(self, when: int) -> tuple[UpRef, str]:
        moves = [t for t in self.pin_times if t <= when] or [self.t0]
        found = self.up.stable_version_at(moves[-1] - self.spec.pin_lag_days * DAY)
        if found is None:
            found = self.up.stable_version_at(moves[-1])
        return found

    def _feature_patch(self, subject: str, short: str) -> str:
        path = f"chrome/browser/{short}/{short}_service.cc"
        return (
            f"From: {self.person.name} <{self.person.email}>\nSubject: {subject}\n\n---\n"
            f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -10,6 +10,7 @@\n"
            f" namespace {short} {{\n \n void Init() {{\n+  // {self.spec.slug}: {short}\n"
            "   Setup();\n }\n \n"
        )

    def write(self, w: FastImportWriter, shas: Shas, list_tree: TreeLister) -> None:
        spec, up = self.spec, self.up
        for vuln, method, when in self.fix_patches_planned:
            if method == "patch-name":
                name = f"cherry-pick-{shas.main(vuln.parts[0])[:12]}.patch"
                content = format_patch(up, vuln, 0, shas)
            else:
                ((path, data),) = fix_files(vuln, 0).items()
                name = f"fix-{vuln.component.lower().replace(' ', '-')}-input-check.patch"
                content = new_file_diff(path, data)
            removed = next(
                (t for t in self.pin_times if t > when and up.vuln_in(self.pin_at(t)[0], vuln)),
                None,
            )
            self.patches.append(
                SeriesPatch(f"chromium/{name}", content, when, removed, vuln.number, method)
            )
        times = sorted(
            {
                *self.pin_times,
                *(p.added for p in self.patches),
                *(p.removed for p in self.patches if p.removed),
            }
        )
        releases = list(self.release_times)
        ref = f"{self.ns}/heads/main"
        parent = None
        written: dict[str, str] = {}
        for when in times:
            while releases and releases[0] < when:
                self._release(w, releases.pop(0))
            pin = self.pin_at(when)[1]
            live = [
                p for p in self.patches if p.added <= when and not (p.removed and p.removed <= when)
            ]
            files: dict[str, bytes | None] = {
                spec.version_file: f"{pin}\n".encode(),
                f"{spec.patches_dir}/series": "".join(f"{p.name}\n" for p in live).encode(),
            }
            names = {f"{spec.patches_dir}/{p.name}": p.content for p in live}
            for path in written:
                if path not in names:
                    files[path] = None
            for path, content in names.items():
                if written.get(path) != content:
                    files[path] = content.encode()
            if parent is None:
                files["README.md"] = (
                    f"# {spec.name}\n\nChromium plus the patches in patches/.\n".encode()
                )
            written = names
            pins_changed = not self.pins or self.pins[-1][1] != pin
            message = (
                f"Update Chromium to {pin}\n"
                if pins_changed and parent
                else "Update patches\n"
                if parent
                else f"Start {spec.name} on {pin}\n"
            )
            mark = up.new_mark()
            w.commit(
                ref,
                mark,
                author=self.person,
                author_time=when,
                committer=self.person,
                commit_time=when,
                message=message,
                parent=parent,
                files=files,
            )
            parent = f":{mark}"
            self.tip_mark = mark
            if pins_changed:
                self.pins.append((when, pin))
        for when in releases:
            self._release(w, when)

    def _release(self, w: FastImportWriter, when: int) -> None:
        tag = f"v1.{len(self.releases)}"
        w.tag(tag, f":{self.tip_mark}", tagger=self.person, when=when, message=f"{tag}\n")
        live = [
            p for p in self.patches if p.added <= when and not (p.removed and p.removed <= when)
        ]
        pin = self.pins[-1][1]
        self.releases.append(SeriesRelease(tag, when, self.tip_mark, pin, live))
