# featureshare — every target installs what it needs: on a fresh machine `make demo` and `make test` are the
# whole set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install test demo lint bench reliability notebooks bootstrap-roles clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "featureshare needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[local,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

test: install
	$(BIN)/ruff check featureshare tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/featureshare local demo

lint: install
	$(BIN)/ruff check featureshare tests benchmarks

bench: install
	$(BIN)/python -m benchmarks.run $(if $(QUICK),--quick,)

reliability: install
	$(BIN)/python -m benchmarks.reliability

notebooks: install
	$(BIN)/python -m featureshare.notebooks_runner notebooks

# Plan by default; APPLY=1 applies. LOCAL=1 targets the embedded AWS whose variables are in the environment
# (as printed by `featureshare local serve`), using its <account>-admin profiles.
bootstrap-roles: install
	$(BIN)/featureshare $(if $(LOCAL),--config featureshare.example.toml,) bootstrap $(if $(APPLY),apply,plan) \
		$(if $(LOCAL),--create-execution-roles,) $(if $(MERGE_KEY_POLICIES),--merge-key-policies,) \
		$(if $(STRICT),--strict,)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
