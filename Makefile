# humanscape: two commands on a fresh machine.
#   make demo   run the main job on the shipped real sample data (writes demo-output/)
#   make test   run the test suite
# Both create .venv (Python 3.11) if missing and install the pinned requirements first.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-install install clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --only-binary :all: -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/humanscape demo --out demo-output

test: $(STAMP)
	@sh scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

# Benchmarks on real data (need ../shared/data) and large synthetic scenes; results in docs/benchmarks.md.
# The peer-comparison extra (TorchGeo 0.8.1, ONNX Runtime) for bench/scale.py; never needed at run time.
bench-install: $(STAMP)
	$(BIN)/python -m pip install --quiet --only-binary :all: --no-deps torchgeo==0.8.1
	$(BIN)/python -m pip install --quiet --only-binary :all: einops kornia torchmetrics -c requirements.txt

bench: $(STAMP) bench-install
	$(BIN)/python bench/geodata.py
	$(BIN)/python bench/encoders.py --data ../shared/data
	$(BIN)/python bench/settlements.py --part polygons --trees 300
	$(BIN)/python bench/settlements.py --part points --trees 200
	$(BIN)/python bench/settlements.py --part throughput
	$(BIN)/python bench/settlements.py --part models
	$(BIN)/python bench/scale.py --part chips
	$(BIN)/python bench/scale.py --part memory
	$(BIN)/python bench/scale.py --part settlements

clean:
	rm -rf $(VENV) demo-output .pytest_cache
