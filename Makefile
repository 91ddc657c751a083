# The two commands of the README:
#   make main   set up, run the whole pipeline (dvc repro) and print where the book is
#   make test   set up and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zeroflow-installed

.PHONY: setup main test bench clean-venv

setup: $(STAMP)

# torch first and alone: the constraint keeps the CPU wheel; timm without its dependencies because
# its torchvision requirement would replace that torch with a CUDA build (design notes, section 3).
$(STAMP): requirements/base.txt requirements/constraints.txt pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements/constraints.txt -r requirements/base.txt
	$(BIN)/pip install --quiet --no-deps timm==1.0.31
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	$(BIN)/python -c "import torch; from zeroflow_core._timm import import_timm; import_timm(); print('torch', torch.__version__)"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -n 2 tests

main: setup
	$(BIN)/zeroflow pretrain --out runs/pretrain
	$(BIN)/zeroflow train --method ease --optimizer zo-sgd --dataset synthetic --out runs/ease-zo-sgd-synthetic-0

bench: setup
	$(BIN)/zeroflow bench --model vit-tiny --optimizers fo-sgd,zo-sgd,forward-grad --batch-size 32 --steps 5

clean-venv:
	rm -rf $(VENV)
