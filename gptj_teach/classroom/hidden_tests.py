"""Write (or refresh) nbgrader's hidden tests in every graded cell of a notebook: ``honest.verify`` on its answer.

A notebook author writes a your-turn exercise as two cells, as before: the solution cell (nbgrader "solution",
the answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) that defines ``my_x``, and the locked graded
cell (nbgrader "grade", 1 point) whose visible line is ``assert gt.classroom.exercises.check_x(my_x)``. Then:

    python -m gptj_teach.classroom.hidden_tests notebooks/NN_name.ipynb [more.ipynb ...]      # or: make hidden-tests
    python -m gptj_teach.classroom.hidden_tests --check notebooks/*.ipynb   # exit 1 when a notebook is out of date

gives the visible assert a message (not an empty AssertionError under the check's verdict) and appends to each
graded cell (replacing the block it wrote before, so it can run again after any edit)

    ### BEGIN HIDDEN TESTS
    assert gt.classroom.honest.verify("check_x", my_x)
    ### END HIDDEN TESTS

nbgrader removes the block from the student edition and puts it back when it grades (see ``honest`` for what it
refuses). If the package's answer to the new exercise is a function, add it to ``honest.REFERENCES`` so that a
function delegating to it is refused too.

When the answer is a function (``def my_x``) and ``honest.FALLBACKS`` names the package's answer for its check,
the tool also ends the solution cell (after ``### END SOLUTION``, so the student edition keeps it) with

    # unfilled: later cells use the package's answer, with a note (the check grades yours)
    my_x = gt.classroom.fallback(my_x, <the package's answer>)

so that in an unfilled notebook the check says "not written yet" once and the later cells that call ``my_x`` still
run (printing one note), instead of a cascade of errors. The checks and the hidden tests grade ``my_x.yours``.

The answer's name comes from the graded cell's check call; it must be a name the solution cell just above defines
(else the tool stops and says so). The cell's outputs are left alone (the block prints nothing when all is well):
re-execute the notebook only if you want fresh execution counts.
"""

import argparse
import ast
import json
import re
import sys
from pathlib import Path

BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BLOCK = re.compile(rf"\n*{re.escape(BEGIN)}.*?{re.escape(END)}\n?", re.S)
FALLBACK_NOTE = "# unfilled: later cells use the package's answer, with a note (the check grades yours)"
FALLBACK_LINE = re.compile(rf"\n*(^{re.escape(FALLBACK_NOTE)}\n)?^\w+ = gt\.classroom\.fallback\(.*$", re.M)


def _checked(source: str) -> tuple[str, str] | None:
    """(check name, answer expression) of the graded cell's ``gt.classroom.exercises.check_x(answer)`` call."""
    for node in ast.walk(ast.parse(BLOCK.sub("", source))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("check_")
            and ast.unparse(node.func.value) == "gt.classroom.exercises"
            and len(node.args) == 1
        ):
            return node.func.attr, ast.unparse(node.args[0])
    return None


ASSERT_MESSAGE = '"not yet: see the line above"'  # instead of an empty AssertionError under the check's ❌ line


def _with_message(source: str) -> str:
    """The graded cell with a message on its check's bare ``assert`` (one line long: the check says why)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert) and node.msg is None and _checked(ast.unparse(node.test)):
            lines = source.splitlines(keepends=True)
            line = lines[node.end_lineno - 1]
            lines[node.end_lineno - 1] = (
                line[: node.end_col_offset] + ", " + ASSERT_MESSAGE + line[node.end_col_offset :]
            )
            return "".join(lines)
    return source


def _top_level(source: str) -> list:
    """The top-level statements of a cell's code, its magics (``%`` and ``!`` lines) left out."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return ast.parse("\n".join(lines)).body


def _functions(source: str) -> set[str]:
    """The functions and classes a solution cell defines at top level (what ``fallback`` can stand in for)."""
    return {node.name for node in _top_level(source) if isinstance(node, ast.FunctionDef | ast.ClassDef)}


def _defined(source: str) -> set[str]:
    """The names a solution cell binds at top level (functions, assignments)."""
    names = set()
    for node in _top_level(source):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        for target in getattr(node, "targets", [getattr(node, "target", None)]):
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)} if target else set()
    return names


def hidden_block(check: str, answer: str) -> str:
    """The hidden block of the graded cell of ``check`` (a name) grading ``answer`` (an expression)."""
    return f'{BEGIN}\nassert gt.classroom.honest.verify("{check}", {answer})\n{END}'


def fallback_line(answer: str, check: str) -> str:
    """The two lines that end the solution cell of ``answer``, a function graded by ``check``."""
    from .honest import FALLBACKS

    return f"{FALLBACK_NOTE}\n{answer} = gt.classroom.fallback({answer}, {FALLBACKS[check]})"


def refresh(nb: dict, path: str = "notebook") -> int:
    """Write the hidden block into every graded cell of ``nb`` (a notebook's JSON), and the fallback line into the
    solution cell above it where there is one to write; returns how many cells changed."""
    from .honest import FALLBACKS

    changed, solution, solution_cell = 0, None, None
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        source = "".join(cell["source"])
        if meta.get("solution") and cell["cell_type"] == "code":
            solution, solution_cell = FALLBACK_LINE.sub("", source), cell
        if not meta.get("grade") or cell["cell_type"] != "code" or (checked := _checked(source)) is None:
            continue
        check, answer = checked
        root = answer.split(".")[0].split("(")[0]
        if solution is None or root not in _defined(solution):
            raise SystemExit(
                f"{path}: the graded cell of {check} grades {answer!r}, which the solution cell above does not define"
            )
        new = _with_message(BLOCK.sub("", source)).rstrip("\n") + "\n" + hidden_block(check, answer)
        if answer in _functions(solution) and check in FALLBACKS:
            changed += _set_source(solution_cell, solution.rstrip("\n") + "\n\n" + fallback_line(answer, check))
        changed += _set_source(cell, new)
    return changed


def _set_source(cell: dict, source: str) -> int:
    """1 if the cell's source changed to ``source``, else 0."""
    if source == "".join(cell["source"]):
        return 0
    cell["source"] = source.splitlines(keepends=True)
    return 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gptj_teach.classroom.hidden_tests", description=__doc__.split("\n")[0]
    )
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in args.notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if refresh(nb, str(path)) and args.check:
            stale.append(path)
        elif not args.check:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for path in stale:
        print(f"{path}: hidden tests out of date: run python -m gptj_teach.classroom.hidden_tests {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
