"""run_git and its checks: hostile input is refused, credentials never show, timeouts kill."""

import logging
import time

import pytest

from tests.helpers import fast_import, lose_object
from tracker.git import (
    GitError,
    UnsafeGitInput,
    check_ref_name,
    check_remote_url,
    check_sha,
    failure_reason,
    git_input_stream,
    git_output_stream,
    redact,
    run_git,
)


@pytest.mark.parametrize(
    "url",
    [
        "--upload-pack=touch /tmp/pwned",
        "-oProxyCommand=touch /tmp/pwned",
        "ext::sh -c touch% /tmp/pwned",
        "fd::17",
        "git://example.com/repo.git",
        "http://example.com/repo.git",
        "file:///etc",
        "/etc/passwd",
        "ssh://-oProxyCommand=x/repo",
        "https://example.com/repo\n.git",
        "",
        "relative/path",
    ],
)
def test_hostile_or_unsupported_urls_are_refused(url, tmp_path):
    with pytest.raises(UnsafeGitInput):
        check_remote_url(url, local_roots=[tmp_path])


def test_allowed_urls_and_local_roots(tmp_path):
    repo = tmp_path / "forks" / "a.git"
    repo.mkdir(parents=True)
    assert check_remote_url("https://chromium.googlesource.com/chromium/src").url == (
        "https://chromium.googlesource.com/chromium/src"
    )
    assert (
        check_remote_url("git@github.com:acme/browser.git").url == "git@github.com:acme/browser.git"
    )
    assert (
        check_remote_url("ssh://git@host.example/acme.git").url == "ssh://git@host.example/acme.git"
    )
    assert check_remote_url(str(repo), local_roots=[tmp_path]).url == str(repo)
    assert check_remote_url(f"file://{repo}", local_roots=[tmp_path]).url == str(repo)
    with pytest.raises(UnsafeGitInput, match="outside the allowed roots"):
        check_remote_url(str(tmp_path / ".." / "elsewhere"), local_roots=[tmp_path])


def test_credentials_are_split_off_and_redacted():
    remote = check_remote_url("https://bot:s3cr%40t@git.example.com/acme/src.git")
    assert remote.url == "https://git.example.com/acme/src.git"
    assert (remote.username, remote.password) == ("bot", "s3cr@t")
    assert "s3cr" not in repr(remote.url)
    message = redact("fatal: could not read from https://bot:s3cret@git.example.com/x")
    assert "s3cret" not in message and "https://***@git.example.com/x" in message


@pytest.mark.parametrize(
    "ref",
    [
        "-delete",
        "refs/heads/../../config",
        "refs/heads/a..b",
        "refs/heads/x@{1}",
        "refs/heads/a b",
        "refs/heads/a~1",
        "refs/heads/a^",
        "refs/heads/a:b",
        "refs/heads/.hidden",
        "refs/heads/x.lock",
        "refs/heads/",
        "refs//heads",
        "refs/heads/*",
        "",
        "refs/heads/a\\b",
        "refs/heads/a\x00",
    ],
)
def test_hostile_ref_names_are_refused(ref):
    with pytest.raises(UnsafeGitInput):
        check_ref_name(ref)


def test_valid_ref_names_and_patterns():
    for ref in (
        "refs/heads/main",
        "refs/branch-heads/6422",
        "refs/tags/125.0.6422.141",
        "release/125",
        "refs/heads/feature_x-1",
    ):
        assert check_ref_name(ref) == ref
    assert check_ref_name("refs/branch-heads/*", allow_glob=True)
    with pytest.raises(UnsafeGitInput):
        check_ref_name("refs/*/x/*", allow_glob=True)


def test_check_sha():
    assert check_sha("A" * 40) == "a" * 40
    for bad in ("abc", "g" * 40, "-" + "a" * 39, "a" * 41):
        with pytest.raises(UnsafeGitInput):
            check_sha(bad)


def test_run_git_refuses_a_string_command():
    with pytest.raises(TypeError):
        run_git("status")


def test_failure_message_is_safe_and_names_the_command(tmp_path):
    with pytest.raises(GitError) as info:
        run_git(["rev-parse", "--verify", "--end-of-options", "nope"], git_dir=tmp_path / "none")
    assert "git --git-dir=" in str(info.value) and "failed (exit" in str(info.value)


