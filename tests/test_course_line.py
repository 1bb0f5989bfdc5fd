"""Every lesson notebook carries the course line (learner time, solutions, glossary) generated from the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course_line  # noqa: E402  (the tool lives outside the package)


def test_notebooks_carry_the_readme_course_line():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "course_line.py"), "--check"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr + "\nrun: python tools/course_line.py"


def test_every_lesson_has_a_learner_time_and_a_solutions_notebook():
    times = course_line.learner_times((ROOT / "README.md").read_text(encoding="utf-8"))
    lessons = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(times) == lessons
    for name in lessons:
        assert (ROOT / "notebooks" / "solutions" / f"{name}_solutions.ipynb").exists(), name


def test_the_line_is_replaced_not_repeated():
    block = course_line.course_line("05_lxr", 30)
    once = course_line.with_line("# Title\n\nText.", block)
    assert course_line.with_line(once, course_line.course_line("05_lxr", 35)).count(course_line.START) == 1
    assert "about 35 minutes" in course_line.with_line(once, course_line.course_line("05_lxr", 35))
