# make lab    set up .venv and open the notebooks in JupyterLab (offline, on the shipped tiny model)
# make test   set up .venv, lint (ruff), and run every test: unit, parity, property, notebooks (nbval), browser
# make format apply ruff's fixes and formatting (make lint only checks)
# make lock   re-resolve requirements.lock (exact versions of every package) from pyproject's ranges
# make wheel  build the wheel and sdist into dist/; make smoke: install the wheel elsewhere and use it
# make student  the student edition of the notebooks (solutions cleared, outputs cleared) into student/
# make tiny   retrain the shipped tiny model (88.5 minutes on 2 CPU cores, as its model card records; minutes on a GPU)
#
# Set-up installs requirements.lock with uv (itself pinned, installed from PyPI into the venv), so a fresh clone
# gets the versions the suite passed with, today and next month. torch is the one package whose *build* depends
# on the machine: the lock pins its version; the CPU build is taken where one is at hand (pip's find-links
# folder, or the PyTorch CPU index when it answers), so a laptop does not download a multi-GB CUDA build.
#   make test TORCH_INDEX=           PyPI's default build (CUDA on Linux)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
LOCK := requirements.lock
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=
TORCH_PIN := $(shell grep -m1 '^torch==' $(LOCK))

# Where a CPU build of torch can come from: pip's own find-links folder (set on machines that keep wheels on
# disk), and the PyTorch CPU index only where it answers (a closed network would make uv retry it).
export REACHABLE_INDEX := import socket, sys, urllib.parse as u; url = sys.argv[1]; \
	socket.create_connection((u.urlparse(url).hostname, 443), timeout=5); print("--extra-index-url", url)
TORCH_SOURCES = $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS)) \
	$$($(PY) -c "$$REACHABLE_INDEX" "$(TORCH_INDEX)" 2>/dev/null)
NBVAL := --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-current-env

.PHONY: lab test lock smoke wheel tiny clean student hidden-tests

$(VENV)/.ready: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip install --quiet --python $(PY) $(TORCH_SOURCES) "$(TORCH_PIN)"
	$(UV) pip install --quiet --python $(PY) -r $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

# No news pop-up over the first widget (as in the browser tests): the venv's settings overrides say "no news"
# (a user setting still wins), and the server neither fetches news nor checks for updates.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
lab: $(VENV)/.ready
	mkdir -p $(dir $(LAB_OVERRIDES))
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $(LAB_OVERRIDES)
	$(VENV)/bin/jupyter lab notebooks/ --LabApp.news_url=None \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate $(if $(filter 0,$(shell id -u)),--allow-root)

# The student edition: every notebook with its solutions replaced by a "Your turn" stub and no outputs, made by
# nbgrader's own preprocessors without a course directory (nbgrader_config.py has the same settings for nbgrader).
STUDENT ?= student
student: $(VENV)/.ready
	$(PY) -m gptj_teach student --source notebooks --out $(STUDENT)

