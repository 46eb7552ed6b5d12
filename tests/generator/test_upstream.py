"""The generated upstream, checked with plain git: footers, versions, branches, tags, fixes."""

import json
import re
from pathlib import Path

from tests.helpers import footers, git, log_messages, patch_id

POSITION = re.compile(r"^refs/heads/main@\{#(\d+)\}$")


def test_main_commits_carry_consecutive_positions_and_gerrit_footers(world):
    repo = world["upstream"]["path"]
    messages = log_messages(repo, "refs/heads/main")
    assert len(messages) == world["upstream"]["main_commits"]
    positions = []
    for sha, message in messages:
        found = footers(message)
        (position,) = found["Cr-Commit-Position"]
        positions.append(int(POSITION.match(position).group(1)))
        if "Review-Url" not in found:  # the old style has no Change-Id
            (change_id,) = found["Change-Id"]
            assert re.fullmatch(r"I[0-9a-f]{40}", change_id), sha
            assert found["Reviewed-on"][0].startswith("https://chromium-review.googlesource.com/")
    first = world["upstream"]["first_position"]
    assert sorted(positions) == list(range(first, first + len(messages)))


def test_bug_footers_appear_in_every_form_chromium_uses(world):
    text = git(world["upstream"]["path"], "log", "--format=%B", "refs/heads/main")
    forms = {
        "bare 9 digits": r"^Bug: [34]\d{8}$",
        "bare 7 digits": r"^Bug: 1\d{6}$",
        "chromium:N": r"^Bug: chromium:\d+$",
        "b/N": r"^Bug: b/\d+$",
        "several ids": r"^Bug: \d+, \d+$",
        "Fixed:": r"^Fixed: \d+$",
        "legacy BUG=": r"^BUG=\d+$",
    }
    missing = [name for name, pattern in forms.items() if not re.search(pattern, text, re.M)]
    assert not missing


def test_version_file_bumps_mark_milestones_and_branch_points(world):
    repo = world["upstream"]["path"]
    for m in world["upstream"]["milestones"]:
        version = git(repo, "show", f"{m['branch_point']}:chrome/VERSION")
        assert f"MAJOR={m['milestone']}\n" in version
        assert f"BUILD={m['branch']}\n" in version
        base = git(repo, "merge-base", "refs/heads/main", m["ref"]).strip()
        assert base == m["branch_point"]


def test_branch_commits_carry_branch_positions_and_branched_from(world):
    repo = world["upstream"]["path"]
    for m in world["upstream"]["milestones"]:
        messages = log_messages(repo, f"refs/heads/main..{m['ref']}")
        assert len(messages) == m["branch_commits"]
        numbers = []
        for _sha, message in messages:
            found = footers(message)
            (position,) = found["Cr-Commit-Position"]
            match = re.fullmatch(rf"refs/branch-heads/{m['branch']}@\{{#(\d+)\}}", position)
            numbers.append(int(match.group(1)))
            (branched,) = found["Cr-Branched-From"]
            bp = m["branch_point_position"]
            assert branched == f"{m['branch_point']}-refs/heads/main@{{#{bp}}}"
        assert sorted(numbers) == list(range(1, len(messages) + 1))


