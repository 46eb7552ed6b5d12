"""Generated forks, checked with plain git against the ground truth."""

import re

from tests.helpers import footers, git, log_messages, patch_id, plain_patch_set
from tracker.git import run_git


def _forks(world, kind):
    return [f for f in world["forks"] if f["kind"] == kind]


def _is_ancestor(repo, commit, tip) -> bool:
    result = run_git(["merge-base", "--is-ancestor", commit, tip], git_dir=repo, check=False)
    return result.returncode == 0


def _fix_commits_on(world, vuln, upstream_ref):
    """For each part, the upstream commits that carry it on main and on `upstream_ref`."""
    branch = upstream_ref.rsplit("/", 1)[-1]
    return [
        [fix["sha"]]
        + [
            p["sha"]
            for p in vuln["cherry_picks"]
            if p["part"] == part and str(p["branch"]) == branch
        ]
        for part, fix in enumerate(vuln["fix_commits"])
    ]


def _backported_by(repo, world, vuln, part, base, tag):
    """How the fork commits between base and tag carry fix `part`, read with plain git."""
    fix = vuln["fix_commits"][part]
    upstream = world["upstream"]["path"]
    fix_message = git(upstream, "log", "-1", "--format=%B", fix["sha"])
    fix_footers = footers(fix_message)
    fix_patch = patch_id(upstream, fix["sha"])
    for sha, message in log_messages(repo, f"{base}..{tag}"):
        found = footers(message)
        if f"(cherry picked from commit {fix['sha']})" in message:
            return "trailer"
        same_diff = patch_id(repo, sha) == fix_patch
        if same_diff and found.get("Change-Id", [None]) != fix_footers["Change-Id"]:
            return "patch-id"
        if found.get("Change-Id") == fix_footers["Change-Id"]:
            return "change-id"
        if found.get("Cr-Original-Commit-Position") == fix_footers.get(
            "Cr-Commit-Position", [None]
        ):
            return "original-position"
        if found.get("Reviewed-on") == fix_footers["Reviewed-on"]:
            return "reviewed-on"
    return None


def test_git_fork_tags_contain_exactly_what_the_truth_says(world):
    vulns = {v["cve"]: v for v in world["vulnerabilities"]}
    statuses = set()
    methods = set()
    for fork in _forks(world, "git"):
        repo = fork["path"]
        branches = {b["name"]: b for b in fork["branches"]}
        assert sorted(git(repo, "tag", "--list").split()) == sorted(
            r["tag"] for r in fork["releases"]
        )
        for release in fork["releases"]:
            tag = f"refs/tags/{release['tag']}"
            assert git(repo, "rev-parse", f"{tag}^{{commit}}").strip() == release["sha"]
            upstream_ref = branches[release["branch"]]["upstream_ref"]
            base = git(
                world["upstream"]["path"], "merge-base", release["sha"], upstream_ref
            ).strip()
            assert base == release["base"]
            version = git(repo, "show", f"{release['base']}:chrome/VERSION")
            assert version.replace("\n", "").startswith(
                f"MAJOR={release['base_version'].split('.')[0]}"
            )
            for cve, expected in release["fixes"].items():
                vuln = vulns[cve]
                if vuln["kind"] != "chromium":
                    continue
                hows = []
                for part, commits in enumerate(_fix_commits_on(world, vuln, upstream_ref)):
                    if any(
                        _is_ancestor(world["upstream"]["path"], c, release["base"]) for c in commits
                    ):
                        hows.append("base")
                        continue
                    method = _backported_by(
                        repo, world, vuln, part, release["base"], release["sha"]
                    )
                    hows.append(method or "missing")
                    if method:
                        methods.add(method)
                status = (
                    "open" if "missing" in hows else "base" if set(hows) == {"base"} else "backport"
                )
                assert status == expected["status"], (fork["slug"], release["tag"], cve, hows)
                statuses.add(status)
    assert statuses == {"base", "backport", "open"}
    assert methods == {"trailer", "patch-id", "change-id", "original-position", "reviewed-on"}


def test_a_two_commit_fix_backported_halfway_stays_open(world):
    found = False
    for fork in _forks(world, "git"):
        for release in fork["releases"]:
            for fix in release["fixes"].values():
                hows = {p["how"] for p in fix.get("parts", [])}
                if hows == {"backport", "missing"}:
                    assert fix["status"] == "open"
                    found = True
    assert found


