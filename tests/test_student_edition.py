"""The student edition, made by nbgrader in a temporary course directory as a teacher would make it.

Static checks on every notebook (fast): no solution text remains, every "your turn" cell raises the friendly
NotImplementedError, outputs are cleared, and `gptj-teach student` (no course directory) writes the same cells.
Autograding (slow: nbgrader executes the notebooks) on a subset: the teacher edition as a submission scores full
marks, the untouched student edition scores zero on every graded cell.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gptj_teach.classroom import student

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ASSIGNMENT = "gptj"
AUTOGRADED = ["01_tokenizer.ipynb"]  # the quickest to execute (3 graded cells); the static tests cover all


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run nbgrader in the course directory (its nbgrader_config.py applies); fail with its output."""
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, capture_output=True,
                          text=True, timeout=900, env=env)  # nbgrader runs `alembic` from the venv's bin/
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def make_course(root: Path, notebooks) -> Path:
    """A course directory: the repository's nbgrader_config.py and source/<assignment>/ with the notebooks."""
    course = root / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for path in notebooks:
        shutil.copy(path, course / "source" / ASSIGNMENT)
    return course


def cells(nb, kind: str):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get(kind)]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """(course, {name: student notebook}) for every notebook, from `nbgrader generate_assignment`."""
    course = make_course(tmp_path_factory.mktemp("all"), NOTEBOOKS)
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    release = course / "release" / ASSIGNMENT
    return course, {p.name: nbformat.read(release / p.name, as_version=4) for p in NOTEBOOKS}


COMPONENT_NOTEBOOKS = {"01", "02", "03", "04", "05", "05b", "06", "07", "10", "11", "12"}  # by number


def test_component_notebooks_have_three_your_turn_cells_each():
    """01-07 build the model (05 in two notebooks, 05 and 05b, each with its own three); 10 looks inside it, 11 and
    12 train it (11b, one training run, is watched). A listed notebook that is missing (renamed, say) fails."""
    seen = set()
    for path in NOTEBOOKS:
        number = path.name.split("_")[0]
        if number in COMPONENT_NOTEBOOKS:
            seen.add(number)
            nb = nbformat.read(path, as_version=4)
            assert len(cells(nb, "solution")) >= 3 and len(cells(nb, "grade")) >= 3, path.name
            for cell in cells(nb, "grade"):
                assert cell.source.startswith("assert gt.classroom.exercises.check_") or "assert gt.classroom.exercises.check_" in cell.source
    assert seen == COMPONENT_NOTEBOOKS, sorted(COMPONENT_NOTEBOOKS - seen)  # a renamed notebook is not skipped


def test_the_student_edition_has_no_solutions_and_no_outputs(released):
    _, editions = released
    for path in NOTEBOOKS:
        teacher, pupil = nbformat.read(path, as_version=4), editions[path.name]
        assert len(pupil.cells) == len(teacher.cells), path.name
        for cell in pupil.cells:
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source, path.name
            assert cell.cell_type != "code" or (cell.outputs == [] and cell.execution_count is None), path.name
        for mine, theirs in zip(cells(teacher, "solution"), cells(pupil, "solution")):
            solution = mine.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            for line in filter(str.strip, solution.splitlines()):
                assert line not in theirs.source.splitlines(), (path.name, line)  # not one line of it is left
            assert 'raise NotImplementedError("Your turn:' in theirs.source, theirs.source


def test_every_your_turn_cell_raises_the_friendly_message(released):
    """The stub's raise stands in the body of the cell or of the function the cell defines (so running the cell, or
    calling the function, reaches it), and what it raises is the friendly message. (The autograde test below shows
    a check printing it.)"""
    _, editions = released
    for name, nb in editions.items():
        for cell in cells(nb, "solution"):
            tree = ast.parse(cell.source)  # a class's methods count as functions (notebook 12's LoRA layer)
            functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
            raises = [stmt for body in [tree.body] + [f.body for f in functions] for stmt in body
                      if isinstance(stmt, ast.Raise)]
            assert len(raises) == cell.source.count("# YOUR CODE HERE") >= 1, (name, cell.source)
            for stub in raises:
                with pytest.raises(NotImplementedError) as raised:
                    exec(compile(ast.Module([stub], []), name, "exec"), {})  # noqa: S102 (the stub alone)
                assert str(raised.value).startswith(student.YOUR_TURN) and "your code" in str(raised.value)


def test_make_student_writes_what_nbgrader_releases(released, tmp_path):
    _, editions = released
    done = subprocess.run([sys.executable, "-m", "gptj_teach", "student", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == sorted(editions)
    for name, nb in editions.items():
        ours = nbformat.read(tmp_path / name, as_version=4)
        assert [c.source for c in ours.cells] == [c.source for c in nb.cells], name
        assert all(c.get("outputs", []) == [] for c in ours.cells), name


def scores(course: Path, student_id: str) -> dict:
    """{grade_id: (score, max_score)} of the graded cells of one student's autograded submission."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student_id)
        return {grade.name: (grade.score, grade.max_score) for notebook in submission.notebooks
                for grade in notebook.grades}


def test_autograde_gives_the_teacher_full_marks_and_the_blank_student_edition_zero(tmp_path):
    course = make_course(tmp_path, [ROOT / "notebooks" / name for name in AUTOGRADED])
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    for student_id, folder in [("teacher", course / "source" / ASSIGNMENT), ("blank", course / "release" / ASSIGNMENT)]:
        submitted = course / "submitted" / student_id / ASSIGNMENT
        shutil.copytree(folder, submitted)
        nbgrader(course, "autograde", ASSIGNMENT, "--student", student_id)
    teacher, blank = scores(course, "teacher"), scores(course, "blank")
    assert teacher and set(teacher) == set(blank)
    assert all(score == maximum == 1 for score, maximum in teacher.values()), teacher
    assert all(score == 0 for score, _ in blank.values()), blank
    graded = nbformat.read(course / "autograded" / "blank" / ASSIGNMENT / AUTOGRADED[0], as_version=4)
    shown = "".join(o.get("text", "") for c in cells(graded, "grade") for o in c.outputs)
    assert "not written yet (Your turn:" in shown, shown  # what the check prints to a student who has not started
