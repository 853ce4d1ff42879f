"""Colab as it is: the wheel with ``[colab]`` goes on top of Colab's packages and changes none (`make test-colab`).

Run with the Python of a venv that holds a Colab-like runtime (.ci/colab-runtime.txt). Usage:
``python scripts/colab_check.py WHEEL``.

1. pip's own report (``pip install --dry-run --report``) for ``WHEEL[colab]``: every package it would install must
   be new to the venv. One that is already there at another version is what a learner's first cell would replace
   (Colab's transformers, huggingface_hub, ...), and fails the check with the list.
2. The real ``pip install``, then every package that was there before must still be there at the same version.
"""

import json
import subprocess
import sys


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed() -> dict[str, str]:
    """name -> version of every distribution in this venv, read afresh (-I: not the project folder's egg-info)."""
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import json, importlib.metadata as m; print(json.dumps("
            "{d.metadata['Name']: d.version for d in m.distributions()}))",
        ],
        check=True,
        text=True,
        capture_output=True,
    ).stdout
    return {canonical(name): version for name, version in json.loads(out).items()}


def would_install(requirement: str) -> dict[str, str]:
    """name -> version of what pip would install for ``requirement``, from its --report (JSON on stdout)."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", requirement],
        check=True,
        text=True,
        capture_output=True,
    ).stdout
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in json.loads(out)["install"]}


def main(wheel: str) -> int:
    requirement = f"{wheel}[colab]"
    before = installed()
    plan = would_install(requirement)
    replaced = {name: f"{before[name]} -> {version}" for name, version in plan.items() if name in before}
    print(f"pip would add {len(plan)} packages: " + ", ".join(f"{n} {v}" for n, v in sorted(plan.items())))
    if replaced:
        print(
            "FAILED: pip would replace packages Colab already has:\n  "
            + "\n  ".join(f"{name} {change}" for name, change in sorted(replaced.items())),
            file=sys.stderr,
        )
        return 1
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", requirement], check=True)
    after = installed()
    changed = {
        name: f"{version} -> {after.get(name, 'removed')}"
        for name, version in before.items()
        if after.get(name) != version
    }
    if changed:
        print(
            "FAILED: after pip install, Colab's packages changed:\n  "
            + "\n  ".join(f"{name} {change}" for name, change in sorted(changed.items())),
            file=sys.stderr,
        )
        return 1
    print(f"ok: {requirement} installed; none of the {len(before)} packages already there changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
