"""Repository paths from registration: paths inside the repository pass, the rest is refused
with a sentence saying why."""

import pytest

from tracker.repopaths import MAX_LENGTH, UnsafeRepoPath, check_repo_path


@pytest.mark.parametrize(
    "path", ["chrome/VERSION", "CHROMIUM_VERSION", "build/.version", "a-b/c_d.e"]
)
def test_paths_inside_the_repository_pass(path):
    assert check_repo_path(path) == path


def test_a_folder_may_end_in_one_slash():
    assert check_repo_path("patches/", directory=True) == "patches/"
    with pytest.raises(UnsafeRepoPath, match="empty component"):
        check_repo_path("patches/")
    with pytest.raises(UnsafeRepoPath, match="empty component"):
        check_repo_path("patches//", directory=True)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../x", "leaves the repository through '..'"),
        ("patches/../../x", "leaves the repository through '..'"),
        ("..", "leaves the repository through '..'"),
        ("/etc/passwd", "is absolute"),
        ("-x", "starts with '-'"),
        ("--output=/tmp/x", "starts with '-'"),
        (":(top)x", "starts with ':'"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\\..\\b", "backslash"),
        ("a//b", "empty component"),
        ("./VERSION", "'.' component"),
        (" VERSION", "space"),
        ("x" * (MAX_LENGTH + 1), "longer than"),
        ("", "empty"),
    ],
)
def test_hostile_paths_are_refused_saying_why(path, problem):
    with pytest.raises(UnsafeRepoPath, match=problem.replace("(", r"\(").replace(".", r"\.")):
        check_repo_path(path)
    with pytest.raises(UnsafeRepoPath):
        check_repo_path(path, directory=True)
