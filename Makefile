# Two entry points: `make book` (build the website) and `make test` (run the tests).
# Each creates .venv with everything it needs when it is missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
# The torch pair that installs from the local disk on the reference machine; any
# pair inside the ranges of pyproject.toml works elsewhere.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: book test venv clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[book,dev]'
	touch $@

venv: $(VENV)/.installed

book: venv
	$(PY) -m ncutils.book build --profile $(PROFILE)

test: venv
	$(PY) -m pytest

clean:
	rm -rf _build runs book/generated