def test_branch_lag_matches_rev_list(world):
    upstream = world["upstream"]["path"]
    for fork in _forks(world, "git"):
        for branch in fork["branches"]:
            tip, ref = branch["tip"], branch["upstream_ref"]
            count = int(git(upstream, "rev-list", "--count", f"{tip}..{ref}").strip())
            assert count == branch["commits_behind"], (fork["slug"], branch["name"])
            missing = git(upstream, "rev-list", "--reverse", f"{tip}..{ref}").split()
            if missing:
                oldest = git(upstream, "log", "-1", "--format=%cI", missing[0]).strip()
                assert oldest.replace("Z", "+00:00") == branch["oldest_missing_time"]
            else:
                assert branch["days_behind"] == 0
            assert git(upstream, "merge-base", tip, ref).strip() == branch["base"]


def test_patch_sets_by_style(world):
    """The truth's patch set is plain git's: the non-merge fork commits, those since the newest
    marker for a merging-rebase (whose old copies stay reachable)."""
    upstream = world["upstream"]["path"]
    styles = {}
    for fork in _forks(world, "git"):
        for branch in fork["branches"]:
            repo, tip, ref = fork["path"], branch["tip"], branch["upstream_ref"]
            expected = [p["sha"] for p in branch["patches"]]
            assert plain_patch_set(upstream, tip, ref) == expected, (fork["slug"], branch["name"])
            all_own = git(upstream, "rev-list", "--no-merges", f"{ref}..{tip}").split()
            if fork["style"] == "merging-rebase" and branch["name"] == "main":
                # Old rebased copies stay reachable: counting them would inflate the set.
                assert len(all_own) > 3 * len(expected)
            else:
                assert sorted(all_own) == sorted(expected)
            styles[fork["style"]] = True
            assert git(repo, "rev-parse", f"refs/heads/{branch['name']}").strip() == tip
    assert set(styles) == {"rebase", "merge", "merging-rebase"}


def _merges(repo, tip, upstream):
    """(merge, parents, tree, on the first-parent line) of the fork-only merges."""
    line = set(git(repo, "rev-list", "--first-parent", tip, f"^{upstream}").split())
    out = []
    for row in git(repo, "log", "--merges", "--format=%H %T %P", tip, f"^{upstream}").splitlines():
        sha, tree, *parents = row.split()
        out.append((sha, parents, tree, sha in line))
    return out


def test_history_shapes_are_what_the_spec_says(shapes_world):
    """Each fork's merges have the shape its spec names, read with plain git."""
    repo = shapes_world["upstream"]["path"]
    seen = set()
    for fork in _forks(shapes_world, "git"):
        branch = fork["branches"][0]
        tip, ref = branch["tip"], branch["upstream_ref"]

        def upstream_has(commit, ref=ref):
            return _is_ancestor(repo, commit, ref)

        def tree_of(commit):
            return git(repo, "rev-parse", f"{commit}^{{tree}}").strip()

        merges = _merges(repo, tip, ref)
        by_sha = {m[0]: m for m in merges}
        topic = [m for m in merges if not any(upstream_has(p) for p in m[1])]
        if fork["topics"]:
            assert topic, fork["slug"]  # a topic or pull-request merge: both parents fork-only
            seen.add("topics")
        if fork["sync_merge"] == "direct":
            assert any(
                on and not upstream_has(p[0]) and upstream_has(p[1]) for _s, p, _t, on in merges
            )
        if fork["sync_merge"] == "pull-request":
            # The pull request's merge brings a sync branch whose merge has upstream second.
            outer = [
                m
                for m in merges
                if m[3] and m[1][1] in by_sha and upstream_has(by_sha[m[1][1]][1][1])
            ]
            assert outer and all(not upstream_has(p) for m in outer for p in m[1])
        if fork["sync_merge"] == "upstream-first":
            flipped = [m for m in merges if m[3] and upstream_has(m[1][0])]
            assert flipped and all(m[2] != tree_of(m[1][0]) for m in flipped)
        if fork["style"] == "merging-rebase":
            assert len(branch["markers"]) >= 3  # several rebases
            for marker in branch["markers"]:
                _sha, parents, tree, _on = by_sha[marker]
                assert upstream_has(parents[0]) and tree == tree_of(parents[0])
                assert not upstream_has(parents[1])  # the previous fork tip
            assert by_sha[branch["markers"][-1]][3]  # the newest is on the first-parent line
        seen.add(fork["sync_merge"] or fork["style"])
    assert seen == {
        "topics",
        "direct",
        "pull-request",
        "upstream-first",
        "merging-rebase",
        "rebase",
    }


