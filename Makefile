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

# Default search (every setting is `mnas search`'s default, so what this runs is what the CLI tests cover):
# host CPU, mnasnet space, stand-alone proxy training, PPO, soft reward, target 0.8 x mnasnet-a1's host latency
# (measured at start), 20 children inside the latency band 0.85-1.0 x target, then the best child and the
# width-matched baselines (mnasnet-a1, mobilenetv3-large, mobilenetv2-1.0) in the reference training, 3 seeds.
# Re-running continues runs/default.
search: $(STAMP)
	$(BIN)/mnas search --device host --out runs/default --resume

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .cache
