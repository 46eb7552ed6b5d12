"""The project stands on its own: nothing it runs or tests reads outside its root."""

import re
import subprocess
from pathlib import Path

from tests.helpers import SAMPLES

ROOT = Path(__file__).resolve().parents[1]
# A path out of the root into the team's sibling folder of reference data ("shared"): the
# relative path up into it, or Path(...).parents[N] / "shared" as the tests once did.
SIBLING = "shared"
OUTSIDE = re.compile(rf"""\.\./{SIBLING}\b|/ *["']{SIBLING}["']|parents\[\d\]\.parent\b""")


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in out.split("\0") if name]


def test_no_code_or_script_reaches_outside_the_root():
    offenders = []
    for path in tracked_files():
        if path.suffix not in {".py", ".sh", ""} or not path.is_file():
            continue
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_sample_says_where_it_came_from():
    samples = [p for p in SAMPLES.iterdir() if not p.name.endswith((".source.txt", ".md"))]
    assert samples, f"no samples in {SAMPLES}"
    missing = [p.name for p in samples if not p.with_name(p.name + ".source.txt").is_file()]
    assert missing == []
