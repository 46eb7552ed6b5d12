import contextlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.git import git_output_stream, run_git
from tracker.gitlog import (
    FIELD_COUNT,
    LOG_FORMAT,
    GitLogParseError,
    LogRecord,
    decode_git_text,
    iter_log_records,
    log_args,
)

# The CVE-2024-5497 fix landed on main at Mon May 20 21:29:09 2024 UTC and on M125 at
# Tue May 28 18:26:47 2024 UTC.
LANDED_ON_MAIN = 1716240549
LANDED_ON_M125 = 1716920807


@dataclass(frozen=True)
class Commit:
    """A commit for `fast_import`; `parents` name earlier commits of the same import."""

    message: bytes
    ref: str = "refs/heads/main"
    parents: tuple[str, ...] = ()
    author: bytes = b"Taylor Bergquist <tbergquist@chromium.org> %d +0200" % LANDED_ON_MAIN
    committer: bytes = b"Chromium LUCI CQ <luci-cq@chromium.org> %d +0000" % LANDED_ON_M125
    encoding: str | None = None


def fast_import(git_dir, commits: dict[str, Commit]) -> dict[str, str]:
    """Write `commits` (in order) into the repository with ``git fast-import``.

    Returns name -> sha. Each commit has an empty tree; a commit without parents starts a
    new history, so give every root its own ref.
    """
    stream = bytearray()
    marks = {name: index for index, name in enumerate(commits, start=1)}
    for name, commit in commits.items():
        ref = commit.ref.encode()
        if not commit.parents:
            stream += b"reset %s\n\n" % ref  # forget the ref's tip: the next commit is a root
        stream += b"commit %s\nmark :%d\n" % (ref, marks[name])
        stream += b"author %s\ncommitter %s\n" % (commit.author, commit.committer)
        if commit.encoding:
            stream += b"encoding %s\n" % commit.encoding.encode()
        stream += b"data %d\n%s\n" % (len(commit.message), commit.message)
        for keyword, parent in zip([b"from"] + [b"merge"] * 9, commit.parents, strict=False):
            stream += b"%s :%d\n" % (keyword, marks[parent])
        stream += b"\n"
    marks_file = git_dir / "fast-import.marks"
    run_git(
        ["fast-import", "--quiet", f"--export-marks={marks_file}"],
        git_dir=git_dir,
        input=bytes(stream),
    )
    by_mark = dict(line.split(" ") for line in marks_file.read_text().splitlines())
    return {name: by_mark[f":{marks[name]}"] for name in commits}


def cat_file_commit(git_dir, sha: str) -> dict:
    """The commit object as git stores it: header fields and the raw message bytes."""
    raw = run_git(["cat-file", "commit", sha], git_dir=git_dir).stdout
    header, _, message = raw.partition(b"\n\n")
    fields: dict = {"parent": [], "message": message, "encoding": None}
    for line in header.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"parent":
            fields["parent"].append(value.decode())
        elif key in (b"author", b"committer"):
            person, _, stamp = value.rpartition(b"> ")
            name, _, email = person.partition(b" <")
            fields[key.decode()] = (name, email, int(stamp.split(b" ")[0]))
        elif key == b"encoding":
            fields["encoding"] = value.decode()
    return fields


