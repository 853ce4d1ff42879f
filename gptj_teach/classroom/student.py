"""The student edition: the notebooks without their solutions, made by nbgrader's own preprocessors.

The committed notebooks are the teacher edition. A "your turn" cell is an nbgrader solution cell (its answer
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``), followed by a locked, graded cell that asserts a
``gt.classroom.exercises`` check. ``build`` runs the preprocessors of ``nbgrader generate_assignment`` (lock the cells,
replace each solution by ``CODE_STUB``, clear the outputs, checksums) without a course directory or a
gradebook, for teachers who only want the files; ``nbgrader_config.py`` at the repository root gives nbgrader
itself the same settings, for teachers who grade with it. A notebook with no nbgrader cells is copied with its
outputs cleared.

    gptj-teach student [--source notebooks] [--out student]        # or: make student

References: nbgrader's generate_assignment (nbgrader.converters.GenerateAssignment.preprocessors).
"""

from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

CODE_STUB = ('# YOUR CODE HERE\nraise NotImplementedError("Your turn: replace these two lines with your code, '
             'then run the check cell below")')
TEXT_STUB = "YOUR ANSWER HERE"
YOUR_TURN = "Your turn:"  # the start of the message a cleared solution raises


def nbgrader_settings(c) -> None:
    """Put the student edition's settings on an nbgrader config object (``c`` in nbgrader_config.py)."""
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ClearSolutions.text_stub = TEXT_STUB
    c.ClearSolutions.enforce_metadata = True  # solution markers outside a solution cell are an error
    c.ClearOutput.enabled = True


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of one notebook (a copy; ``nb`` is left as it is)."""
    nb = nbformat.from_dict(nb)  # a deep copy
    resources = {}
    steps = [LockCells(), ClearSolutions(code_stub={"python": CODE_STUB}, text_stub=TEXT_STUB),
             ClearOutput(), CheckCellMetadata(), ComputeChecksums(), ClearHiddenTests(), ClearMarkScheme(),
             ComputeChecksums(), CheckCellMetadata()]  # generate_assignment's order, less the gradebook
    for step in steps:
        nb, resources = step.preprocess(nb, resources)
    for cell in nb.cells:  # execution times of the teacher's run
        cell.metadata.pop("execution", None)
    return nb


def build(source: str | Path = "notebooks", out: str | Path = "student") -> list[Path]:
    """Write the student edition of every notebook in ``source`` to ``out``; returns the files written."""
    source, out = Path(source), Path(out)
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {source}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = student_notebook(nbformat.read(path, as_version=4))
        target = out / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written
