# The two commands of the README: `make run` (the default pipeline) and `make test`.
VENV ?= .venv
RECIPE ?= recipes/smollm2.yaml
PYTEST_ARGS ?=

.PHONY: setup run test clean

# Re-run set-up when the dependencies or the set-up script change.
$(VENV)/.installed: pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh $(VENV)
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/hermes-train pipeline $(RECIPE)

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
