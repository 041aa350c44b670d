# Set-up on a fresh machine: `make demo` or `make test`.
# torch is installed first from its pinned CPU build; a bare `torch` requirement would pull a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: install browser demo test docs tables lint bench clean

# The stamp is written only here, after every extra is installed: a venv made another way (a bare `pip install -e .`)
# has none, so `make test` installs the extras instead of skipping their tests; an installed one costs nothing more.
INSTALLED := $(VENV)/.retriever-all-extras

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[all]'  # every extra, so that the tests of optional parts run too
	touch $(INSTALLED)

install: $(INSTALLED)

demo: install
	$(BIN)/retriever index examples/sample-corpus --index indexes/sample-corpus
	$(BIN)/retriever search "I can't remember how to sign in" --mode dense --index indexes/sample-corpus -k 3
	$(BIN)/retriever search "how long until my parcel arrives" --index indexes/sample-corpus -k 3
	$(BIN)/retriever search "why is rest important for learning" --index indexes/sample-corpus -k 3

browser:  # Debian's chromium, driven by Playwright in the search-page tests (Playwright's own download is unreachable)
	@command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null 2>&1 \
	  || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null 2>&1) \
	  || echo "note: could not install chromium (needs root and apt); the search-page browser tests will be skipped"

test: install browser
	# Two workers, a test file on one (its shared fixtures are built once), each with one OpenMP/BLAS thread:
	# two workers of two threads on two cores ran 10-14% slower (measured on the same five test files).
	# Files go out longest first, the tests on Ray as one unit (tests/conftest.py, pytest_xdist_make_scheduler).
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile
	$(BIN)/mkdocs build --strict --site-dir build/site  # the documentation site: broken links and pages missing from the nav fail

docs: install
	$(BIN)/mkdocs serve  # the documentation site at http://127.0.0.1:8000, rebuilt on every change

tables:  # render every results table and figure in README.md and docs/ from benchmarks/results/*.json
	$(PYTHON) -m benchmarks.render_tables

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) indexes/sample-corpus
