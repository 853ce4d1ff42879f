"""A graded lab end to end, as a teacher runs it: nbgrader generate_assignment, autograde and export in a temporary
course, on notebooks 02 and 06, for four submissions: the teacher edition (full marks), the untouched student
edition (0), typical mistakes (some marks), and answers that are the package's own functions (0: nbgrader's hidden
tests, gptj_teach.classroom.honest, refuse them although the visible checks pass).

One autograde call grades the four (slow: nbgrader executes 8 notebooks); the time per notebook per submission is
printed (-s to see it), for the README's note on grading times.
"""

import csv
import json
import re
import shutil
import time
from pathlib import Path

from test_student_edition import ASSIGNMENT, ROOT, make_course, nbgrader

NOTEBOOKS = ["02_rotary.ipynb", "06_sampling.ipynb"]
# the package's own answers, passed off as the learner's (the visible checks pass them)
PACKAGE = {
    "nb02_inv_frequencies": "my_inv_frequencies = gt.gptj.rotary.inv_frequencies",
    "nb02_rotate_every_two": "my_rotate_every_two = lambda x: gt.gptj.rotary.rotate_every_two(x)",
    "nb02_apply_rotary_pos_emb": "from gptj_teach.gptj.rotary import apply_rotary_pos_emb as my_apply_rotary_pos_emb",
    "nb06_top_k": "top_k_by_hand = gt.generation.sampling.top_k_filter",
    "nb06_top_p": "top_p_by_hand = gt.generation.sampling.top_p_filter",
    "nb06_pipeline": "def logits_to_probs_by_hand(logits, t, k, p):\n"
    "    return gt.generation.sampling.logits_to_probs(logits, t, k, p)",
}
# the usual mistakes: Llama's half-split rotary (02; apply_rotary, built on it, fails too) and a top-p that
# keeps too few tokens (06; the pipeline, built on it, fails too): 1 of 3 in each notebook
MISTAKES = {
    "nb02_rotate_every_two": "def my_rotate_every_two(x):\n    half = x.shape[-1] // 2\n"
    "    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)",
    "nb06_top_p": "def top_p_by_hand(logits, p):\n"
    "    sorted_logits, order = torch.sort(logits, descending=True)\n"
    "    drop = torch.cumsum(torch.softmax(sorted_logits, -1), -1) > p\n"
    "    return logits.masked_fill(drop.scatter(-1, order, drop), float('-inf'))",
}


def submission(folder: Path, answers: dict) -> None:
    """Replace the source of the solution cells named in ``answers`` (grade_id -> code) in the notebooks of folder."""
    for path in folder.glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell["source"] = answers[grade_id]
        path.write_text(json.dumps(nb, indent=1))


def test_generate_autograde_export_four_submissions(tmp_path):
    course = make_course(tmp_path, [ROOT / "notebooks" / name for name in NOTEBOOKS])
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    release = course / "release" / ASSIGNMENT
    assert not any("widgets" in json.loads(p.read_text())["metadata"] for p in release.glob("*.ipynb"))
    teacher = course / "source" / ASSIGNMENT
    folders = {"teacher": teacher, "blank": release, "mistakes": teacher, "package": teacher}
    for student_id, folder in folders.items():
        shutil.copytree(folder, course / "submitted" / student_id / ASSIGNMENT)
    submission(course / "submitted" / "mistakes" / ASSIGNMENT, MISTAKES)
    submission(course / "submitted" / "package" / ASSIGNMENT, PACKAGE)
    start = time.perf_counter()
    nbgrader(course, "autograde", ASSIGNMENT)
    seconds = time.perf_counter() - start
    print(f"autograde: {seconds / len(folders) / len(NOTEBOOKS):.1f} s per notebook per submission")
    nbgrader(course, "export", "--to", str(course / "grades.csv"), force=False)
    with open(course / "grades.csv") as file:
        scores = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(file)}
    assert scores["teacher"] == (6, 6), scores
    assert scores["blank"] == (0, 6) and scores["package"] == (0, 6), scores
    assert scores["mistakes"] == (2, 6), scores
    graded = (course / "autograded" / "blank" / ASSIGNMENT / NOTEBOOKS[0]).read_text()
    assert "not written yet (Your turn:" in graded  # what the check prints to a student who has not started
    for name in NOTEBOOKS:  # an unfilled notebook runs to its end: its stubs and their checks fail, nothing else
        nb = json.loads((course / "autograded" / "blank" / ASSIGNMENT / name).read_text())
        errors = [o["ename"] for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert errors and set(errors) <= {"NotImplementedError", "AssertionError"}, (name, errors)
    refused = (course / "autograded" / "package" / ASSIGNMENT / NOTEBOOKS[0]).read_text()
    assert re.search(r"not a function of this notebook|runs the package's own answer", refused)
    assert "skipped while grading" in (course / "autograded" / "teacher" / ASSIGNMENT / NOTEBOOKS[1]).read_text()
