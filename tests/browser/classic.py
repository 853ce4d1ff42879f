"""Driving the classic Notebook (6.5, what Colab's frontend is modelled on) from a Playwright page.

The classic Notebook's page has the global ``Jupyter``: ``Jupyter.notebook`` is the open notebook, with
``clear_all_output()`` and ``execute_all_cells()`` (the menu items Cell > All Output > Clear and Cell > Run All),
and each code cell's ``input_prompt_number`` is ``"*"`` while it runs and its execution count once it has run.
"""

import os
import secrets
import shutil
import sys
from contextlib import contextmanager

from .conftest import ROOT, free_port, serving

CODE_CELLS = "Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code')"
READY = """() => !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook._fully_loaded && Jupyter.notebook.kernel
    && Jupyter.notebook.kernel.is_connected() && Jupyter.notebook.kernel_busy === false)"""
ERRORS = f"""() => {CODE_CELLS}.flatMap(c => c.output_area.outputs
    .filter(o => o.output_type === "error").map(o => o.ename + ": " + o.evalue))"""
DONE = f"""() => ({ERRORS})().length > 0 || (Jupyter.notebook.kernel_busy === false
    && {CODE_CELLS}.every(c => typeof c.input_prompt_number === "number"))"""


@contextmanager
def classic_server(tmp):
    """A classic Notebook server on 127.0.0.1 over a copy of notebooks/; yields a dict with url, token, root."""
    root = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
    )  # the venv's own nbconfig (widgetsnbextension enabled) still holds
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "notebook",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--NotebookApp.token={token}",
        f"--NotebookApp.notebook_dir={root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    with serving(command, env, port, token, tmp / "notebook.log") as url:
        yield {"url": url, "token": token, "root": root}


def open_notebook(page, server: dict, name: str) -> None:
    """Open notebooks/<name> (the server's copy) and wait until its kernel is connected and idle."""
    page.goto(f"{server['url']}/notebooks/{name}?token={server['token']}")
    page.wait_for_function(READY, timeout=90_000)


def run_all_cells(page, timeout_s: float = 240) -> None:
    """Clear every output, run all cells, and wait until each code cell has run; fail on a Python error."""
    page.evaluate("Jupyter.notebook.clear_all_output()")
    page.evaluate(f"{CODE_CELLS}.forEach(c => c.set_input_prompt(null))")  # no count left from the saved file
    page.evaluate("Jupyter.notebook.execute_all_cells()")
    page.wait_for_function(DONE, timeout=timeout_s * 1000, polling=500)
    errors = page.evaluate(ERRORS)
    assert not errors, f"the notebook raised: {errors}"
