"""Driving JupyterLab from a Playwright page: open a notebook, run all its cells, read what it drew.

The server runs with --expose-app-in-browser, so `window.jupyterapp` is the JupyterLab application: we use its
commands (the ones behind the menu items Run > Run All Cells and Edit > Clear Outputs of All Cells) and read
its notebook model to know when every cell has run.
"""

import ast
import uuid

import nbformat

NOTEBOOK = "window.jupyterapp.shell.currentWidget"
READY = f"""path => {{
  const nb = window.jupyterapp && {NOTEBOOK};
  const kernel = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
  return !!(kernel && kernel.status === "idle" && nb.context.path === path && nb.content.widgets.length > 0);
}}"""
CODE_CELLS = f"{NOTEBOOK}.content.widgets.filter(c => c.model.type === 'code')"
ERRORS = f"""() => {CODE_CELLS}.flatMap(c => c.model.outputs.toJSON()
    .filter(o => o.output_type === "error").map(o => o.ename + ": " + o.evalue))"""
DONE = f"""() => {{
  const cells = {CODE_CELLS};
  const kernel = {NOTEBOOK}.sessionContext.session.kernel;
  const errors = ({ERRORS})();
  return errors.length > 0 || (kernel.status === "idle" && cells.every(c => c.model.executionCount !== null));
}}"""


def open_notebook(page, lab: dict, name: str) -> None:
    """Open notebooks/<name> (the server's copy) alone, in a fresh workspace, and wait until its kernel is idle."""
    workspace = uuid.uuid4().hex  # a new workspace: no notebook of an earlier test is reopened beside it
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab['token']}")
    page.wait_for_function(READY, arg=name, timeout=90_000)


def run_all_cells(page, timeout_s: float = 180) -> None:
    """Clear every output, run all cells, and wait until each code cell has run; fail on a Python error."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(f"() => {CODE_CELLS}.every(c => c.model.executionCount === null)", timeout=10_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")  # not awaited: we poll instead
    page.wait_for_function(DONE, timeout=timeout_s * 1000, polling=500)
    errors = page.evaluate(ERRORS)
    assert not errors, f"the notebook raised: {errors}"


def bertviz_views(page) -> list[dict]:
    """Every bertviz view on the page: its element id, kind ('head' has a layer menu) and its SVG text labels."""
    return page.evaluate("""() => Array.from(document.querySelectorAll("div[id^='bertviz-']")).map(div => ({
        id: div.id,
        kind: div.querySelector("select#layer") ? "head" : "model",
        texts: Array.from(div.querySelectorAll("svg text")).map(t => t.textContent),
    }))""")


def notebook_prompt(path, name: str = "prompt") -> str:
    """The string assigned to `<name> = "..."` in a notebook's code (so the test knows what to expect)."""
    for cell in nbformat.read(path, as_version=4).cells:
        for line in cell.source.splitlines():
            if cell.cell_type == "code" and line.startswith(f"{name} = "):
                return ast.literal_eval(line.split("=", 1)[1].split("#")[0].strip())
    raise AssertionError(f"{path} has no `{name} = ...` line")
