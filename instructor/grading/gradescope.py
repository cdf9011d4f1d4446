"""`labs grade --gradescope DIR`: the autograder bundle to upload to Gradescope.

DIR receives

    setup.sh           installs Python, a venv with the labs' dependencies, and a `student` user
    run_autograder     grades /autograder/submission into /autograder/results/results.json
    requirements.txt   the dependencies, read from the framework's setup.cfg
    rubric.json        the rubric in force
    framework/         the pristine framework: the student handout
    grader/            the grader: instructor/grading/, instructor/handout.py (which names the
                       student files), the default rubric and labs/console.py; the handout
                       leaves the instructor package out
    autograder.zip     all of the above, ready to upload

Gradescope unpacks the zip into /autograder/source, runs setup.sh once when it builds the
image, and run_autograder for every submission. The tests run as the unprivileged `student`
user, so they cannot touch the grader, its results or its plugin.
"""

from __future__ import annotations

import configparser
import json
import shlex
import shutil
import zipfile
from pathlib import Path

from instructor.grading.grader import SKIP_WHEN_COPYING
from instructor.grading.rubric import Rubric

__all__ = ["write_bundle"]

SOURCE = "/autograder/source"
REPO_ROOT = Path(__file__).resolve().parents[2]
# What the grader needs of this repository (standard library and rich otherwise): the
# instructor package's grader, handout generator and rubric, and the labs package's console.
GRADER_FILES = ("instructor/__init__.py", "instructor/handout.py", "instructor/rubric.json",
                "instructor/grading", "labs/__init__.py", "labs/console.py")

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, while building the autograder image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip git
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --no-cache-dir -r {source}/requirements.txt
# The tests run as this user: it cannot read the results or signal the grader.
id -u student >/dev/null 2>&1 || adduser --disabled-password --gecos "" student
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this, as root, for every submission. It always leaves a results.json.
set -uo pipefail
results=/autograder/results
mkdir -p "$results"
chmod 700 "$results" {source}
cd {source}/grader
/autograder/venv/bin/python -m instructor.grading /autograder/submission \\
    --framework {source}/framework --rubric {source}/rubric.json \\
    -o "$results" --user student {options}
status=$?
if [ ! -s "$results/results.json" ]; then
    why="The autograder failed before it could grade (exit status $status)"
    printf '{{"score": 0, "output": "%s; course staff can see its output."}}\n' "$why" \\
        > "$results/results.json"
fi
exit 0
"""


def _requirements(framework: Path) -> list[str]:
    config = configparser.ConfigParser()
    config.read(framework / "setup.cfg")
    raw = config.get("options", "install_requires", fallback="")
    return [line.strip() for line in raw.splitlines() if line.strip()]


def write_bundle(out_dir: Path, rubric: Rubric, framework: Path, grade_options: list[str]) -> Path:
    """Write the bundle into `out_dir` (new or empty) from the pristine `framework` tree;
    `grade_options` are extra `labs grade` arguments baked into run_autograder. Returns the
    zip's path."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(framework, out_dir / "framework", ignore=SKIP_WHEN_COPYING)
    grader = out_dir / "grader"
    for relative in GRADER_FILES:
        source = REPO_ROOT / relative
        if source.is_dir():
            shutil.copytree(source, grader / relative, ignore=SKIP_WHEN_COPYING)
        else:
            (grader / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, grader / relative)
    (out_dir / "rubric.json").write_text(json.dumps(rubric.data, indent=2) + "\n")
    requirements = _requirements(framework)
    (out_dir / "requirements.txt").write_text("\n".join(requirements) + "\n")
    options = " ".join(shlex.quote(o) for o in grade_options)
    for name, text in (("setup.sh", SETUP_SH.format(source=SOURCE)),
                       ("run_autograder", RUN_AUTOGRADER.format(source=SOURCE, options=options))):
        path = out_dir / name
        path.write_text(text)
        path.chmod(0o755)
    archive = out_dir / "autograder.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(out_dir.rglob("*")):
            if path == archive or path.is_dir():
                continue
            info = zipfile.ZipInfo.from_file(path, path.relative_to(out_dir).as_posix())
            with open(path, "rb") as f:
                zf.writestr(info, f.read(), zipfile.ZIP_DEFLATED)
    return archive
