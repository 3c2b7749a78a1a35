# Two commands set up a fresh machine:  make run  (the app)  and  make test  (the tests).
#   make run          installs the runtime (requirements.txt) into .venv, then serves the app
#   make test         also installs the test extras (requirements-dev.txt, which includes requirements-train.txt)
#                     and Debian's chromium and zbar-tools, then runs every test
#   make serve        serves a room from REPLICAS app processes (default 2) behind Debian's haproxy, rooms in Debian's
#                     Redis (installs both once; app/ui/replicas.py, docs/load.md)
#   make screenshots  regenerates docs/screenshots/*.png in the real browser (ARGS='explore classify' for some pages)
# pip runs only when a requirement file (or pyproject.toml) changed: one stamp for the runtime, one for the extras.
# The in-browser runtime (onnxruntime-web, pinned in app/ui/browser_runtime_web/onnxruntime-web.json) is fetched from
# the npm registry into static/onnxruntime-web/ once per manifest: the app serves it itself (docs/browser_runtime.md).
# Both install the project editable (`pip install -e .`): `import app` and `ofa-explorer` work from anywhere.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip install --quiet --disable-pip-version-check
hash     = $(shell cat $(1) | sha256sum | cut -c1-12)
RUN_REQS := requirements.txt pyproject.toml
DEV_REQS := $(RUN_REQS) requirements-train.txt requirements-dev.txt
RUN_STAMP := $(VENV)/.stamp-run-$(call hash,$(RUN_REQS))
DEV_STAMP := $(VENV)/.stamp-dev-$(call hash,$(DEV_REQS))
WEB_MANIFEST := app/ui/browser_runtime_web/onnxruntime-web.json
WEB_STAMP := static/onnxruntime-web/.stamp-$(call hash,$(WEB_MANIFEST))
PORT    ?= 8501
# more Streamlit options for `make run`, e.g. SERVER='--server.address 0.0.0.0' (ARGS go to the app: --supernet)
SERVER  ?=

.DEFAULT_GOAL := install
.PHONY: install install-dev run serve serve-tools test test-fast browser screenshots bench clean-venv

$(RUN_STAMP): $(RUN_REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps -e .
	rm -f $(VENV)/.stamp-run-* $(VENV)/.installed-* && touch $@

$(DEV_STAMP): $(DEV_REQS) $(RUN_STAMP)
	$(PIP) -r requirements-dev.txt
	rm -f $(VENV)/.stamp-dev-* && touch $@

$(WEB_STAMP): $(WEB_MANIFEST) scripts/fetch_web_runtime.py
	$(PYTHON) scripts/fetch_web_runtime.py
	rm -f static/onnxruntime-web/.stamp-* && touch $@

install: $(RUN_STAMP) $(WEB_STAMP)

install-dev: $(DEV_STAMP)

run: $(RUN_STAMP) $(WEB_STAMP)
	$(PY) -m app.ui.serve --server.port $(PORT) $(SERVER) -- $(ARGS)

REPLICAS ?= 2
serve: $(RUN_STAMP) $(WEB_STAMP) serve-tools
	$(PY) -m app.ui.replicas --replicas $(REPLICAS) --port $(PORT) $(if $(ADDRESS),--address $(ADDRESS)) $(if $(SERVER),-- $(SERVER))

# Debian's haproxy (the reverse proxy), redis-server (the rooms shared by replicas) and tcmalloc (the servers' malloc,
# app/allocator.py): for make serve and the tests
serve-tools:
	@{ command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy; } && command -v redis-server >/dev/null 2>&1 \
	  && /sbin/ldconfig -p | grep -q libtcmalloc_minimal.so.4 || { \
	  echo "installing Debian's haproxy, redis-server and libtcmalloc-minimal4 (make serve: replicas behind a proxy, rooms shared in Redis)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy redis-server libtcmalloc-minimal4 >/dev/null; }

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@command -v zbarimg >/dev/null 2>&1 || { \
	  echo "installing Debian's zbar-tools (zbarimg reads the Present page's QR code in the browser tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq zbar-tools >/dev/null; }

# Two test processes, one per core, each with one thread (a file's tests stay in one process: they share fixtures).
TEST_ENV := TEST_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

test: $(DEV_STAMP) $(WEB_STAMP) browser serve-tools
	$(PY) scripts/check_requirements.py
	$(TEST_ENV) $(PY) -m pytest -q -n 2 --dist loadfile

test-fast: $(DEV_STAMP) $(WEB_STAMP)
	$(PY) -m pytest -q -m "not browser"

screenshots: $(DEV_STAMP) $(WEB_STAMP) browser
	$(PY) scripts/screenshots.py $(ARGS)

bench: $(DEV_STAMP)
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
