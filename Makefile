# colorlab: `make help` lists the targets.
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
NAME ?= quickstart
ARGS ?=
# Real photos for the photo experiments; override with `make experiment COLORLAB_DATA=/my/photos`.
COLORLAB_DATA ?= $(abspath ../shared/data/photos)
export COLORLAB_DATA

.PHONY: help install quickstart experiment resume smoke test test-all lint bench results sweep serve gpu-check bench-video

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: ## create .venv and install colorlab with every extra, pinned by constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -c constraints.txt -e ".[all]"

quickstart: install ## install, then train + evaluate the built-in quickstart experiment (~3 min on 2 CPU cores)
	$(MAKE) experiment NAME=quickstart

experiment: ## fit + test + report for experiments/$(NAME).yaml, e.g. make experiment NAME=unet_l1
	$(PYTHON) -m colorlab experiment --config experiments/$(NAME).yaml $(ARGS)

resume: ## continue the latest interrupted run of experiments/$(NAME).yaml from its last.ckpt
	$(PYTHON) -m colorlab experiment --config experiments/$(NAME).yaml --resume $(ARGS)

smoke: ## a few batches of experiments/$(NAME).yaml on CPU, offline, no logs: checks a config in seconds
	WANDB_MODE=disabled $(PYTHON) -m colorlab fit --config experiments/$(NAME).yaml \
		--trainer.fast_dev_run=2 --trainer.accelerator=cpu $(ARGS)

test: ## the test suite (skips tests marked slow); this is what CI runs
	$(PYTHON) -m pytest -m "not slow" -q

test-all: ## every test, slow ones included
	$(PYTHON) -m pytest -q

lint: ## ruff, and the layers contract (import-linter, pyproject's [tool.importlinter])
	$(PYTHON) -m ruff check colorlab tests scripts
	$(VENV)/bin/lint-imports

bench: ## throughput of Lab conversion, a training step, full-res colorize (vs targets) and loader images/s, shards vs folder
	$(PYTHON) scripts/bench.py

gpu-check: ## the GPU check (<= 8 min on one GPU): every family under bf16/fp16, speed, VRAM, colorize, NCCL; tiny on CPU
	$(PYTHON) scripts/gpu_check.py $(ARGS)

bench-video: ## the film part of bench alone: make bench-video ARGS="--ckpt runs/unet_effnet/.../best.ckpt"
	$(PYTHON) scripts/bench_video.py $(ARGS)

results: ## one headline run per family (600 steps each, one at a time; resumes; ARGS="--steps N", "--only NAME"): docs/results.md
	$(PYTHON) scripts/results.py $(ARGS)

sweep: ## hyperparameter search: make sweep NAME=unet_l1 (sweeps/$(NAME).yaml, Optuna + SQLite)
	$(PYTHON) -m colorlab sweep --config sweeps/$(NAME).yaml $(ARGS)

serve: ## local web page to try checkpoints: make serve ARGS="--ckpt-dir runs"
	$(PYTHON) -m colorlab serve $(ARGS)