# Every awkward shape a real history has. Latin-1 and cp1252 bytes are written as stored by
# pre-UTF-8 tools: no encoding header, so git log passes them through undecoded.
WORLD = {
    "root": Commit(b"Root commit\n"),
    "crlf": Commit(
        b"Subject with CRLF  \r\n\r\nBody with trailing spaces   \r\n\tindented\t\r\n",
        parents=("root",),
    ),
    "latin1": Commit(
        b"Caf\xe9 cr\xe8me br\xfbl\xe9e\n\nWritten in ISO-8859-1.\n",
        ref="refs/heads/side",
        parents=("root",),
        author=b"Ren\xe9 Latin <rene@example.org> 1000000000 -0700",
    ),
    "cp1252": Commit(
        b"\x93Smart quotes\x94 \x85 and a euro \x80\n", ref="refs/heads/side", parents=("latin1",)
    ),
    "merge": Commit(
        b"Merge side into main\n\nControl: \x1f unit sep, \x01\x07\x0b\x0c \x1b[31m \x7f end\n",
        parents=("crlf", "cp1252"),
    ),
    "empty": Commit(b"", parents=("merge",)),
    "declared": Commit(b"D\xe9j\xe0 vu\n", parents=("empty",), encoding="iso-8859-1"),
    "unicode": Commit(
        "Ünïcödé ✓ 漢字\n\nBug: 339061099\nCr-Commit-Position: refs/heads/main@{#1303471}".encode(),
        parents=("declared",),
        author="Peter Boström <pbos@chromium.org> 1716240549 +0000".encode(),
    ),
    # git commit refuses NUL bytes, fast-import does not; git log stops the message there.
    "nul": Commit(b"Before NUL\0after NUL\n", parents=("unicode",)),
    "epoch": Commit(
        b"A second root, at the epoch\n",
        ref="refs/heads/orphan",
        author=b"Old Timer <old@example.org> 0 +0000",
        committer=b"Old Timer <old@example.org> 0 +0000",
    ),
}
REVISIONS = ["main", "orphan"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A bare repository holding WORLD; returns (git_dir, name -> sha)."""
    git_dir = tmp_path_factory.mktemp("gitlog") / "world.git"
    run_git(["init", "--quiet", "--bare", str(git_dir)])
    return git_dir, fast_import(git_dir, WORLD)


@pytest.fixture(scope="module")
def log_bytes(world):
    git_dir, _ = world
    return run_git(log_args(REVISIONS), git_dir=git_dir).stdout


@pytest.fixture(scope="module")
def records(world):
    git_dir, shas = world
    with git_output_stream(log_args(REVISIONS), git_dir=git_dir) as out:
        parsed = list(iter_log_records(out))
    names = {sha: name for name, sha in shas.items()}
    return {names[record.sha]: record for record in parsed}


def test_log_args_put_revisions_after_end_of_options():
    assert log_args(["main", "-x"], ["--first-parent"]) == [
        "log",
        "-z",
        "--no-show-signature",
        f"--format={LOG_FORMAT}",
        "--first-parent",
        "--end-of-options",
        "main",
        "-x",
    ]
    with pytest.raises(TypeError):
        log_args("main")


def test_a_revision_that_looks_like_an_option_stays_a_revision(world, tmp_path):
    git_dir, _ = world
    target = tmp_path / "written-by-git"

    result = run_git(log_args([f"--output={target}"]), git_dir=git_dir, check=False)

    assert result.returncode != 0
    assert not target.exists()


def test_every_commit_is_parsed_in_git_log_order(world, log_bytes):
    git_dir, shas = world
    expected = run_git(["log", "--format=%H", *REVISIONS], git_dir=git_dir).text.split()

    parsed = [record.sha for record in iter_log_records(io.BytesIO(log_bytes))]

    assert parsed == expected
    assert sorted(parsed) == sorted(shas.values())


def test_records_match_the_stored_commit_objects(world, records):
    git_dir, shas = world
    for name, sha in shas.items():
        stored = cat_file_commit(git_dir, sha)
        record = records[name]
        author_name, author_email, author_time = stored["author"]
        shown = stored["message"].split(b"\0")[0]  # git log prints up to the first NUL
        if stored["encoding"]:  # git log re-encodes declared encodings to UTF-8
            message, lossy = shown.decode(stored["encoding"]), False
        else:
            message, lossy = decode_git_text(shown)

        assert record.sha == sha
        assert record.parents == tuple(stored["parent"]), name
        assert record.author_name == decode_git_text(author_name)[0], name
        assert record.author_email == author_email.decode(), name
        assert record.author_time == datetime.fromtimestamp(author_time, UTC), name
        assert record.committer_time == datetime.fromtimestamp(stored["committer"][2], UTC)
        assert record.message == message, name
        assert record.message_lossy is lossy, name


def test_root_and_merge_commits_have_their_parents(world, records):
    _, shas = world

    assert records["root"].parents == ()
    assert records["epoch"].parents == ()
    assert records["crlf"].parents == (shas["root"],)
    assert records["merge"].parents == (shas["crlf"], shas["cp1252"])


def test_times_are_aware_utc_whatever_the_commit_timezone(records):
    record = records["root"]  # author in +0200

    assert record.author_time == datetime(2024, 5, 20, 21, 29, 9, tzinfo=UTC)
    assert record.author_time.utcoffset() == timedelta(0)
    assert record.committer_time == datetime(2024, 5, 28, 18, 26, 47, tzinfo=UTC)
    assert records["epoch"].author_time == datetime(1970, 1, 1, tzinfo=UTC)


def test_messages_are_kept_byte_for_byte(records):
    assert records["root"].message == "Root commit\n"
    assert records["crlf"].message == (
        "Subject with CRLF  \r\n\r\nBody with trailing spaces   \r\n\tindented\t\r\n"
    )
    assert records["merge"].message == (
        "Merge side into main\n\nControl: \x1f unit sep, \x01\x07\x0b\x0c \x1b[31m \x7f end\n"
    )
    assert records["unicode"].message.endswith("refs/heads/main@{#1303471}")  # no final LF
    assert records["unicode"].author_name == "Peter Boström"


def test_git_log_cuts_a_message_at_a_nul_byte(records):
    assert records["nul"].message == "Before NUL"


def test_empty_message_is_an_empty_string(records):
    assert records["empty"].message == ""
    assert records["empty"].message_lossy is False


def test_non_utf8_messages_are_decoded_with_a_fallback_and_flagged(records):
    assert records["latin1"].message == "Café crème brûlée\n\nWritten in ISO-8859-1.\n"
    assert records["latin1"].message_lossy is True
    assert records["latin1"].author_name == "René Latin"
    assert records["cp1252"].message == "\u201cSmart quotes\u201d \u2026 and a euro \u20ac\n"
    assert records["cp1252"].message_lossy is True


def test_declared_encoding_is_converted_by_git(records):
    assert records["declared"].message == "Déjà vu\n"
    assert records["declared"].message_lossy is False


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 64, 1 << 16, 1 << 22])
def test_chunk_size_does_not_change_the_result(log_bytes, chunk_size):
    expected = list(iter_log_records(io.BytesIO(log_bytes)))

    assert list(iter_log_records(io.BytesIO(log_bytes), chunk_size)) == expected


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError):
        list(iter_log_records(io.BytesIO(b""), 0))


def test_empty_stream_has_no_records():
    assert list(iter_log_records(io.BytesIO(b""))) == []


def test_a_stream_cut_anywhere_inside_a_record_raises(log_bytes):
    records = list(iter_log_records(io.BytesIO(log_bytes)))
    # Every record ends after its FIELD_COUNT-th NUL.
    nuls = [i for i, byte in enumerate(log_bytes) if byte == 0]
    record_ends = {0} | {nuls[i] + 1 for i in range(FIELD_COUNT - 1, len(nuls), FIELD_COUNT)}

    for cut in range(len(log_bytes)):
        stream = io.BytesIO(log_bytes[:cut])
        if cut in record_ends:
            assert list(iter_log_records(stream, 5)) == records[: sorted(record_ends).index(cut)]
        else:
            with pytest.raises(GitLogParseError, match="stream ends inside the record"):
                list(iter_log_records(stream, 5))


def synthetic(*fields: bytes) -> bytes:
    return b"".join(field + b"\0" for field in fields)


GOOD = synthetic(b"a" * 40, b"", b"A", b"a@x", b"1", b"2", b"subject\n")


def test_bad_commit_id_names_the_byte_offset():
    stream = io.BytesIO(GOOD + synthetic(b"not-a-sha", b"", b"A", b"a@x", b"1", b"2", b"m"))

    with pytest.raises(GitLogParseError, match=f"record at byte {len(GOOD)}: commit id"):
        list(iter_log_records(stream))


def test_bad_time_names_the_commit():
    stream = io.BytesIO(synthetic(b"b" * 40, b"", b"A", b"a@x", b"1 ", b"2", b"m"))

    with pytest.raises(GitLogParseError, match=r"commit b{40} .*epoch seconds"):
        list(iter_log_records(stream))


@pytest.mark.parametrize(
    "parents", [b"c" * 39, b"C" * 40, b"c" * 40 + b"  " + b"d" * 40, b"c" * 40 + b" "]
)
def test_bad_parent_ids_are_refused(parents):
    stream = io.BytesIO(synthetic(b"b" * 40, parents, b"A", b"a@x", b"1", b"2", b"m"))

    with pytest.raises(GitLogParseError, match="bad parent id"):
        list(iter_log_records(stream))


def test_records_before_a_broken_one_are_yielded():
    stream = io.BytesIO(GOOD + b"garbage\0")
    parsed = iter_log_records(stream)

    assert next(parsed).sha == "a" * 40
    with pytest.raises(GitLogParseError):
        next(parsed)


def test_a_stray_nul_in_a_field_misaligns_the_fields_and_is_caught():
    # git log never prints one (see the "nul" commit); if a stream had one, the next commit
    # id would be garbage.
    stream = io.BytesIO(synthetic(b"a" * 40, b"", b"A", b"a@x", b"1", b"2", b"x\0y") + GOOD)

    with pytest.raises(GitLogParseError):
        list(iter_log_records(stream))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", ("", False)),
        ("Boström ✓".encode(), ("Boström ✓", False)),
        (b"Caf\xe9", ("Café", True)),
        (b"\x93q\x94", ("\u201cq\u201d", True)),
        (b"\x81\x8d", ("\x81\x8d", True)),  # undefined in cp1252: Latin-1 maps every byte
    ],
)
def test_decode_git_text(raw, expected):
    assert decode_git_text(raw) == expected


@settings(max_examples=300)
@given(st.binary())
def test_decode_git_text_never_fails(raw):
    text, lossy = decode_git_text(raw)

    assert isinstance(text, str)
    assert lossy is (text.encode() != raw)


@settings(max_examples=300)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=64))
def test_random_bytes_raise_only_git_log_parse_error(raw, chunk_size):
    with contextlib.suppress(GitLogParseError):
        for record in iter_log_records(io.BytesIO(raw), chunk_size):
            assert isinstance(record, LogRecord)


@settings(max_examples=300)
@given(data=st.data())
def test_mutated_real_log_output_raises_only_git_log_parse_error(log_bytes, data):
    raw = bytearray(log_bytes)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(raw)))
        end = data.draw(st.integers(min_value=at, max_value=min(len(raw), at + 50)))
        raw[at:end] = data.draw(st.binary(max_size=8) | st.sampled_from([b"\0", b"\0\0", b""]))
    chunk_size = data.draw(st.integers(min_value=1, max_value=100))

    with contextlib.suppress(GitLogParseError):
        for record in iter_log_records(io.BytesIO(bytes(raw)), chunk_size):
            assert len(record.sha) == 40


field_bytes = st.binary(max_size=30).map(lambda b: b.replace(b"\0", b""))
shas = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
timestamps = st.integers(min_value=0, max_value=4_102_444_800)  # up to 2100
log_entries = st.tuples(
    shas,
    st.lists(shas, max_size=3),
    field_bytes,
    field_bytes,
    timestamps,
    timestamps,
    st.binary(max_size=200).map(lambda b: b.replace(b"\0", b"")),
)


@settings(max_examples=200)
@given(st.lists(log_entries, max_size=8), st.integers(min_value=1, max_value=50))
def test_well_formed_streams_parse_exactly(entries, chunk_size):
    raw = b"".join(
        synthetic(
            sha.encode(),
            " ".join(parents).encode(),
            name,
            email,
            str(authored).encode(),
            str(committed).encode(),
            message,
        )
        for sha, parents, name, email, authored, committed, message in entries
    )

    parsed = list(iter_log_records(io.BytesIO(raw), chunk_size))

    assert [(r.sha, r.parents, r.message) for r in parsed] == [
        (sha, tuple(parents), decode_git_text(message)[0])
        for sha, parents, _name, _email, _a, _c, message in entries
    ]
    assert [r.author_time.timestamp() for r in parsed] == [e[4] for e in entries]
    assert [r.committer_time.timestamp() for r in parsed] == [e[5] for e in entries]
