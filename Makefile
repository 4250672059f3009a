# dicrepro: `make reproduce` and `make test` do all the set-up on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
VPY := $(VENV)/bin/python
PARAMS ?= params/tiny.yaml
PYTEST_ARGS ?=

.PHONY: setup reproduce test test-fast lab figures bench clean-run help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

# Each set-up step re-runs only when its inputs change (stamps under .setup/).
.setup/system: scripts/install_system.sh
	bash scripts/install_system.sh
	@mkdir -p .setup && touch $@

.setup/npm: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p .setup && touch $@

.setup/python: pyproject.toml scripts/install_python.sh
	bash scripts/install_python.sh
	@mkdir -p .setup && touch $@

setup: .setup/system .setup/npm .setup/python  ## install Debian packages, mermaid.js (npm) and .venv

reproduce: setup  ## run the whole pipeline on $(PARAMS) with papermill and regenerate figures/
	$(VPY) -m dicrepro run $(PARAMS)

test: setup  ## run the test suite (executes every notebook on params/smoke.yaml)
	@set +e; $(VPY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-fast: setup  ## the tests without the slow ones (no notebook run, no full training)
	$(VPY) -m pytest -m "not slow" $(PYTEST_ARGS)

figures: setup  ## regenerate figures/ from the recorded results of the last run (seconds)
	$(VPY) -m dicrepro figures $(PARAMS)

LAB_PORT ?= 8888
LAB_IP ?= 127.0.0.1
lab: setup  ## JupyterLab on notebooks/ with the project kernel (prints the URL to open; LAB_PORT, LAB_IP)
	@echo "Starting JupyterLab on notebooks/: open the http://$(LAB_IP):$(LAB_PORT)/lab?token=... URL it prints below"
	@# --allow-root only when running as root (containers), which JupyterLab otherwise refuses
	$(VPY) -m jupyter lab --notebook-dir=notebooks --no-browser --ip=$(LAB_IP) --port=$(LAB_PORT) \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

bench: setup  ## benchmarks (ratios against anchors measured in the same run)
	$(VPY) bench/render_throughput.py
	$(VPY) bench/metrics_speed.py
	$(VPY) bench/caption_speed.py
	$(VPY) bench/sft_backends.py  # needs runs/tiny (make reproduce); on a GPU it also runs 4-bit and unsloth
	$(VPY) bench/collate_cache.py  # needs runs/tiny (make reproduce)

clean-run:  ## delete runs/ (datasets, models, predictions of earlier runs)
	rm -rf runs/