def test_version_tags_sit_on_their_branch_with_matching_version_file(world):
    repo = world["upstream"]["path"]
    tags = git(repo, "tag", "--list").split()
    expected = [t["version"] for m in world["upstream"]["milestones"] for t in m["tags"]]
    expected += [t["version"] for t in world["upstream"]["main_tags"]]
    for tag in world["upstream"]["main_tags"]:
        git(repo, "merge-base", "--is-ancestor", tag["sha"], "refs/heads/main")
        major, _, build, _ = tag["version"].split(".")
        content = git(repo, "show", f"refs/tags/{tag['version']}:chrome/VERSION")
        assert f"MAJOR={major}\n" in content and f"BUILD={build}\n" in content
    assert sorted(tags) == sorted(expected)
    for m in world["upstream"]["milestones"]:
        for tag in m["tags"]:
            major, minor, build, patch = tag["version"].split(".")
            assert (int(major), int(build)) == (m["milestone"], m["branch"])
            content = git(repo, "show", f"refs/tags/{tag['version']}:chrome/VERSION")
            assert content == f"MAJOR={major}\nMINOR={minor}\nBUILD={build}\nPATCH={patch}\n"
            assert (
                git(repo, "rev-parse", f"refs/tags/{tag['version']}^{{commit}}").strip()
                == tag["sha"]
            )
            git(repo, "merge-base", "--is-ancestor", tag["sha"], m["ref"])
    patches = [
        [int(t["version"].split(".")[3]) for t in m["tags"]]
        for m in world["upstream"]["milestones"]
    ]
    assert all(p == sorted(p) and len(set(p)) == len(p) for p in patches)


def test_cherry_picks_carry_trailers_pointing_at_their_main_commit(world):
    repo = world["upstream"]["path"]
    picks = 0
    for m in world["upstream"]["milestones"]:
        for sha, message in log_messages(repo, f"refs/heads/main..{m['ref']}"):
            match = re.search(r"\(cherry picked from commit ([0-9a-f]{40})\)", message)
            if not match:
                continue
            picks += 1
            original = match.group(1)
            git(repo, "merge-base", "--is-ancestor", original, "refs/heads/main")
            original_message = git(repo, "log", "-1", "--format=%B", original)
            assert message.startswith(f"[M{m['milestone']}] ")
            found, original_found = footers(message), footers(original_message)
            assert found["Cr-Original-Commit-Position"] == original_found["Cr-Commit-Position"]
            assert found["Change-Id"] == original_found["Change-Id"]
            assert patch_id(repo, sha) == patch_id(repo, original)
    assert picks == sum(
        1 for v in world["vulnerabilities"] for p in v["cherry_picks"] if p["kind"] == "pick"
    )


def test_security_fixes_carry_their_bug_ids_and_one_fix_has_two_commits(world):
    repo = world["upstream"]["path"]
    kinds = {v["kind"] for v in world["vulnerabilities"]}
    assert kinds == {"chromium", "dependency_roll"}
    assert any(len(v["fix_commits"]) == 2 for v in world["vulnerabilities"])
    for vuln in world["vulnerabilities"]:
        for fix in vuln["fix_commits"]:
            git(repo, "merge-base", "--is-ancestor", fix["sha"], "refs/heads/main")
            message = git(repo, "log", "-1", "--format=%B", fix["sha"])
            bug_lines = " ".join(
                footers(message).get("Bug", []) + footers(message).get("Fixed", [])
            )
            if vuln["kind"] == "dependency_roll":
                assert message.startswith("Roll V8 from ")
                assert str(vuln["bug_ids"][0]) not in message  # placed by version only
            else:
                assert all(str(bug) in bug_lines for bug in vuln["bug_ids"])
            assert f"Change-Id: {fix['change_id']}" in message


def test_first_fixed_versions_contain_the_fix_and_earlier_tags_do_not(world):
    repo = world["upstream"]["path"]
    milestones = {str(m["milestone"]): m for m in world["upstream"]["milestones"]}
    for vuln in world["vulnerabilities"]:
        if vuln["kind"] != "chromium":
            continue

        def has_fix(tag, vuln=vuln):
            return all(
                any(
                    _is_ancestor(repo, commit, tag)
                    for commit in [fix["sha"]]
                    + [p["sha"] for p in vuln["cherry_picks"] if p["part"] == part]
                )
                for part, fix in enumerate(vuln["fix_commits"])
            )

        for milestone, version in vuln["first_fixed"].items():
            tags = [t["version"] for t in milestones[milestone]["tags"]]
            index = tags.index(version)
            assert has_fix(version), (vuln["cve"], version)
            if index:
                assert not has_fix(tags[index - 1]), (vuln["cve"], tags[index - 1])


