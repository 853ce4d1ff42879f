"""No committed notebook carries saved widget state.

JupyterLab saves the state of every widget model into ``metadata.widgets`` (ipywidgets 8's model versions). The
classic Notebook and Colab run ipywidgets 7, which cannot read that state: opening such a notebook there logged
14 errors (issue 30). A live kernel makes the widgets anew, so the saved state serves nobody; a saved sampler
output shows its text/plain sentence instead (gptj_teach.show.widgets.NOT_RUNNING).
"""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))


def test_there_are_notebooks_to_check():
    assert len(NOTEBOOKS) >= 10, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_saved_widget_state(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    holders = ["the notebook"] * ("widgets" in notebook.get("metadata", {})) + [
        f"cell {i}" for i, cell in enumerate(notebook["cells"]) if "widgets" in cell.get("metadata", {})
    ]
    assert not holders, (
        f"{path.name}: {', '.join(holders)} carry saved widget state (metadata.widgets), which "
        "ipywidgets 7 (Colab, the classic Notebook) cannot read: pop it from the JSON and save"
    )
