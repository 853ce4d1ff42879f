"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, a throwaway JupyterLab server, and the
CDN scripts that bertviz fetches, served from local npm copies.

The tests run when /usr/bin/chromium exists, and skip (with one line saying how to enable them) when it does
not (see `require_chromium`). With GPTJ_TEACH_BROWSER=require (set in CI) a missing browser is a failure
instead. Playwright's own browser download (`playwright install`) is never used.
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("GPTJ_TEACH_BROWSER") == "require"
HOW_TO = "browser tests need Chromium: `apt-get install chromium` (GPTJ_TEACH_BROWSER=require makes this a failure)"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
NPM_DIR = ROOT / "build" / "npm"
NPM_FILES = {  # the file name at the end of a CDN URL -> our copy from the npm registry
    "require.min.js": "requirejs/require.js",
    "require.js": "requirejs/require.js",
    "d3.min.js": "d3/dist/d3.min.js",
    "jquery.min.js": "jquery/dist/jquery.min.js",
}
CDN_HOSTS = {"cdnjs.cloudflare.com", "cdn.jsdelivr.net"}
SCREENSHOTS = ROOT / "build" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1"}


def require_chromium() -> None:
    """Called at the top of each browser test module: skip the module (one line for all of them, since every
    skip comes from this line) or, with GPTJ_TEACH_BROWSER=require, fail its collection."""
    if not CHROMIUM.exists():
        if REQUIRED:
            pytest.fail(f"GPTJ_TEACH_BROWSER=require but {CHROMIUM} is missing: {HOW_TO}", pytrace=False)
        pytest.skip(HOW_TO, allow_module_level=True)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser executable (the test modules have checked that it exists)."""
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def cdn_files(chromium) -> dict[str, Path]:
    """Local copies of the scripts that bertviz loads from a CDN: `npm install` them into build/npm once."""
    files = {name: NPM_DIR / "node_modules" / rel for name, rel in NPM_FILES.items()}
    if not all(f.exists() for f in files.values()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("the browser tests need npm (apt-get install npm) to fetch require.js, d3 and jQuery")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NPM_DIR),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "requirejs",
                "d3@5",
                "jquery",
            ],
            check=True,
            timeout=300,
        )
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(chromium, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 over a temporary copy of notebooks/; yields a dict with url, token, root."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')  # no news toast
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "ws"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
    )
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--expose-app-in-browser",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root
    with serving(command, env, port, token, tmp / "lab.log") as url:
        yield {"url": url, "token": token, "root": root}


@contextlib.contextmanager
def serving(command: list, env: dict, port: int, token: str, log_path: Path):
    """Run a Jupyter server (`command`, on 127.0.0.1:`port`), yield its URL once it answers, stop it afterwards."""
    log = open(log_path, "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{url}/api/status?token={token}", log_path)
        yield url
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def wait_until_up(server, status_url: str, log_path: Path, timeout: float = 90) -> None:
    """Poll the server's /api/status until it answers; fail with its log if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the Jupyter server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(status_url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the Jupyter server did not answer within {timeout} s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Network:
    """What the page asked of the outside world: `served` from local copies, `blocked` (aborted)."""

    def __init__(self, cdn_files=None):
        self.cdn_files = cdn_files or {}  # empty: everything that leaves 127.0.0.1 is blocked
        self.served, self.blocked = [], []

    def route(self, route):
        url = route.request.url
        parsed = urlparse(url)
        if parsed.hostname in LOCAL_HOSTS:
            return route.continue_()
        name = parsed.path.rsplit("/", 1)[-1]
        if parsed.hostname in CDN_HOSTS and name in self.cdn_files:
            self.served.append(url)
            return route.fulfill(path=str(self.cdn_files[name]), content_type="text/javascript")
        self.blocked.append(url)
        return route.abort()


@pytest.fixture
def new_page(browser):
    """new_page(network) -> a fresh page (own context) whose requests go through `network.route`."""
    contexts = []

    def make(network: Network):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.errors = []  # uncaught JavaScript errors, for failure messages
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.route("**/*", network.route)
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str, element=None) -> Path:
    """Save a screenshot under build/screenshots/ (of `element` if given) and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    (element or page).screenshot(path=str(path))
    return path
