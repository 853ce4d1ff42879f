"""The package's shape: every module imports on its own, and each GPT-J component is written once."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gptj_teach"
SOURCES = {
    ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__"): p
    for p in sorted(PACKAGE.rglob("*.py"))
    if p.stem != "__main__"
}  # {"gptj.rotary": path, ...}
MODULES = sorted(name for name in SOURCES if name != "__init__")


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
            sys.modules["gptj_teach"] = package  # the real __init__ left out: it imports the core in a fixed order
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
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, str(PACKAGE), *MODULES],
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr


def test_no_import_inside_a_function_of_the_core():
    """The modules a forward pass runs import everything at the top (the notebook-side ones may import
    plotting or widget libraries on first use)."""
    core = [name for name in MODULES if name.startswith(("gptj.", "generation."))]
    core += ["checks", "checkpoint", "saving", "errors", "reference"]
    for module in core:
        tree = ast.parse(SOURCES[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{module}.{node.name} imports inside its body"


def calls(name: str) -> dict:
    """{module: number of calls of `name` (a function or a method, e.g. `q_proj`)} over the package, the
    exercises aside (their checks take a block apart on purpose, to tell a student which step went wrong)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "exercises" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    found[path.stem] = found.get(path.stem, 0) + 1
    return found


def definitions(name: str) -> list:
    return [
        path.stem
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name
    ]


def test_attention_and_the_block_are_defined_once():
    assert definitions("GPTJAttention") == ["attention"] and definitions("GPTJBlock") == ["block"]
    assert set(calls("scaled_dot_product_attention")) == {"attention"}  # one fused attention
    for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
        assert calls(projection) == {"attention": 1}, projection  # nobody else reaches into attention
    # nor into the block; circuits.ov_logits applies ln_1 alone to read a head's OV circuit off the weights (no forward)
    assert calls("ln_1") == {"block": 1, "circuits": 1} and calls("fc_in") == {"block": 1}


# What the model folder may import: torch, the standard library, and for the tokenizer and the output classes the
# two things transformers' own GPT-J is made of (its GPT-2 tokenizer class and its ModelOutput base).
MODEL_FOLDER_MAY_IMPORT = {"torch", "transformers", "regex", *sys.stdlib_module_names}


def test_the_model_folder_imports_nothing_from_the_rest_of_the_package():
    """gptj/ reads top to bottom on its own: a student opens the folder and has the whole model."""
    for name in MODULES:
        if not name.startswith("gptj."):
            continue
        for node in ast.walk(ast.parse(SOURCES[name].read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{name} imports from outside gptj/: {'.' * node.level}{node.module}"
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                roots = (
                    {a.name.split(".")[0] for a in node.names}
                    if isinstance(node, ast.Import)
                    else {node.module.split(".")[0]}
                )
                assert roots <= MODEL_FOLDER_MAY_IMPORT, f"{name} imports {roots - MODEL_FOLDER_MAY_IMPORT}"


def test_no_module_is_left_at_an_old_flat_name():
    """The old names live only in _moved.MOVED (they warn); a file at an old place would shadow the move."""
    from gptj_teach._moved import MOVED

    assert not [old for old in MOVED if (PACKAGE / f"{old}.py").exists()]


def unannotated(function) -> list[str]:
    """The parameters (and "return") of `function` that have no type hint."""
    signature = inspect.signature(function)
    missing = [
        name
        for name, p in signature.parameters.items()
        if p.annotation is p.empty and name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return missing + (["return"] if signature.return_annotation is signature.empty else [])


def test_the_public_api_has_type_hints():
    import gptj_teach as gt

    functions = {name: getattr(gt, name) for name in gt.__all__ if inspect.isfunction(getattr(gt, name))}
    assert {"load", "load_tokenizer", "generate", "stream"} <= set(functions)
    for cls in (gt.GPTJModel, gt.GPTJForCausalLM, gt.GPTJForSequenceClassification, gt.GPTJForQuestionAnswering):
        for method in ("forward", "from_transformers", "save_pretrained"):
            functions[f"{cls.__name__}.{method}"] = getattr(cls, method)
    missing = {name: gaps for name, f in functions.items() if (gaps := unannotated(f))}
    assert not missing, f"public functions without type hints (name: parameters): {missing}"
