# Gaemi: the two set-up commands are `make demo` and `make test`; both build everything they
# need into a local virtual environment (.venv) first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-pure test-debug lint bench bench-smoke soak soak-short annotate clean

# (re)create the venv and (re)build the extension when the build inputs change
$(STAMP): pyproject.toml setup.py engine/_book.pyx engine/_book.pxd
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gaemi demo

test: $(STAMP)
	$(PY) -m pytest tests

# the whole suite again on the pure-Python reference book
test-pure: $(STAMP)
	ENGINE_PUREPYTHON=1 $(PY) -m pytest tests

# bounds/overflow-checked build of the extension, then the engine and differential tests
test-debug: $(STAMP)
	ENGINE_DEBUG=1 $(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	$(PY) -m pytest tests/engine tests/differential
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .

# the style and type gate: ruff on the whole tree, mypy on the four packages seen as the
# installed namespace (gaemi.engine is engine/, ...: links under build/typecheck give mypy
# that view without an install)
TYPECHECK := build/typecheck
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	mkdir -p $(TYPECHECK)/gaemi
	for p in engine risk gateway clients; do ln -sfn ../../../$$p $(TYPECHECK)/gaemi/$$p; done
	cd $(TYPECHECK) && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml \
		-p gaemi.engine -p gaemi.risk -p gaemi.gateway -p gaemi.clients

bench: $(STAMP)
	$(PY) -m pytest benches --benchmark-only --benchmark-disable-gc \
		--benchmark-columns=min,median,mean,ops,rounds --benchmark-sort=name

# every benchmark once, untimed: checks they still run and assert their results
bench-smoke: $(STAMP)
	$(PY) -m pytest benches --benchmark-disable -q

# crashes and hostile traffic on loopback (tests/soak.py): 20 kill -9 cycles with every
# acknowledged request checked, then 100k hostile frames; bounded, stops by itself
soak: $(STAMP)
	$(PY) -m tests.soak --cycles 20 --frames 100000

# the short version CI runs
soak-short: $(STAMP)
	$(PY) -m tests.soak --cycles 3 --frames 5000

annotate: $(STAMP)
	$(VENV)/bin/cython -a engine/_book.pyx

clean:
	rm -rf $(VENV) build *.egg-info engine/_book.c engine/*.so engine/*.html