def test_a_failed_fetch_says_why_not_only_what_followed(tmp_path):
    """A server lacking a blob: git's last line blames the remote side; the cause is the
    server's first line, which the message keeps."""
    served = tmp_path / "served.git"
    run_git(["init", "--quiet", "--bare", str(served)])
    tip = fast_import(served, "refs/heads/main", "", [{"big.bin": "contents"}])
    lost = run_git(["rev-parse", f"{tip}:big.bin"], git_dir=served).text.strip()
    lose_object(served, lost)
    mirror = tmp_path / "mirror.git"
    run_git(["init", "--quiet", "--bare", str(mirror)])
    with pytest.raises(GitError) as info:
        run_git(["fetch", "--quiet", f"file://{served}", "+refs/*:refs/*"], git_dir=mirror)
    message = str(info.value)
    assert f"remote: fatal: unable to read {lost}" in message
    assert "possible repository corruption on the remote side" in message
    assert message.count(f"unable to read {lost}") == 1


def test_failure_reasons_are_the_fatal_and_error_lines_each_once_and_bounded():
    stderr = (
        "hint: something\nremote: fatal: unable to read abc  \nerror: pack died\n"
        "remote: aborting\nfatal: early EOF\nfatal: early EOF\n"
    )
    assert failure_reason(stderr) == (
        "remote: fatal: unable to read abc / error: pack died / fatal: early EOF"
    )
    assert failure_reason("warning: one\nlast words\n") == "last words"
    assert failure_reason("") == "no message"
    many = "".join(f"error: line {n}\n" for n in range(20))
    assert failure_reason(many).endswith("error: line 4 / (and 15 more)")
    assert len(failure_reason("fatal: " + "x" * 5000)) == 1200


def test_end_of_options_keeps_a_dash_revision_from_being_an_option(tmp_path):
    run_git(["init", "--quiet", "--bare", str(tmp_path / "r.git")])
    marker = tmp_path / "pwned"
    result = run_git(
        ["log", "--end-of-options", f"--output={marker}"], git_dir=tmp_path / "r.git", check=False
    )
    assert result.returncode != 0
    assert not marker.exists()


def test_credentials_reach_git_through_the_helper_not_argv(tmp_path, caplog):
    """git asks the helper: the password is handed over without appearing in argv or errors."""
    remote = check_remote_url("https://bot:hunter2-secret@127.0.0.1:9/none.git")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GitError) as info:
        run_git(["ls-remote", "--end-of-options", remote.url], remote=remote, timeout=30)
    text = str(info.value) + info.value.stderr + caplog.text
    assert "hunter2-secret" not in text
    helper = run_git(["config", "--get-all", "credential.helper"], remote=remote, check=False)
    assert "hunter2-secret" not in helper.text  # the helper refers to the value, never holds it
    filled = run_git(
        ["credential", "fill"], remote=remote, input=b"protocol=https\nhost=127.0.0.1:9\n\n"
    )
    assert "password=hunter2-secret" in filled.text


def test_timeout_kills_the_command(tmp_path):
    run_git(["init", "--quiet", "--bare", str(tmp_path / "r.git")])
    started = time.monotonic()
    stream = git_input_stream(["hash-object", "--stdin"], git_dir=tmp_path / "r.git", timeout=1)
    with pytest.raises(GitError, match="timed out"), stream:
        time.sleep(3)  # never closing stdin: git waits until the watchdog kills it
    assert time.monotonic() - started < 10


def test_streams_round_trip_through_fast_import_and_log(tmp_path):
    repo = tmp_path / "r.git"
    run_git(["init", "--quiet", "--bare", str(repo)])
    stream = (
        b"commit refs/heads/main\ncommitter A <a@example.com> 1700000000 +0000\ndata 6\nhello\n\n"
    )
    with git_input_stream(["fast-import", "--quiet"], git_dir=repo) as stdin:
        stdin.write(stream)
    with git_output_stream(["log", "--format=%s", "refs/heads/main"], git_dir=repo) as out:
        assert out.read() == b"hello\n"
    failing = git_output_stream(["log", "--end-of-options", "missing"], git_dir=repo)
    with pytest.raises(GitError, match="failed"), failing as out:
        out.read()
    # Revisions on stdin (git log --stdin), for lists too long for an argument list.
    tip = run_git(["rev-parse", "refs/heads/main"], git_dir=repo).text.strip()
    revisions = f"{tip}\n".encode() * 20_000
    with git_output_stream(["log", "--format=%s", "--stdin"], git_dir=repo, input=revisions) as out:
        assert out.read() == b"hello\n"
    failing = git_output_stream(["log", "--stdin"], git_dir=repo, input=b"0" * 40 + b"\n")
    with pytest.raises(GitError, match="bad object"), failing as out:
        out.read()
