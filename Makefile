# snnhw: `make install` sets up .venv with everything the targets need; `make demo`; `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.snnhw-installed

.PHONY: install system-deps demo test docs clean

# Debian packages: RTL tools for the fpga target (simulation, lint, synthesis, iCE40 place and route), Chromium to test the HTML report as a person sees it.
DEBIAN_PACKAGES := iverilog verilator yosys nextpnr-ice40 fpga-icestorm chromium
DEBIAN_TOOLS := iverilog verilator yosys nextpnr-ice40 icepack chromium

install: system-deps $(STAMP)

system-deps:
	@missing=""; for t in $(DEBIAN_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null; \
	fi

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[torch,loihi,ecp5,dev]"
	# lava-nc 0.10.0 declares Python<3.11, so pip refuses it as a dependency; its requirements come
	# from the [loihi] extra above and snnhw.targets.loihi.lava_compat makes it import on 3.11.
	$(PY) -m pip install -q --no-deps --ignore-requires-python lava-nc==0.10.0
	# lava-dl only for its netx loader (tests load network.net with it); its slayer half needs
	# torch<2.4 and is stubbed by snnhw.targets.loihi.lava_compat.import_netx.
	$(PY) -m pip install -q --no-deps --ignore-requires-python lava-dl==0.6.0
	# neurobench only for its metric definitions (tests/test_report.py compares the report's counts
	# with them); its declared dependencies (tonic, librosa, numba, torchaudio) serve its datasets.
	$(PY) -m pip install -q --no-deps neurobench==2.3.0
	touch $(STAMP)

demo: install
	$(PY) examples/demo.py demo-build

test: install
	$(PY) -m pytest -q -n 2 --durations=10

docs: install
	$(PY) docs/gen_cli_reference.py
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-build site .pytest_cache .hypothesis
