"""The package's shape: every module imports on its own, and each GPT-J component is written once."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gptj_teach"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


# One interpreter imports the heavy third-party libraries once, then forks a child per module of ours: each child
# starts with no gptj_teach module loaded, so an import circle among ours fails there as in a fresh interpreter,
# without paying torch's import 30 times (90 s of CPU).
IMPORT_EACH_ALONE = """
import os, sys, traceback, types
# not ours: imported once, before the forks
import huggingface_hub, ipywidgets, matplotlib.pyplot, nbgrader.preprocessors, safetensors, torch, tqdm.auto
import transformers.models.gptj.modeling_gptj
failed = 0
for module in sys.argv[2:]:
    pid = os.fork()
    if pid == 0:
        try:
            package = types.ModuleType("gptj_teach")
            package.__path__ = [sys.argv[1]]
            sys.modules["gptj_teach"] = package
            __import__(f"gptj_teach.{module}")
        except BaseException:
            print(f"--- gptj_teach.{module}:", traceback.format_exc()[-2000:], file=sys.stderr, flush=True)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(failed)
"""


def test_each_module_imports_alone_in_a_fresh_interpreter():
    """A module that needs a late import to dodge a circle fails here: it is imported first, on its own, with
    the package's __init__ (which imports the core in a fixed order) left out."""
    run = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, str(PACKAGE), *MODULES], text=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    assert run.returncode == 0, run.stderr


def test_no_import_inside_a_function_of_the_core():
    """The modules a forward pass runs import everything at the top (the notebook-side ones may import
    plotting or widget libraries on first use)."""
    core = ("attention", "block", "cache", "checks", "checkpoint", "fast", "generation", "model", "rotary",
            "sampling", "saving", "sizes", "outputs", "errors", "tokenizer")
    for module in core:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{module}.{node.name} imports inside its body"


def calls(name: str) -> dict:
    """{module: number of calls of `name` (a function or a method, e.g. `q_proj`)} over the package, the
    exercises aside (their checks take a block apart on purpose, to tell a student which step went wrong)."""
    found = {}
    for path in PACKAGE.glob("*.py"):
        if path.stem == "exercises":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    found[path.stem] = found.get(path.stem, 0) + 1
    return found


def definitions(name: str) -> list:
    return [path.stem for path in PACKAGE.glob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name]


def test_attention_and_the_block_are_defined_once():
    assert definitions("GPTJAttention") == ["attention"] and definitions("GPTJBlock") == ["block"]
    assert set(calls("scaled_dot_product_attention")) == {"attention"}  # one fused attention
    for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert calls(projection) == {"attention": 1}, projection  # nobody else reaches into attention
    assert calls("ln_1") == {"block": 1} and calls("fc_in") == {"block": 1}  # nor into the block