# nbgrader's hidden tests (the answer is the student's own, graded by the package's check) and the fallback lines of
# an unfilled notebook, written into every graded notebook; run after adding or changing a your-turn exercise.
hidden-tests: $(VENV)/.ready
	$(PY) -m gptj_teach.classroom.hidden_tests notebooks/*.ipynb

# Two pytest workers (pytest-xdist), one thread each: two cores busy without either waiting on the other's threads.
# --dist loadfile keeps each file on one worker, so a notebook's cells run in order in one kernel. A thread count
# set in the environment wins (OMP_NUM_THREADS=2 make test); no test or saved output depends on it. The 15 slowest
# tests are listed at the end: where the next minute of CI goes.
WORKERS ?= 2
export OMP_NUM_THREADS ?= 1
XDIST = -n $(WORKERS) --dist loadfile
test: $(VENV)/.ready lint
	$(PY) -c "import torch, transformers as t; print('lock: torch', torch.__version__, '/ transformers', t.__version__)"
	$(PY) -m pytest tests notebooks $(NBVAL) $(XDIST) --durations=15 $(PYTEST_ARGS)

# Lint (pyflakes, pycodestyle, import order) and format, configured in pyproject.toml; `make format` applies both.
.PHONY: lint format
lint: $(VENV)/.ready
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
format: $(VENV)/.ready
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Another kernel path on the same machine: ATen's scalar kernels instead of AVX2/AVX512, MKL's compatible code path
# (another blocking and summation order), one thread. A test or saved output that holds on one CPU's kernels only
# fails here, not on a learner's laptop. Every test that computes with the model runs, and every notebook; the
# files that check no figure (HTML in a browser, refusals of bad input, the CLI, packaging, the student edition,
# memory use, the import graph) run in the gate alone.
# oneDNN is capped at AVX2 too: on a CPU with AMX (Intel Sapphire Rapids), oneDNN's bf16/fp16 matmul packs for AMX
# while ATen, held at its scalar kernels, refuses ("pack_vnni2 is only supported when avx512 is supported").
KERNELS := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1
NOT_NUMERIC := browser test_structure.py test_student_edition.py test_hostile_files.py test_hostile_modules.py \
	test_errors.py test_fuzz.py test_stream_and_cli.py test_packaging.py test_load_memory.py test_saving.py
.PHONY: test-kernels
test-kernels: $(VENV)/.ready
	$(KERNELS) $(PY) -c "import torch; print('kernels:', torch.backends.cpu.get_cpu_capability(), 'ATen,', \
		torch.get_num_threads(), 'thread')"
	$(KERNELS) $(PY) -m pytest tests notebooks $(NBVAL) $(XDIST) $(NOT_NUMERIC:%=--ignore=tests/%) $(PYTEST_ARGS)

# Build the wheel and sdist, install the wheel in a fresh venv outside the repo, use it from there.
smoke: $(VENV)/.ready
	$(PY) scripts/wheel_smoke.py

# The lock is universal (every platform and Python that pyproject allows). torch stays at the version pinned
# below; its CUDA runtime wheels are left out, since they belong to one build of torch and not another. The
# versions already locked are kept where pyproject still allows them (a new dependency adds only itself and what it
# needs); `make lock UPGRADE=1` moves every package to its newest release.
TORCH_LOCK_VERSION ?= 2.13.0
lock:
	test -x $(UV) || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install --quiet "uv==$(UV_VERSION)"; }
	echo "torch==$(TORCH_LOCK_VERSION)" > $(VENV)/torch-pin.txt
	cp $(LOCK) $(VENV)/lock-preferences.txt
	$(UV) pip compile pyproject.toml --universal --extra test --extra colab --extra crosscheck -c $(VENV)/torch-pin.txt \
	    --no-annotate --no-header --quiet $(if $(UPGRADE),--upgrade) -o $(VENV)/lock-preferences.txt
	{ echo "# Exact versions of every package that set-up installs (make lock writes this file; do not edit)."; \
	  echo "# From pyproject.toml's ranges with extras test + colab + crosscheck, for every platform; torch's CUDA wheels left out."; \
	  grep -vE '^(#|nvidia-|triton|cuda-)' $(VENV)/lock-preferences.txt; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)

# CI's version matrix: the tests and notebooks that call a dependency's moving API (marker `reference`, listed in
# tests/conftest.py), in a fresh venv at the lowest versions pyproject allows (lowest-direct: each dependency we
# name at its minimum) and at the newest released (the canary that meets the next transformers before a user
# does). torch comes from PyPI there (a CUDA build on Linux: it runs on the CPU too), unless pip's find-links
# folder or the PyTorch CPU index offers that version.
# TransformerLens 3.9.0 (the cross-check of activations.py) needs transformers >= 5.9: the lowest run leaves it out.
MATRIX_lowest := --resolution lowest-direct
MATRIX_newest := --upgrade
EXTRAS_lowest := test
EXTRAS_newest := test,crosscheck
MARKS_lowest := reference and not lock and not crosscheck
MARKS_newest := reference and not lock
.PHONY: test-lowest test-newest
test-lowest test-newest: test-%: $(VENV)/.ready
	rm -rf $(VENV)-$*
	$(UV) venv --quiet --python $(PYTHON) $(VENV)-$*
	$(UV) pip install --quiet --python $(VENV)-$*/bin/python $(MATRIX_$*) -e ".[$(EXTRAS_$*)]"
	$(VENV)-$*/bin/python -c "import torch, transformers as t; print('$*: torch', torch.__version__, '/ transformers', t.__version__)"
	$(VENV)-$*/bin/python -m pytest tests notebooks $(NBVAL) $(XDIST) --ignore=tests/browser -m "$(MARKS_$*)" \
		$(PYTEST_ARGS)

