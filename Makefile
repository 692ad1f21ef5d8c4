# Two commands for a fresh Debian 12 machine, as root; each does all its set-up, idempotently.
#   make run    serve metrics with the built-in default config (host processes included)
#   make test   run every test
VENV ?= $(CURDIR)/.venv
PYTEST_ARGS ?=

.PHONY: setup run test bench

setup:
	@tools/setup.sh all

run: setup
	$(VENV)/bin/ig prometheus --host $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in bench/*; do [ -x "$$b" ] && echo "== $$b" && $$b; done