def test_upstreamed_patch_has_an_upstream_twin(world):
    """An upstreamed patch has an upstream commit the branch lacks with the same identity, or
    (an adjusted backport) the same Change-Id."""
    upstream = world["upstream"]["path"]
    seen = {"identity": 0, "change-id": 0}
    for fork in _forks(world, "git"):
        for branch in fork["branches"]:
            missing = log_messages(upstream, f"{branch['tip']}..{branch['upstream_ref']}")
            for patch in branch["patches"]:
                if not patch["upstreamed"]:
                    continue
                own = patch_id(upstream, patch["sha"])
                twins = [sha for sha, _message in missing if patch_id(upstream, sha) == own]
                if twins:
                    assert len(twins) == 1
                    subject = git(upstream, "log", "-1", "--format=%s", twins[0]).strip()
                    assert subject != patch["subject"]  # reworded upstream
                    seen["identity"] += 1
                    continue
                cid = footers(git(upstream, "log", "-1", "--format=%B", patch["sha"]))["Change-Id"]
                assert [sha for sha, m in missing if footers(m).get("Change-Id") == cid]
                seen["change-id"] += 1
    assert seen["identity"] >= 2, seen


def test_conflicting_patches_are_the_files_merge_tree_reports(world):
    upstream = world["upstream"]["path"]
    checked = 0
    for fork in _forks(world, "git"):
        for branch in fork["branches"]:
            result = run_git(
                [
                    "merge-tree",
                    "--write-tree",
                    "--name-only",
                    branch["upstream_ref"],
                    branch["tip"],
                ],
                git_dir=upstream,
                check=False,
            )
            lines = result.text.splitlines()
            conflicted = set(lines[1 : lines.index("")]) if "" in lines else set(lines[1:])
            expected = {f for p in branch["patches"] if p["conflicts"] for f in p["files"]}
            assert conflicted == expected, (fork["slug"], branch["name"])
            checked += bool(expected)
    assert checked >= 2


def test_patch_series_releases_pin_versions_and_carry_patch_files(world):
    upstream = world["upstream"]["path"]
    vulns = {v["cve"]: v for v in world["vulnerabilities"]}
    methods = set()
    (fork,) = _forks(world, "patch_series")
    repo = fork["path"]
    for release in fork["releases"]:
        tag = f"refs/tags/{release['tag']}"
        assert (
            git(repo, "show", f"{tag}:{fork['version_file']}").strip() == release["pinned_version"]
        )
        series = git(repo, "show", f"{tag}:{fork['patches_dir']}/series").split()
        assert series == release["patches"]
        files = git(repo, "ls-tree", "-r", "--name-only", tag, f"{fork['patches_dir']}/").split()
        files.remove(f"{fork['patches_dir']}/series")
        assert sorted(files) == sorted(f"{fork['patches_dir']}/{p}" for p in release["patches"])
        for cve, fix in release["fixes"].items():
            vuln = vulns[cve]
            if fix["status"] == "backport":
                methods.add(fix["method"])
                content = git(repo, "show", f"{tag}:{fork['patches_dir']}/{fix['patch']}")
                sha = vuln["fix_commits"][0]["sha"]
                diff = git(upstream, "show", "--format=", sha)
                assert diff.split("index ")[1].split("\n", 1)[1] in content
                if fix["method"] == "patch-name":
                    assert sha[:12] in fix["patch"] and content.startswith(f"From {sha} ")
            in_pin = (
                all(
                    any(
                        _is_ancestor(upstream, c, f"refs/tags/{release['pinned_version']}")
                        for c in commits
                    )
                    for commits in _fix_commits_on(
                        world, vuln, f"refs/branch-heads/{release['pinned_version'].split('.')[2]}"
                    )
                )
                if vuln["kind"] == "chromium"
                else None
            )
            if in_pin is not None:
                assert in_pin == (fix["status"] == "base"), (release["tag"], cve)
    assert methods == {"patch-name", "patch-diff"}


def test_same_seed_same_history_other_seed_other_history(world, tmp_path):
    from tracker.generator import build_world, standard_world

    again = build_world(standard_world(seed=7), tmp_path / "again")
    other = build_world(standard_world(seed=8), tmp_path / "other")
    assert again["upstream"]["tip"] == world["upstream"]["tip"]
    assert [f.get("branches", [{}])[0].get("tip") for f in again["forks"]] == [
        f.get("branches", [{}])[0].get("tip") for f in world["forks"]
    ]
    assert other["upstream"]["tip"] != world["upstream"]["tip"]


def test_fix_commit_sha_in_a_patch_name_matches(world):
    (fork,) = _forks(world, "patch_series")
    names = {p for r in fork["releases"] for p in r["patches"]}
    assert any(re.fullmatch(r"chromium/cherry-pick-[0-9a-f]{12}\.patch", n) for n in names)
