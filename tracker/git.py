"""The one place that runs git.

Every git command in this project goes through `run_git()` (or its streaming siblings
`git_output_stream()` and `git_input_stream()`), which:

- passes an argument list, never a shell, with a timeout that kills the whole process group;
- runs with a fixed, minimal environment: no terminal prompts, no system config, protocols
  limited to an allowlist (``GIT_ALLOW_PROTOCOL``), so ``ext::`` and friends cannot run;
- keeps credentials out of argv, logs and error messages: credentials travel through a
  credential helper configured by environment variables, and every message is redacted.

Callers validate data that reaches git with `check_remote_url()` and `check_ref_name()` and put
``--end-of-options`` before revisions that came from data (git treats a leading ``-`` as an
option otherwise).

GitPython (the repository layer, `tracker.gitrepo`) runs no git of its own: its command runner
hands every command to `run_git()`, and its persistent ``cat-file`` object readers start
through `popen_git()`, the one place here that starts a git process, with this environment.
The only git GitPython starts by itself is ``git version``, once, when it is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

GIT = "git"
DEFAULT_TIMEOUT = 600.0
# Protocols git may use at all; "file" is needed for local mirrors and generated worlds, and
# local paths are further limited to configured roots by check_remote_url().
ALLOWED_PROTOCOLS = "https:ssh:file"
REMOTE_SCHEMES = {"https", "ssh"}
_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:].*)$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


class GitError(Exception):
    """A git command failed, timed out, or was refused. The message is safe to show."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(redact(message))
        self.returncode = returncode
        self.stderr = redact(stderr)


class UnsafeGitInput(GitError, ValueError):
    """A URL or ref name taken from data was refused before reaching git."""


def redact(text: str) -> str:
    """Replace any user:password@ (or token@) part of URLs in `text` with ***@."""
    return _CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", text)


@dataclass(frozen=True)
class RemoteURL:
    """A validated remote: `url` is safe to pass to git and to store; credentials are apart."""

    url: str
    username: str = ""
    password: str = ""

    @property
    def has_credentials(self) -> bool:
        return bool(self.username or self.password)


