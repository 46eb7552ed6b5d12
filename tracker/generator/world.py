"""Build a generated world on disk and write its ground truth.

Layout under the output folder:

- ``objects.git``: one bare repository holding every object, written by three fast-import
  phases (upstream main; release branches and version tags; forks).
- ``upstream.git`` and ``forks/<slug>.git``: the repositories a user sees. Each borrows the
  objects through ``objects/info/alternates`` and has only its own refs, so a million-commit
  upstream is written once.
- ``ground-truth.json``: what the world contains, for tests to assert against.
- ``upstream-data/``: recorded Chromium Dash and Chrome Releases data for the same world.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from tracker.generator import feeds
from tracker.generator.fastimport import FastImportWriter
from tracker.generator.forks import ADJUSTED, GitForkPlan, PatchSeriesPlan
from tracker.generator.spec import DAY, WorldSpec
from tracker.generator.upstream import (
    MAIN,
    UPSTREAM_NS,
    Shas,
    UpRef,
    UpstreamPlan,
    chromium_branch_commits,
    fix_message_parts,
    main_mark,
    write_branches,
    write_main,
)
from tracker.git import git_input_stream, run_git

GIT_TIMEOUT = 3 * 3600


def _iso(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class World:
    def __init__(self, spec: WorldSpec, out: Path) -> None:
        self.spec, self.out = spec, out
        self.objects = out / "objects.git"
        self.marks = out / "objects.marks"
        self.up = UpstreamPlan(spec)
        self.git_forks = [GitForkPlan(f, self.up, i) for i, f in enumerate(spec.git_forks)]
        self.series_forks = [
            PatchSeriesPlan(f, self.up, i) for i, f in enumerate(spec.patch_series_forks)
        ]
        self.shas: Shas | None = None

    # --- writing -------------------------------------------------------------------------
    def _fast_import(self, write, namespace: str) -> None:
        args = ["fast-import", "--quiet", "--done", f"--export-marks={self.marks}"]
        if self.marks.exists():
            args.append(f"--import-marks={self.marks}")
        with git_input_stream(args, git_dir=self.objects, timeout=GIT_TIMEOUT) as stdin:
            import io

            buffered = io.BufferedWriter(stdin, buffer_size=1 << 20)  # type: ignore[arg-type]
            writer = FastImportWriter(buffered)
            write(writer)
            writer.done()
            buffered.flush()
        self._move_tags(namespace)
        self.shas = Shas(self.marks)

    def _move_tags(self, namespace: str) -> None:
        out = run_git(
            ["for-each-ref", "--format=%(objectname) %(refname)", "refs/tags/"],
            git_dir=self.objects,
        ).text
        commands = []
        for line in out.splitlines():
            sha, ref = line.split(" ", 1)
            name = ref.removeprefix("refs/tags/")
            commands.append(f"create {namespace}/tags/{name} {sha}\ndelete {ref} {sha}\n")
        if commands:
            run_git(
                ["update-ref", "--stdin"], git_dir=self.objects, input="".join(commands).encode()
            )

    def list_tree(self, commit: str) -> list[tuple[str, str, str]]:
        out = run_git(["ls-tree", "--end-of-options", commit], git_dir=self.objects).text
        entries = []
        for line in out.splitlines():
            meta, path = line.split("\t", 1)
            mode, _kind, sha = meta.split()
            entries.append((mode, sha, path))
        return entries

    def build(self) -> dict:
        if self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True)
        run_git(["init", "--quiet", "--bare", str(self.objects)])
        self._fast_import(lambda w: write_main(self.up, w), UPSTREAM_NS)
        self._fast_import(lambda w: write_branches(self.up, w, self.shas), UPSTREAM_NS)
        for fork in [*self.git_forks, *self.series_forks]:
            self._fast_import(lambda w, f=fork: f.write(w, self.shas, self.list_tree), fork.ns)
        self._publish(
            "upstream.git",
            UPSTREAM_NS,
            {
                "heads/main": "refs/heads/main",
                "heads/chromium/": "refs/heads/chromium/",
                "branch-heads/": "refs/branch-heads/",
                "tags/": "refs/tags/",
            },
        )
        for fork in [*self.git_forks, *self.series_forks]:
            self._publish(
                f"forks/{fork.spec.slug}.git",
                fork.ns,
                {"heads/": "refs/heads/", "tags/": "refs/tags/"},
            )
        truth = self.truth()
        (self.out / "ground-truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
        self._write_upstream_data()
        return truth

    def _publish(self, name: str, namespace: str, mapping: dict[str, str]) -> None:
        repo = self.out / name
        repo.parent.mkdir(parents=True, exist_ok=True)
        run_git(["init", "--quiet", "--bare", str(repo)])
        alternates = repo / "objects" / "info" / "alternates"
        alternates.write_text(str((self.objects / "objects").resolve()) + "\n")
        out = run_git(
            ["for-each-ref", "--format=%(objectname) %(refname)", f"{namespace}/"],
            git_dir=self.objects,
        ).text
        commands = []
        for line in out.splitlines():
            sha, ref = line.split(" ", 1)
            rest = ref.removeprefix(f"{namespace}/")
            for prefix, target in mapping.items():
                if rest.startswith(prefix):
                    commands.append(f"create {target}{rest.removeprefix(prefix)} {sha}\n")
                    break
        run_git(["update-ref", "--stdin"], git_dir=repo, input="".join(commands).encode())
        run_git(["pack-refs", "--all"], git_dir=repo)  # as fetched repositories keep them
        run_git(["symbolic-ref", "HEAD", "refs/heads/main"], git_dir=repo)

    def _write_upstream_data(self) -> None:
        data = self.out / "upstream-data"
        data.mkdir(exist_ok=True)
        shas = self.shas
        releases = feeds.dash_releases(self.up, lambda mark: shas[mark])
        (data / "chromiumdash-fetch_releases.json").write_text(json.dumps(releases, indent=1))
        milestones = feeds.dash_milestones(self.up, shas.main)
        (data / "chromiumdash-fetch_milestones.json").write_text(json.dumps(milestones, indent=1))
        feed, _urls = feeds.blog_feed(self.up)
        (data / "chromereleases-feed.json").write_text(json.dumps(feed, indent=1))

    # --- ground truth --------------------------------------------------------------------
    def upref_sha(self, ref: UpRef) -> str:
        if ref.line == MAIN:
            return self.shas.main(ref.index)
        return self.shas[self.up.milestones[ref.line].commits[ref.index].mark]

    def upref_position(self, ref: UpRef) -> tuple[str, int]:
        if ref.line == MAIN:
            return "refs/heads/main", self.up.position(ref.index)
        m = self.up.milestones[ref.line]
        return m.ref, ref.index + 1

    def truth(self) -> dict:
        up, shas, now = self.up, self.shas, self.spec.now_ts
        _feed, bulletin_urls = feeds.blog_feed(up)
        milestones = []
        for m in up.milestones:
            tags = []
            for j, c in enumerate(m.commits):
                if c.kind == "bump":
                    tags.append(
                        {
                            "version": m.version(c.patch),
                            "sha": shas[c.mark],
                            "time": _iso(c.time),
                            "channel": m.channel_at(c.time),
                            "branch_position": j + 1,
                        }
                    )
            milestones.append(
                {
                    "milestone": m.milestone,
                    "branch": m.build,
                    "ref": m.ref,
                    "branch_point": shas.main(m.bp_index),
                    "branch_point_position": up.position(m.bp_index),
                    "cut_time": _iso(m.cut_time),
                    "stable_start": _iso(m.stable_start),
                    "support_end": _iso(m.support_end if m.support_end < 1 << 39 else None),
                    "branch_commits": len(m.commits),
                    "tip": shas[m.commits[-1].mark] if m.commits else shas.main(m.bp_index),
                    "tags": tags,
                }
            )
        vulns = []
        for v in up.vulns:
            fix_commits = []
            for part, index in enumerate(v.parts):
                _s, _b, footers = fix_message_parts(up, v, part)
                fix_commits.append(
                    {
                        "sha": shas.main(index),
                        "position": up.position(index),
                        "time": _iso(up.times[index]),
                        "change_id": next(f for f in footers if f.startswith("Change-Id:")).split()[
                            1
                        ],
                    }
                )
            picks, first_fixed = [], {}
            for m in up.milestones:
                for j, c in enumerate(m.commits):
                    if c.vuln == v.number and c.kind in ("pick", "roll"):
                        picks.append(
                            {
                                "branch": m.build,
                                "sha": shas[c.mark],
                                "part": c.part,
                                "kind": c.kind,
                                "time": _iso(c.time),
                                "branch_position": j + 1,
                            }
                        )
                for j, c in enumerate(m.commits):
                    if c.kind == "bump" and up.vuln_in(UpRef(m.k, j), v):
                        first_fixed[str(m.milestone)] = m.version(c.patch)
                        break
            stable = feeds.first_stable(up, v)
            land = up.times[v.parts[0]] if v.parts else None
            vulns.append(
                {
                    "cve": v.cve,
                    "bug_ids": list(v.bug_ids),
                    "severity": v.severity,
                    "in_the_wild": v.in_the_wild,
                    "title": v.title,
                    "component": v.component,
                    "kind": v.kind,
                    "fix_commits": fix_commits,
                    "cherry_picks": picks,
                    "landed": _iso(up.times[max(v.parts)]),
                    "first_fixed": first_fixed,
                    "first_stable_version": stable[1] if stable else None,
                    "first_stable_time": _iso(stable[0]) if stable else None,
                    "upstream_gap_days": round((stable[0] - up.times[max(v.parts)]) / DAY, 3)
                    if stable
                    else None,
                    "bulletin_url": bulletin_urls.get(v.cve),
                    "report_time": _iso(v.report_time),
                    "first_landed": _iso(land),
                }
            )
        forks = [self._git_fork_truth(f) for f in self.git_forks]
        forks += [self._series_truth(f) for f in self.series_forks]
        return {
            "seed": self.spec.seed,
            "now": _iso(now),
            "path": str(self.out),
            "upstream": {
                "path": str(self.out / "upstream.git"),
                "main_ref": "refs/heads/main",
                "tip": shas.main(len(up.times) - 1),
                "tip_position": up.position(len(up.times) - 1),
                "main_commits": len(up.times),
                "main_tags": [
                    {"version": up.main_version(i), "sha": shas.main(i), "position": up.position(i)}
                    for i in sorted({0, *up.seg_starts})
                ],
                "first_position": up.position(0),
                "milestones": milestones,
                "chromium_branches": chromium_branch_commits(up, shas),
            },
            "vulnerabilities": vulns,
            "forks": forks,
        }

    def _fix_status(self, base: UpRef, backports, vuln) -> dict:
        up = self.up
        parts = []
        for part in range(len(vuln.parts)):
            if up.part_in(base, vuln, part):
                parts.append({"part": part, "how": "base"})
                continue
            found = [bp for bp in backports if bp.vuln == vuln.number and bp.part == part]
            parts.append(
                {
                    "part": part,
                    "how": "backport" if found else "missing",
                    "method": found[0].method if found else None,
                }
            )
        hows = {p["how"] for p in parts}
        status = "open" if "missing" in hows else "backport" if "backport" in hows else "base"
        return {"status": status, "parts": parts}

    def _lag(self, upstream_line: int, base: UpRef) -> dict:
        up, now = self.up, self.spec.now_ts
        if upstream_line == MAIN:
            tip = len(up.times) - 1
            behind = tip - base.index
            oldest = up.times[base.index + 1] if behind else None
        else:
            commits = up.milestones[upstream_line].commits
            behind = len(commits) - 1 - base.index
            oldest = commits[base.index + 1].time if behind else None
        return {
            "commits_behind": behind,
            "oldest_missing_time": _iso(oldest),
            "days_behind": (now - oldest) // DAY if oldest else 0,
        }

    def _git_fork_truth(self, fork: GitForkPlan) -> dict:
        up, shas = self.up, self.shas
        branches, releases = [], []
        for b in fork.branches:
            tip_index = b.tip_upref().index
            patches = []
            for e in b.series:
                entry = {
                    "sha": shas[e.mark],
                    "subject": e.subject,
                    "kind": e.kind,
                    "files": list(e.files),
                }
                if e.kind == "patch":
                    p = fork.patches[e.patch]
                    in_range = b.line == MAIN
                    entry["upstreamed"] = bool(
                        in_range
                        and p.upstreamed_index is not None
                        and b.base.index < p.upstreamed_index <= tip_index
                    )
                    entry["conflicts"] = bool(
                        in_range and any(b.base.index < c <= tip_index for c in p.conflict_indices)
                    )
                    entry["patch"] = p.number
                else:
                    # Upstream brought the fix onto the followed ref after the fork's base: the
                    # backport is now "already upstream" (each method leaves a trace that names
                    # the fix, or the same diff), and an adjusted one (same file, other
                    # content) also conflicts with upstream's version on the next rebase.
                    vuln = up.vulns[e.vuln]
                    missing_upstream_fix = up.part_in(b.tip_upref(), vuln, e.part) and not (
                        up.part_in(b.base, vuln, e.part)
                    )
                    adjusted = e.method in ADJUSTED
                    entry.update(
                        {
                            "vuln": vuln.cve,
                            "part": e.part,
                            "method": e.method,
                            "upstreamed": missing_upstream_fix,
                            "conflicts": missing_upstream_fix and adjusted,
                        }
                    )
                patches.append(entry)
            ref, position = self.upref_position(b.base)
            branches.append(
                {
                    "name": b.name,
                    "upstream_ref": b.upstream_ref,
                    "tip": shas[b.tip_mark],
                    "base": self.upref_sha(b.base),
                    "base_ref": ref,
                    "base_position": position,
                    "base_version": up.branch_version(b.base),
                    "last_base_move": _iso(b.base_moves[-1][0]),
                    # The patch set: what the branch carries on its base (fork-only non-merge
                    # commits, those since the newest marker for a merging-rebase).
                    "patches": patches,
                    "conflicting_files": sorted(
                        {f for p in patches if p["conflicts"] for f in p["files"]}
                    ),
                    "markers": [shas[m] for m in b.markers],
                    "history_commit_count": len(b.history),
                    "snapshots": [
                        {
                            "time": _iso(s["time"]),
                            "base": self.upref_sha(s["base"]),
                            "tip": shas[s["tip_mark"]],
                            "patches": s["patches"],
                        }
                        for s in b.snapshots
                    ],
                    **self._lag(b.line, b.base),
                }
            )
            for r in b.releases:
                releases.append(
                    {
                        "tag": r.tag,
                        "sha": shas[r.mark],
                        "time": _iso(r.time),
                        "branch": b.name,
                        "base": self.upref_sha(r.base),
                        "base_version": up.branch_version(r.base),
                        "fixes": {
                            v.cve: self._fix_status(r.base, r.backports, v) for v in up.vulns
                        },
                    }
                )
        return {
            "slug": fork.spec.slug,
            "name": fork.spec.name,
            "kind": "git",
            "style": fork.spec.style,
            "topics": fork.spec.topics,
            "sync_merge": fork.spec.sync_merge if fork.spec.style == "merge" else None,
            "path": str(self.out / "forks" / f"{fork.spec.slug}.git"),
            "release_tag_pattern": "refs/tags/v*",
            "owner_email": fork.spec.owner_email,
            "branches": branches,
            "releases": releases,
        }

    def _series_truth(self, fork: PatchSeriesPlan) -> dict:
        up, shas = self.up, self.shas
        releases = []
        for r in fork.releases:
            base = up.version_commit(r.pin)
            fixes = {}
            for v in up.vulns:
                if up.vuln_in(base, v):
                    fixes[v.cve] = {"status": "base", "method": None}
                    continue
                patch = next((p for p in r.patches if p.vuln == v.number), None)
                fixes[v.cve] = (
                    {"status": "backport", "method": patch.method, "patch": patch.name}
                    if patch
                    else {"status": "open", "method": None}
                )
            releases.append(
                {
                    "tag": r.tag,
                    "sha": shas[r.mark],
                    "time": _iso(r.time),
                    "pinned_version": r.pin,
                    "patches": [p.name for p in r.patches],
                    "fixes": fixes,
                }
            )
        return {
            "slug": fork.spec.slug,
            "name": fork.spec.name,
            "kind": "patch_series",
            "path": str(self.out / "forks" / f"{fork.spec.slug}.git"),
            "version_file": fork.spec.version_file,
            "patches_dir": fork.spec.patches_dir,
            "release_tag_pattern": "refs/tags/v*",
            "owner_email": fork.spec.owner_email,
            "tip": shas[fork.tip_mark],
            "pinned_version": fork.pins[-1][1],
            "pins": [{"time": _iso(t), "version": v} for t, v in fork.pins],
            "releases": releases,
        }


def build_world(spec: WorldSpec, out: Path | str) -> dict:
    """Write the world described by `spec` under `out` (replacing it) and return its truth."""
    return World(spec, Path(out)).build()


__all__ = ["World", "build_world", "main_mark"]
