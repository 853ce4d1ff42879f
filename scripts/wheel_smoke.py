"""Install gptj_teach as a user would and use it from outside the repository (`make smoke`; CI runs it).

1. Build the wheel and the sdist; both must hold the tiny checkpoint and the vendored bertviz scripts (package
   data left out of the wheel is invisible from inside the repo, where the source tree is importable).
2. Install the wheel into a new venv in a temporary directory (versions from requirements.lock).
3. From that directory: `gptj-teach generate` on the shipped tiny model, and notebook 00 executed and checked
   by nbval against the installed package.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UV = str(Path(sys.executable).with_name("uv"))
PACKAGE_DATA = [
    "gptj_teach/checkpoints/tiny/config.json",
    "gptj_teach/checkpoints/tiny/model.safetensors",
    "gptj_teach/checkpoints/tiny/README.md",
    "gptj_teach/vendor/d3.min.js",
    "gptj_teach/vendor/jquery.min.js",
    "gptj_teach/vendor/require.min.js",
]
NOTEBOOK = "00_start_here.ipynb"


def run(*command, cwd=None, env=None) -> str:
    print("$", " ".join(map(str, command)), flush=True)
    result = subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True)
    if result.returncode:
        sys.exit(f"failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def check_archives(dist: Path) -> Path:
    """The wheel and the sdist both contain the package data. Returns the wheel."""
    wheel, sdist = next(dist.glob("*.whl")), next(dist.glob("*.tar.gz"))
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    in_sdist = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    for name in PACKAGE_DATA:
        assert name in in_wheel, f"{name} is missing from {wheel.name}"
        assert name in in_sdist, f"{name} is missing from {sdist.name}"
    print(
        f"ok: {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB) and {sdist.name} hold the tiny checkpoint "
        "and the vendored bertviz scripts"
    )
    return wheel


def main():
    with tempfile.TemporaryDirectory(prefix="gptj_teach_smoke_") as tmp:
        tmp = Path(tmp)
        run(UV, "build", "--quiet", "--out-dir", tmp / "dist", ROOT)
        wheel = check_archives(tmp / "dist")
        venv = tmp / "venv"
        python = venv / "bin" / "python"
        run(UV, "venv", "--quiet", "--python", sys.executable, venv)
        find_links = ["--find-links", os.environ["PIP_FIND_LINKS"]] if os.environ.get("PIP_FIND_LINKS") else []
        run(
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            *find_links,
            "-c",
            ROOT / "requirements.lock",
            f"gptj_teach[test] @ {wheel.as_uri()}",
        )
        work = tmp / "elsewhere"  # not the repository: only the installed package can be imported
        work.mkdir()
        where = run(python, "-c", "import gptj_teach; print(gptj_teach.__file__)", cwd=work).strip()
        assert where.startswith(str(venv)), f"imported gptj_teach from {where}, not from the installed wheel"
        text = run(venv / "bin" / "gptj-teach", "generate", "def fib(n):", "--max-new-tokens", "12", cwd=work)
        assert text.startswith("def fib(n):") and len(text) > len("def fib(n):"), repr(text)
        print(f"ok: gptj-teach generate wrote {text!r}")
        shutil.copy(ROOT / "notebooks" / NOTEBOOK, work)
        shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", work)
        env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
        out = run(
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            "nbval_sanitize.cfg",
            NOTEBOOK,
            cwd=work,
            env=env,
        )
        print(out.strip().splitlines()[-1])
        print(f"ok: {NOTEBOOK} ran against the installed wheel and matched its saved outputs")


if __name__ == "__main__":
    main()
