# Two entry points: `make run` (the main job: the synchronisation study) and `make test`.
# Both build a local virtual environment in .venv on first use.
#
# TORCH_SPEC: on the project's build machines `torch==2.13.0` is a local CPU build; elsewhere
# set it to the torch you want (e.g. TORCH_SPEC=torch for pip's default build).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run test test-all setup data clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	# torchattacks declares torchvision, which it does not use for FGSM/PGD/EOTPGD/AutoAttack and
	# which does not import beside the CPU torch build: install it without dependencies.
	$(PY) -m pip install -q --no-deps "torchattacks==3.5.1"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/akorn sync

test: setup
	$(PY) -m pytest -m "not slow and not cuda" -q

test-all: setup
	$(PY) -m pytest -q

# Fashion-MNIST for the robustness study, from Debian's package (needs root or sudo).
data:
	apt-get install -y dataset-fashion-mnist || sudo apt-get install -y dataset-fashion-mnist

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
