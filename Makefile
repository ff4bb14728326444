PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test install clean baseline leaderboard real

# Rebuilt only when the project's dependencies change; quick the second time.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip>=24" -c constraints.txt
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/brittlebench run

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# A real pretrained model (SmolLM2-135M-Instruct, a 93 MB download into ~/.cache/brittlebench/models)
# on the pretrained suite. Not needed by the tests; REAL_RUN adds run options (e.g. --n 20).
REAL_RUN ?=
real: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[gguf]"
	HF_HUB_OFFLINE=1 $(VENV)/bin/python scripts/real_model.py run $(REAL_RUN)

clean:
	rm -rf $(VENV) runs .pytest_cache

# The regression baseline that `make test` gates on: the default model, a small suite.
BASELINE_RUN := --n 30 --seed 0
baseline: $(STAMP)
	rm -rf runs/baseline && $(VENV)/bin/brittlebench run $(BASELINE_RUN) --out runs/baseline
	cp runs/baseline/results.json leaderboard/baseline.json

# Rebuild the zoo (members already trained are kept), rerun it, and rebuild the leaderboard.
leaderboard: $(STAMP)
	$(VENV)/bin/brittlebench zoo build --out zoo
	$(VENV)/bin/brittlebench leaderboard run-zoo --zoo zoo --out leaderboard/runs
	$(VENV)/bin/brittlebench leaderboard build --root leaderboard
