# fama-ryu build / CI entry points.  See `make help`.
#
# The venv is built with CPython 3.11 explicitly (ryu 4.34 is untested on 3.12+).
# ryu 4.34 only builds with setuptools<67 in its *build* environment, so it is
# installed in its own step with `--build-constraint constraints-build.txt`
# (needs pip >= 25.3, hence the pinned pip) and `--no-cache-dir`, so that a
# wheel left in ~/.cache/pip cannot hide a broken build step.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Prefer pyenv's 3.11 (the project's reference interpreter), else python3.11 on PATH.
PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.11.*/bin/python3.11) \
                      $(shell command -v python3.11 2>/dev/null))
VENV        := .venv
VPY         := $(VENV)/bin/python
PIP_VERSION := 26.3
RYU_VERSION := 4.34
STAMP       := $(VENV)/.fama-venv-stamp
VENV_INPUTS := requirements.txt requirements-test.txt constraints-build.txt pyproject.toml Makefile

SYSTEM_PKGS := openvswitch-switch mininet tshark iproute2 tcpdump iputils-ping ethtool

PYTEST_ARGS ?=

.PHONY: help venv system-deps test lint demo demo-inprocess bench clean

help:
	@echo "make venv         create/refresh $(VENV) (Python 3.11, ryu $(RYU_VERSION), test tools, fama-ryu -e)"
	@echo "make system-deps  apt-get install missing: $(SYSTEM_PKGS)"
	@echo "make test         run pytest (PYTEST_ARGS='...' to pass options)"
	@echo "make lint         ruff check + mypy"
	@echo "make demo         (root) handovers on a real lab: 3 DARs on OVS, the controller, fama-mn;"
	@echo "                  build/demo-handover.{png,json}, build/demo-handover-bu.pcap (< 1 min)"
	@echo "make demo-inprocess  in-process FAMA exchange, build/demo.pcap + build/keys, tshark summary"
	@echo "make bench        run benchmarks/bench_micro.py (per-BU costs of the core)"
	@echo "make clean        remove $(VENV) and build/"

venv: $(STAMP)

$(STAMP): $(VENV_INPUTS)
	@if [ -z "$(PYTHON)" ] || ! "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
	  echo "venv: need CPython 3.11 (got PYTHON='$(PYTHON)'); install it or pass PYTHON=/path/to/python3.11" >&2; \
	  exit 1; \
	fi
	@if [ ! -x $(VPY) ] || ! $(VPY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then \
	  echo "venv: creating $(VENV) with $(PYTHON)"; \
	  rm -rf $(VENV); \
	  "$(PYTHON)" -m venv $(VENV); \
	fi
	$(VPY) -m pip install --quiet --upgrade "pip==$(PIP_VERSION)"
	$(VPY) -m pip install --no-cache-dir --build-constraint constraints-build.txt \
	  -c requirements.txt "ryu==$(RYU_VERSION)"
	$(VPY) -m pip install -r requirements-test.txt
	$(VPY) -m pip install -e .
	@# Plain `ryu-manager` needs the eventlet shim before ryu imports: this
	@# .pth applies fama_ryu.eventlet_compat in ryu-manager processes only.
	@echo 'import sys; sys.argv and sys.argv[0].endswith("ryu-manager") and __import__("fama_ryu.eventlet_compat")' \
	  > "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/fama_ryu_manager_shim.pth"
	@touch $@
	@echo "venv: ready ($(VENV))"

# Debian packages for labs, integration tests and pcap decoding.  Installs only
# what dpkg-query reports missing; runs `apt-get update` once, only then.
system-deps:
	@missing=""; \
	for p in $(SYSTEM_PKGS); do \
	  if ! dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q ' ok installed$$'; then \
	    missing="$$missing $$p"; \
	  fi; \
	done; \
	if [ -z "$$missing" ]; then echo "system-deps: all present ($(SYSTEM_PKGS))"; exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
	  echo "system-deps: missing Debian packages:$$missing" >&2; \
	  echo "system-deps: not root; run 'sudo make system-deps' (or apt-get install$$missing)" >&2; \
	  exit 1; \
	fi; \
	echo "system-deps: installing:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections; \
	apt-get update; \
	apt-get install -y --no-install-recommends $$missing

# pytest exit status 5 ("no tests collected") fails this target on purpose.
test: venv system-deps
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The README's main job: fama-lab (namespaces, Open vSwitch, the controller, the
# MN agent), an MN moving dar1 -> dar2 -> dar3 -> dar1 under a TCP stream and a
# 20 ms ping; removes its lab on the way out (also on failure or Ctrl-C).
demo: venv system-deps
	@if [ "$$(id -u)" -ne 0 ]; then echo "demo: run as root (namespaces, Open vSwitch)" >&2; exit 2; fi
	@mkdir -p build
	$(VPY) -m fama_ryu.lab_demo --out build

# The FAMA exchange in one process, no network: every message to build/demo.pcap.
demo-inprocess: venv system-deps
	@mkdir -p build
	$(VENV)/bin/fama demo --pcap build/demo.pcap --keys-out build/keys
	@echo "== tshark's independent decode of build/demo.pcap (details: tshark -r build/demo.pcap -O mipv6)"
	@tshark -r build/demo.pcap -Y mipv6 2>/dev/null

bench: venv
	$(VPY) benchmarks/bench_micro.py

clean:
	rm -rf $(VENV) build *.egg-info
