# Two commands for a fresh Debian 12 machine, as root; each does all its set-up, idempotently.
#   make run    serve metrics with the built-in default config (host processes included)
#   make test   the lint gate (make lint: ruff and mypy, configured in pyproject.toml), then every test
#   make install / uninstall    put `ig` and `kubectl-gadget` on PATH (links in BINDIR) / take them off
#   make install-service        the systemd unit and /etc/ig/config.yaml (README, "Running as a service")
VENV ?= $(CURDIR)/.venv
PYTEST_ARGS ?=
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/ig
INSTALL_ENV = IG_VENV='$(VENV)' BINDIR='$(BINDIR)' UNITDIR='$(UNITDIR)' CONFDIR='$(CONFDIR)'

.PHONY: setup run lint test bench install uninstall install-service

setup:
	@IG_VENV=$(VENV) tools/setup.sh all

install: setup
	@$(INSTALL_ENV) tools/install.sh links

uninstall:
	@$(INSTALL_ENV) tools/install.sh unlink

install-service: install
	@$(INSTALL_ENV) tools/install.sh service

run: setup
	$(VENV)/bin/ig prometheus --host $(ARGS)

# A finding fails the build before any test runs; ruff's and mypy's own lines say where.
lint: setup
	@$(VENV)/bin/ruff check --quiet || { echo "make lint: ruff found the problems above" >&2; exit 1; }
	@$(VENV)/bin/mypy || { echo "make lint: mypy found the problems above" >&2; exit 1; }

test: lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in bench/*; do [ -x "$$b" ] && echo "== $$b" && $$b; done
