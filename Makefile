# Quick start: `make search` (main job on the host device) and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps search test bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The real `adb` client (Debian package) is used by the emulated-phone tests.
system-deps:
	@command -v adb >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adb >/dev/null; \
	  else echo "warning: install the 'adb' client to run its tests"; fi; }

# Default search: host CPU, mnasnet space, standalone proxy training (the supernet evaluator does not reach its
# speed goal robustly: docs/supernet.md), ppo, target 0.8 x mnasnet-a1's host latency (measured at start),
# 20 children. Re-running continues runs/default.
search: $(STAMP)
	$(BIN)/mnas search --space mnasnet --device host --evaluator standalone --controller ppo --reward soft \
	  --steps 5 --batch 4 --epochs 1 --out runs/default --resume

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .cache