def _is_ancestor(repo, commit: str, tag: str) -> bool:
    from tracker.git import run_git

    result = run_git(
        ["merge-base", "--is-ancestor", commit, f"refs/tags/{tag}"], git_dir=repo, check=False
    )
    return result.returncode == 0


def test_recorded_bulletins_list_each_cve_once_in_chrome_releases_shape(world):
    data = Path(world["path"]) / "upstream-data"
    feed = json.loads((data / "chromereleases-feed.json").read_text())
    text = " ".join(e["content"]["$t"] for e in feed["feed"]["entry"])
    line = re.compile(
        r"\[(?:\$?TBD|N/A|\$\d+(?: \+ \$\d+)?)\]\[(\d+(?:, \d+)*)\] (Critical|High|Medium|Low) "
        r"(CVE-\d{4}-\d+): [^.]+\. Reported by [^<]+ on \d{4}-\d{2}-\d{2}"
    )
    found = {m.group(3): m for m in line.finditer(text)}
    shipped = [v for v in world["vulnerabilities"] if v["first_stable_version"]]
    assert sorted(found) == sorted(v["cve"] for v in shipped)
    for vuln in shipped:
        match = found[vuln["cve"]]
        assert match.group(1) == ", ".join(str(b) for b in vuln["bug_ids"])
        assert match.group(2) == vuln["severity"]
    wild = [v["cve"] for v in shipped if v["in_the_wild"]]
    assert wild and all(f"an exploit for {cve} exists in the wild" in text for cve in wild)
    releases = json.loads((data / "chromiumdash-fetch_releases.json").read_text())
    stable_versions = {r["version"] for r in releases if r["channel"] == "Stable"}
    assert {v["first_stable_version"] for v in shipped} <= stable_versions


def test_chromium_branches_without_branch_point_footers_match_their_truth(tmp_path):
    from tracker.generator import build_world, standard_world

    spec = standard_world(
        seed=11,
        main_commits=800,
        milestones=2,
        vulnerabilities=2,
        chromium_branches=300,
        git_forks=(),
        patch_series_forks=(),
    )
    truth = build_world(spec, tmp_path / "w")["upstream"]
    repo = truth["path"]
    branches = truth["chromium_branches"]
    listed = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/chromium/")
    assert dict(line.split() for line in listed.splitlines()) == {
        b["ref"]: b["tip"] for b in branches
    }
    names = [b["ref"].removeprefix("refs/heads/chromium/") for b in branches]
    assert names[:2] == ["2013", "2014"] and sum("_" not in name for name in names) == 300
    assert any(name.endswith("_1") for name in names) and any(n.endswith("_1_1") for n in names)
    main = set(git(repo, "rev-list", "refs/heads/main").split())
    bare = 0
    for branch in branches:
        own = git(repo, "log", "--format=%H", f"refs/heads/main..{branch['ref']}").split()
        assert set(own) == set(branch["own_commits"]), branch["ref"]
        assert branch["branch_point"] in main
        bare += not own
        for _sha, message in log_messages(repo, f"refs/heads/main..{branch['ref']}"):
            assert "Cr-Branched-From" not in message and "Cr-Commit-Position" not in message
            assert "(cherry picked from commit " in message
    assert bare > len(branches) * 0.9  # mostly bare branch points on main
    # Shared commits: a NNNN_1 branch holds some of its NNNN branch's own commits.
    by_ref = {b["ref"]: set(b["own_commits"]) for b in branches}
    assert any(by_ref[ref] & by_ref[ref.rsplit("_", 1)[0]] for ref in by_ref if ref.endswith("_1"))
    # One branch's first cherry-pick is dated before its branch point.
    skewed = [
        b
        for b in branches
        if b["own_commits"]
        and "_" not in b["ref"]
        and int(git(repo, "log", "-1", "--format=%ct", b["own_commits"][0]))
        < int(git(repo, "log", "-1", "--format=%ct", b["branch_point"]))
    ]
    assert len(skewed) == 1
