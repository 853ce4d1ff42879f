"""The student edition: the notebooks without their solutions, made by nbgrader's own preprocessors.

The committed notebooks are the teacher edition. A "your turn" cell is an nbgrader solution cell (its answer
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``), followed by a locked, graded cell that asserts a
``gt.classroom.exercises`` check. ``build`` runs the preprocessors of ``nbgrader generate_assignment`` (lock the cells,
replace each solution by ``CODE_STUB``, clear the outputs, checksums) without a course directory or a
gradebook, for teachers who only want the files; ``nbgrader_config.py`` at the repository root gives nbgrader
itself the same settings, for teachers who grade with it. A notebook with no nbgrader cells is copied with its
outputs cleared.

    gptj-teach student [--source notebooks] [--out student]        # or: make student

Grading: ``nbgrader_settings`` also sets ``GPTJ_TEACH_GRADING=1`` for the kernels nbgrader starts (read by
``gt.classroom.grading_mode()``), a cell timeout of ``CELL_TIMEOUT`` s, and an executor that skips the cells
tagged ``skip-when-grading`` (slow demos that grade nothing), so one notebook grades in seconds.

References: nbgrader's generate_assignment (nbgrader.converters.GenerateAssignment.preprocessors).
"""

import os
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    Execute,
    LockCells,
    NbGraderPreprocessor,
)

from ..errors import GPTJTeachError
from . import GRADING_ENV, YOUR_TURN

CODE_STUB = (
    f'# YOUR CODE HERE\nraise NotImplementedError("{YOUR_TURN} replace these two lines with your code, '
    'then run the check cell below")'
)
TEXT_STUB = "YOUR ANSWER HERE"
SKIP_TAG = "skip-when-grading"  # a cell tag: nbgrader's autograde does not run the cell (never a graded cell)
CELL_TIMEOUT = 300  # s: 00-09's slowest cells take ~30 s on 2 busy cores, 12's training ~150 s; a timeout zeroes a
# whole submission (nbgrader's default is 30 s)


class StripWidgetState(NbGraderPreprocessor):
    """Remove the teacher's saved widget state (``metadata.widgets``: every slider's model, 35 KB in 06)."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        return nb, resources


class ExecuteForGrading(Execute):
    """nbgrader's Execute, less the cells tagged ``skip-when-grading``: they get one line of output instead."""

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata
        if SKIP_TAG in meta.get("tags", []) and not meta.get("nbgrader", {}).get("grade"):
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="(skipped while grading)\n")]
            return cell, resources
        return super().preprocess_cell(cell, resources, index)


def nbgrader_settings(c) -> None:
    """Put the course's settings on an nbgrader config object (``c`` in nbgrader_config.py): the student edition's
    stubs, no widget state, and for grading a longer timeout, grading mode, and the skipped demo cells."""
    from nbgrader.converters import Autograde, GenerateAssignment

    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = TEXT_STUB
    c.ClearSolutions.enforce_metadata = True  # solution markers outside a solution cell are an error
    c.ClearOutput.enabled = True
    release_steps = GenerateAssignment.class_traits()["preprocessors"].default()
    c.GenerateAssignment.preprocessors = [*release_steps, StripWidgetState]
    c.Autograde.autograde_preprocessors = [
        ExecuteForGrading if step is Execute else step
        for step in Autograde.class_traits()["autograde_preprocessors"].default()
    ]
    c.Execute.timeout = CELL_TIMEOUT
    c.Execute.shutdown_kernel = "immediate"  # the outputs are in: a graceful shutdown waited ~1.5 s a submission
    os.environ[GRADING_ENV] = "1"  # the kernels nbgrader starts inherit this process's environment


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of one notebook (a copy; ``nb`` is left as it is)."""
    nb = nbformat.from_dict(nb)  # a deep copy
    resources = {}
    steps = [
        LockCells(),
        ClearSolutions(code_stub={"python": CODE_STUB}, text_stub=TEXT_STUB),
        ClearOutput(),
        CheckCellMetadata(),
        ComputeChecksums(),
        ClearHiddenTests(),
        ClearMarkScheme(),
        ComputeChecksums(),
        CheckCellMetadata(),
    ]  # generate_assignment's order, less the gradebook
    for step in steps:
        nb, resources = step.preprocess(nb, resources)
    for cell in nb.cells:  # execution times of the teacher's run
        cell.metadata.pop("execution", None)
    nb, _ = StripWidgetState().preprocess(nb, resources)
    return nb


def _folders(source: Path, out: Path) -> tuple[Path, list[Path]]:
    """(out, the notebooks of source) after refusing what cannot work, each refusal in one line (GPTJTeachError)."""
    if not source.is_dir():
        raise GPTJTeachError(f"--source {source} is not a folder of notebooks")
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise GPTJTeachError(f"no notebooks (*.ipynb) in {source}")
    real_source, real_out = source.resolve(), out.resolve()  # symbolic links followed
    if real_out == real_source or real_source in real_out.parents:
        raise GPTJTeachError(
            f"--out {out} is (or lies inside) --source {source}: the student edition would "
            "overwrite or mix with the teacher's notebooks; choose a folder outside it"
        )
    if out.exists() and not out.is_dir():
        raise GPTJTeachError(f"--out {out} is a file, not a folder: choose a folder")
    return out, notebooks


def build(source: str | Path = "notebooks", out: str | Path = "student") -> list[Path]:
    """Write the student edition of every notebook in ``source`` to ``out``; returns the files written.

    Raises GPTJTeachError (one line, what to do) for an ``out`` that is or lies inside ``source``, a file, a folder
    that cannot be written, and a notebook nbgrader refuses (a solution marker outside a solution cell)."""
    out, notebooks = _folders(Path(source), Path(out))
    written = []
    for path in notebooks:
        try:
            nb = student_notebook(nbformat.read(path, as_version=4))
        except Exception as error:  # nbgrader's refusal (a marker without metadata), or a file that is no notebook
            raise GPTJTeachError(f"{path}: {str(error).strip().splitlines()[-1] if str(error).strip() else error!r}")
        target = out / path.name
        try:
            out.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, target)
        except OSError as error:
            raise GPTJTeachError(f"cannot write {target}: {error.strerror or error}") from None
        written.append(target)
    return written