# The lock with one package moved (CI: PIN=transformers==5.23.0, the release before 5.24 rewrote its GPT-J):
# the parity tests and the notebooks that compare layer by layer, against that reference.
PIN ?= transformers==5.23.0
PINNED_TESTS := tests/test_model_parity.py tests/test_rotary_attention_block.py tests/test_checkpoint.py \
	tests/test_tiny.py notebooks/03_attention.ipynb notebooks/04_parallel_block.ipynb \
	notebooks/09_speed_and_precision.ipynb
.PHONY: test-pinned
test-pinned: $(VENV)/.ready
	rm -rf $(VENV)-pinned
	$(UV) venv --quiet --python $(PYTHON) $(VENV)-pinned
	echo "$(PIN)" > $(VENV)-pinned/override.txt
	$(UV) pip install --quiet --python $(VENV)-pinned/bin/python $(TORCH_SOURCES) "$(TORCH_PIN)"
	$(UV) pip install --quiet --python $(VENV)-pinned/bin/python -r $(LOCK) --overrides $(VENV)-pinned/override.txt
	$(UV) pip install --quiet --python $(VENV)-pinned/bin/python --no-deps -e .
	$(VENV)-pinned/bin/python -c "import torch, transformers as t; print('$(PIN): torch', torch.__version__, '/ transformers', t.__version__)"
	$(VENV)-pinned/bin/python -m pytest $(PINNED_TESTS) $(NBVAL) $(XDIST) $(PYTEST_ARGS)

# Colab as it is (CI): a venv with Colab's own versions (.ci/colab-runtime.txt: transformers 4.57, huggingface_hub 0.36,
# ipywidgets 7.7.1, Notebook 6.5), the wheel with [colab] installed on top by pip, as a learner's first cell does:
# pip's own report must show it replacing none of them (scripts/colab_check.py); then notebooks 00, 06, 07 run
# there against the installed wheel, and the browser test drives the sampler and the bertviz views in the classic
# Notebook 6.5 with ipywidgets 7.7.1 (tests/browser/test_classic_notebook.py, which skips in any other venv).
# Python: the machine's 3.11 (the CPU build of torch on disk is for 3.11; Colab's Python is 3.12).
COLAB_NOTEBOOKS := notebooks/00_start_here.ipynb notebooks/06_sampling.ipynb notebooks/07_attention_visualization.ipynb
.PHONY: test-colab
test-colab: $(VENV)/.ready
	rm -rf $(VENV)-colab
	$(UV) venv --quiet --seed --python $(PYTHON) $(VENV)-colab
	$(UV) pip install --quiet --python $(VENV)-colab/bin/python $(TORCH_SOURCES) -r .ci/colab-runtime.txt
	$(UV) build --quiet --wheel --out-dir $(VENV)-colab/dist
	$(VENV)-colab/bin/python scripts/colab_check.py $(VENV)-colab/dist/gptj_teach-*.whl
	$(UV) pip install --quiet --python $(VENV)-colab/bin/python "pytest>=8" "nbval>=0.11" hypothesis "playwright>=1.65"
	$(VENV)-colab/bin/python -c "import transformers as t, huggingface_hub as h, ipywidgets as w, notebook as n; \
		print('colab: transformers', t.__version__, '/ hub', h.__version__, '/ ipywidgets', w.__version__, \
		      '/ notebook', n.__version__)"
	$(VENV)-colab/bin/python -m pytest $(COLAB_NOTEBOOKS) $(NBVAL) $(PYTEST_ARGS)
	GPTJ_TEACH_BROWSER=require $(VENV)-colab/bin/python -m pytest tests/browser/test_classic_notebook.py $(PYTEST_ARGS)

wheel: $(VENV)/.ready
	rm -rf dist
	$(UV) build --quiet --out-dir dist

tiny: $(VENV)/.ready
	$(PY) scripts/train_tiny.py --minutes 88.5

clean:
	rm -rf $(VENV) $(VENV)-lowest $(VENV)-newest $(VENV)-pinned $(VENV)-colab build dist runs $(STUDENT)
