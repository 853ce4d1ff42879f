"""How long nbgrader takes to grade one notebook of one student, for each graded notebook (issue 28: <= 15 s on 2
idle cores).

For each notebook: a temporary course with this repository's nbgrader_config.py and that notebook alone,
`nbgrader generate_assignment`, then four submissions (twice the teacher edition: every answer right; twice the
untouched student edition: every stub in place) graded by one `nbgrader autograde` call, timed, as a teacher
grades a class (one call per core). Seconds per notebook per submission = that time / 4: it includes a quarter of
nbgrader's own start (~4 s a call), which a call over a whole class shares among more students. The floor under
every figure: a fresh Python importing torch, transformers and gptj_teach, which every graded notebook's kernel
pays (measured here too).

    python benchmarks/grading_time.py                      # every notebook with graded cells
    python benchmarks/grading_time.py 02_rotary 06_sampling

Kernels run with OMP_NUM_THREADS=1 (one core each: a teacher grades two students at once on 2 cores).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "gptj"


def graded(path: Path) -> bool:
    cells = json.loads(path.read_text())["cells"]
    return any(c["metadata"].get("nbgrader", {}).get("grade") for c in cells)


def nbgrader(course: Path, *args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"nbgrader {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def seconds_per_submission(notebook: Path, tmp: Path) -> float:
    """Autograde the teacher and the untouched student edition of one notebook, twice each; seconds per submission."""
    course = tmp / notebook.stem
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copy(notebook, course / "source" / ASSIGNMENT)
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    submissions = {"teacher": "source", "blank": "release", "teacher2": "source", "blank2": "release"}
    for student, folder in submissions.items():
        shutil.copytree(course / folder / ASSIGNMENT, course / "submitted" / student / ASSIGNMENT)
    start = time.perf_counter()
    nbgrader(course, "autograde", ASSIGNMENT)
    return (time.perf_counter() - start) / len(submissions)


def import_floor() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, gptj_teach"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="names such as 02_rotary (default: every graded notebook)")
    args = parser.parse_args()
    paths = [ROOT / "notebooks" / f"{name.removesuffix('.ipynb')}.ipynb" for name in args.notebooks] or [
        p for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if graded(p)
    ]
    load = os.getloadavg()[0]
    print(f"load average at the start: {load:.2f} on {os.cpu_count()} cores")
    print(f"floor: a fresh Python importing torch, transformers, gptj_teach: {import_floor():.1f} s")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            times[path.stem] = seconds_per_submission(path, Path(tmp))
            print(f"{path.stem:>28}: {times[path.stem]:5.1f} s per submission", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    worst = max(times, key=times.get)
    print(
        f"mean {sum(times.values()) / len(times):.1f} s, slowest {worst} {times[worst]:.1f} s; "
        f"30 students x these {len(times)} notebooks: {30 * sum(times.values()) / 60:.0f} min on one core, "
        f"{30 * sum(times.values()) / 120:.0f} min with one autograde call per core (half the class each)"
    )


if __name__ == "__main__":
    main()