def _under_roots(path: Path, roots: Sequence[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root or root in resolved.parents for root in roots)


def check_remote_url(url: str, local_roots: Sequence[Path | str] = ()) -> RemoteURL:
    """Validate a repository URL taken from data and split off any credentials.

    Accepted: https:// and ssh:// URLs, scp-like ``user@host:path``, and local paths or
    file:// URLs that resolve under one of `local_roots`. Refused, with UnsafeGitInput: anything
    starting with ``-`` (it would be read as an option such as ``--upload-pack=``), other
    schemes (``ext::``, ``git://``, ``http://``, ``fd::``...), control characters, and local
    paths outside the roots.
    """
    roots = [Path(r).resolve() for r in local_roots]
    if not isinstance(url, str) or not url.strip():
        raise UnsafeGitInput("repository URL is empty")
    url = url.strip()
    if url.startswith("-"):
        raise UnsafeGitInput("repository URL may not start with '-' (it would be a git option)")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise UnsafeGitInput("repository URL contains control characters")
    if "::" in url.split("/", 1)[0]:
        raise UnsafeGitInput(
            f"repository URL uses a remote helper ({url.split('::', 1)[0]}::), which is not allowed"
        )
    parts = urlsplit(url)
    if parts.scheme in REMOTE_SCHEMES:
        if not parts.hostname or parts.hostname.startswith("-"):
            raise UnsafeGitInput(f"repository URL has no valid host: {redact(url)}")
        username, password = unquote(parts.username or ""), unquote(parts.password or "")
        netloc = parts.hostname
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        if parts.scheme == "ssh" and username and not password:
            # ssh://git@host/... : the user name is part of the address, not a secret.
            return RemoteURL(
                urlunsplit(
                    (parts.scheme, f"{quote(username)}@{netloc}", parts.path, parts.query, "")
                )
            )
        clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        return RemoteURL(clean, username, password)
    if parts.scheme == "file" or (not parts.scheme and url.startswith(("/", "."))):
        path = Path(unquote(parts.path) if parts.scheme == "file" else url)
        if not path.is_absolute():
            raise UnsafeGitInput("local repository paths must be absolute")
        if not roots or not _under_roots(path, roots):
            raise UnsafeGitInput(
                f"local repository {path} is outside the allowed roots (GIT_LOCAL_ROOTS)"
            )
        return RemoteURL(str(path.resolve()))
    if not parts.scheme or len(parts.scheme) == 1:
        match = _SCP_LIKE.match(url)
        if match and not match.group("host").startswith("-"):
            return RemoteURL(url)
    raise UnsafeGitInput(
        f"repository URL scheme {parts.scheme or '(none)'!r} is not allowed; "
        "use https://, ssh://, or a local path under GIT_LOCAL_ROOTS"
    )


_REF_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?\[\\]")


def check_ref_name(ref: str, *, allow_glob: bool = False) -> str:
    """Validate a ref name (or refspec side) taken from data, following git check-ref-format.

    Also refuses names starting with ``-``. With `allow_glob`, one ``*`` is allowed (patterns
    such as ``refs/branch-heads/*``).
    """
    if not isinstance(ref, str) or not ref:
        raise UnsafeGitInput("ref name is empty")
    problem = None
    if ref.startswith("-"):
        problem = "starts with '-'"
    elif ".." in ref:
        problem = "contains '..'"
    elif "@{" in ref or ref == "@":
        problem = "contains '@{'"
    elif _REF_BAD_CHARS.search(ref):
        problem = "contains a space, control character or one of ~^:?[\\"
    elif "*" in ref and (not allow_glob or ref.count("*") > 1):
        problem = "contains '*'"
    elif ref.startswith("/") or ref.endswith(("/", ".")) or "//" in ref:
        problem = "has an empty path component or ends with '/' or '.'"
    elif any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/")):
        problem = "has a component starting with '.' or ending with '.lock'"
    if problem:
        raise UnsafeGitInput(f"ref name {ref!r} is not allowed: it {problem}")
    return ref


def check_sha(value: str) -> str:
    """A full 40-hex object id, lower-cased; anything else is refused."""
    value = (value or "").strip().lower()
    if not _SHA.match(value):
        raise UnsafeGitInput(f"not a full commit id: {value[:60]!r}")
    return value


def _credential_env(remote: RemoteURL | None) -> dict[str, str]:
    """Environment that hands `remote`'s credentials to git through a credential helper.

    The helper is a shell function in git config set through GIT_CONFIG_* variables; it prints
    the values of two environment variables, so the secret is never in argv or in a file.
    """
    if remote is None or not remote.has_credentials:
        return {}
    helper = (
        '!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
        '"$FORKHEALTH_GIT_USERNAME" "$FORKHEALTH_GIT_PASSWORD"; }; f'
    )
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": "credential.helper",
        "GIT_CONFIG_VALUE_1": helper,
        "FORKHEALTH_GIT_USERNAME": remote.username,
        "FORKHEALTH_GIT_PASSWORD": remote.password,
    }


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every git process runs with."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "LC_ALL": "C",
        "LANG": "C",
        "TZ": "UTC",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
        "GIT_OPTIONAL_LOCKS": "0",
    }
    # The SSH agent, and git's own variables for trusting an internal certificate authority,
    # are the operator's to set; everything else in the environment stays out of git's reach.
    for name in ("SSH_AUTH_SOCK", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    if extra:
        env.update(extra)
    return env


def _command(args: Sequence[str], git_dir: Path | str | None) -> list[str]:
    if isinstance(args, str | bytes):
        raise TypeError("run_git takes a list of arguments, never a string")
    command = [GIT]
    if git_dir is not None:
        command.append(f"--git-dir={git_dir}")
    command.extend(str(a) for a in args)
    return command


# The lines of git's stderr that say why it failed. A failed fetch ends with consequences
# ("fatal: early EOF", "possible repository corruption on the remote side"); the cause is an
# earlier line, often the server's ("remote: fatal: unable to read 702444ca…").
_REASON_LINE = re.compile(r"^(?:remote: )?(?:fatal|error): ")
REASON_LINES = 6
REASON_CHARS = 1200


def failure_reason(stderr: str) -> str:
    """Why a git command failed, from its stderr: every ``fatal:``/``error:`` line (the
    server's ``remote: fatal:`` ones too), in order, each once, at most REASON_LINES lines and
    REASON_CHARS characters; the last line when there is none of those."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no message"
    reasons = list(dict.fromkeys(line for line in lines if _REASON_LINE.match(line)))
    if not reasons:
        return lines[-1][:REASON_CHARS]
    if len(reasons) > REASON_LINES:
        reasons = [*reasons[: REASON_LINES - 1], f"(and {len(reasons) - REASON_LINES + 1} more)"]
    text = " / ".join(reasons)
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _describe(command: Sequence[str]) -> str:
    return redact(" ".join(command[:6]) + (" ..." if len(command) > 6 else ""))


def _popen(
    command: list[str],
    *,
    cwd: Path | str | None,
    env: Mapping[str, str],
    stdin: int | IO | None,
    stdout: int | IO | None,
    stderr: int | IO | None,
) -> subprocess.Popen:
    """Start git: never a shell, `git_env()` plus `env` and nothing else of this process's
    environment, in a session of its own so that a timeout can kill it with its children."""
    try:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=git_env(env),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise GitError(f"cannot run git: {exc.strerror}") from None


def popen_git(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: int | None = subprocess.PIPE,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
) -> subprocess.Popen:
    """Start a long-lived git process and return it, for a caller that talks to it for a
    while (GitPython's persistent ``cat-file --batch``). No timeout applies here: the caller
    bounds each exchange itself and kills the process group with `kill_git()`."""
    return _popen(
        _command(args, None), cwd=None, env=env or {}, stdin=stdin, stdout=stdout, stderr=stderr
    )


def kill_git(proc: subprocess.Popen) -> None:
    """Kill a git process started here, with any children it started (its session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    git_dir: Path | str | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    remote: RemoteURL | None = None,
    env: Mapping[str, str] | None = None,
) -> GitResult:
    """Run one git command and return its output.

    `check=False` returns non-zero exit codes instead of raising (for commands such as
    ``merge-base --is-ancestor`` that answer with the exit code). Raises GitError on timeout,
    on a missing git binary and, with `check`, on a non-zero exit.
    """
    command = _command(args, git_dir)
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    extra = {**_credential_env(remote), **(env or {})}
    proc = _popen(
        command,
        cwd=cwd,
        env=extra,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr_b = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_git(proc)
        proc.communicate()
        raise GitError(f"{_describe(command)} timed out after {timeout:.0f}s") from None
    stderr = redact(stderr_b.decode("utf-8", errors="replace"))
    if check and proc.returncode != 0:
        raise GitError(
            f"{_describe(command)} failed (exit {proc.returncode}): {failure_reason(stderr)}",
            returncode=proc.returncode,
            stderr=stderr,
        )
    return GitResult(proc.returncode, stdout, stderr)


@contextlib.contextmanager
def _spawn(
    args: Sequence[str],
    *,
    git_dir: Path | str | None,
    cwd: Path | str | None,
    timeout: float | None,
    stdin: int | None,
    stdout: int | None,
    remote: RemoteURL | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    command = _command(args, git_dir)
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    extra = {**_credential_env(remote), **(env or {})}
    with tempfile.TemporaryFile() as errfile:
        proc = _popen(command, cwd=cwd, env=extra, stdin=stdin, stdout=stdout, stderr=errfile)
        # A watchdog kills the process group when the timeout passes, even while the caller
        # is blocked reading or writing a pipe.
        import threading

        timer = threading.Timer(timeout, kill_git, args=(proc,))
        timer.daemon = True
        timer.start()
        failed = False
        try:
            yield proc
        except BaseException:
            failed = True
            kill_git(proc)
            raise
        finally:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(BrokenPipeError, OSError):
                        stream.close()
            returncode = proc.wait()
            timed_out = not timer.is_alive() and returncode < 0
            timer.cancel()
            if not failed:
                errfile.seek(0)
                stderr = redact(errfile.read().decode("utf-8", errors="replace"))
                if timed_out:
                    raise GitError(f"{_describe(command)} timed out after {timeout:.0f}s")
                # SIGPIPE: the reader stopped early on purpose (e.g. it needed one line).
                if returncode not in (0, -signal.SIGPIPE):
                    raise GitError(
                        f"{_describe(command)} failed (exit {returncode}): "
                        f"{failure_reason(stderr)}",
                        returncode=returncode,
                        stderr=stderr,
                    )


@contextlib.contextmanager
def git_output_stream(
    args: Sequence[str],
    *,
    git_dir: Path | str | None = None,
    cwd: Path | str | None = None,
    timeout: float | None = None,
    remote: RemoteURL | None = None,
    input: bytes | None = None,
) -> Iterator[IO[bytes]]:
    """Run git and yield its stdout as a binary stream, for output too large for memory.

    `input` is written to git's stdin, which is then closed, before the output is read: for
    commands that read all their input before they write (``git log --stdin``, which takes
    revisions there rather than in an argument list that thousands of refs would overflow).
    The exit status is checked when the block ends (GitError on failure). Leaving the block
    early (break, exception) kills git.
    """
    with _spawn(
        args,
        git_dir=git_dir,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        remote=remote,
    ) as proc:
        if input is not None:
            # git stopping early (a bad revision) shows in its exit status, checked at the end.
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(input)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
        yield proc.stdout  # type: ignore[misc]


@contextlib.contextmanager
def git_input_stream(
    args: Sequence[str],
    *,
    git_dir: Path | str | None = None,
    cwd: Path | str | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[IO[bytes]]:
    """Run git and yield its stdin as a binary stream (``git fast-import`` reads one)."""
    with _spawn(
        args,
        git_dir=git_dir,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    ) as proc:
        yield proc.stdin  # type: ignore[misc]
