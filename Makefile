# The README's two commands. Both install what is missing (Debian packages, the virtual
# environment, the package) and are safe to run again: a second run skips the installs.
VENV ?= .venv
# Flags for `virtactor demo`, e.g. DEMO_ARGS="--hosts test --bus embedded".
DEMO_ARGS ?=
STAMP := $(VENV)/.virtactor-installed

.PHONY: demo test lint services system-packages-demo system-packages-test clean

demo: system-packages-demo $(STAMP)
	$(VENV)/bin/virtactor demo $(DEMO_ARGS)

test: system-packages-test $(STAMP) services lint
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check agent actors schemas tests bench
	$(VENV)/bin/ruff format --check agent actors schemas tests bench
	$(VENV)/bin/mypy

services:
	deploy/local/services.sh start

system-packages-demo:
	deploy/local/system-packages.sh demo

system-packages-test:
	deploy/local/system-packages.sh test

$(STAMP): pyproject.toml
	deploy/local/venv.sh $(VENV)
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
