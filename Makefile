# make lab   set up .venv and open the notebooks in JupyterLab (offline, on the shipped tiny model)
# make test  set up .venv and run every test: unit, parity, property, notebooks (nbval), browser
# make tiny  retrain the shipped tiny model (about 85 minutes on 2 CPU cores; minutes on a GPU)
#
# torch: a CPU build by default, so that set-up is not a multi-GB CUDA download on a laptop.
#   make test TORCH_INDEX=          PyPI's default build (CUDA on Linux)
#   make test TORCH=torch==2.14.1   another version
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PYTEST_ARGS ?=

# Use the CPU index only where it answers: a closed network would make pip retry it for every package.
export REACHABLE_INDEX := import socket, sys, urllib.parse as u; url = sys.argv[1]; \
	socket.create_connection((u.urlparse(url).hostname, 443), timeout=5); print("--extra-index-url", url)

.PHONY: lab test tiny clean

$(VENV)/.ready-%: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" $$($(PY) -c "$$REACHABLE_INDEX" "$(TORCH_INDEX)" 2>/dev/null)
	$(PY) -m pip install --quiet -e ".[$*]"
	touch $@

lab: $(VENV)/.ready-notebooks
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

test: $(VENV)/.ready-test
	$(PY) -m pytest tests notebooks --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--nbval-current-env $(PYTEST_ARGS)

tiny: $(VENV)/.ready-test
	$(PY) scripts/train_tiny.py --minutes 85

clean:
	rm -rf $(VENV) build runs
