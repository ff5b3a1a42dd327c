# Two entry points: `make book` (build the website) and `make test` (run the tests).
# Each creates .venv with everything it needs when it is missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= cpu
# `make test` leaves out the tests marked slow (the smoke book built twice, a real build stopped by
# signals, every page in a browser); `make test SLOW=1` runs them too, as CI does.
SLOW ?=
# The torch pair that installs from the local disk on the reference machine; any
# pair inside the ranges of pyproject.toml works elsewhere.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# Pins of every other package of the book and dev extras (`make lock` refreshes them; torch
# stays with TORCH_PINS). Used whenever the file is there; `make LOCK= ...` installs unpinned.
LOCK ?= constraints.txt
CONSTRAINTS := $(if $(and $(LOCK),$(wildcard $(LOCK))),-c $(LOCK),)

.PHONY: book test venv clean lock

$(VENV)/.installed: pyproject.toml $(wildcard $(LOCK))
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet $(CONSTRAINTS) -e '.[book,dev]'
	touch $@

venv: $(VENV)/.installed

book: venv
	$(PY) -m ncutils.book build --profile $(PROFILE)

test: venv
	$(PY) -m pytest $(if $(SLOW),,-m 'not slow')

# Re-resolve the pins of constraints.txt (uv, from PyPI) for Python 3.11+ on every platform,
# keeping the pins already there where they still fit (delete the file to take the newest);
# torch is resolved at TORCH_PINS but left out, with its CUDA wheels.
lock: venv
	$(PY) -m pip install --quiet 'uv>=0.4,<1'
	printf '%s\n' $(TORCH_PINS) > $(VENV)/torch-pins.txt
	$(VENV)/bin/uv pip compile pyproject.toml --extra book --extra dev --universal --python-version 3.11 \
	    --override $(VENV)/torch-pins.txt --no-emit-package torch --no-emit-package torchvision \
	    -o $(LOCK) -q
	grep -v -E '^(nvidia-|triton==|cuda-)' $(LOCK) > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)

clean:
	rm -rf _build runs book/generated
