# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODELS ?= models
DATA   ?= sample
PORT   ?= 50051
METRICS_PORT ?= 9100
HTTP_PORT ?= 8080
# The ecosystem's own clients (tritonclient, tensorflow-serving-api) for the protocol tests.
ECOSYSTEM ?= .venv-ecosystem
# The server without TensorFlow (client + server, no [tensorflow] extra): the LiteRT runtime only.
LITE ?= .venv-lite

# The statistics oracles, heavy: their own venv. NannyML (the CBPE oracle of
# tests/client/test_monitoring_cbpe_oracle.py) and confseq (Howard et al.'s boundaries, the oracle of
# tests/client/test_always_valid_oracle.py; an sdist that compiles against Boost, libboost-dev).
ORACLE ?= .venv-oracle

.PHONY: setup setup-ecosystem setup-lite setup-oracle demo fleet test test-all bench bench-quick bench-peers proto clean

setup: $(VENV)/.installed

$(VENV)/.installed: client/pyproject.toml server/pyproject.toml trainer/pyproject.toml tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'client[report]' -e 'server[tensorflow]' -e trainer -r tests/requirements.txt
	touch $@

setup-ecosystem: $(ECOSYSTEM)/.installed

$(ECOSYSTEM)/.installed: tests/ecosystem/setup.sh tests/ecosystem/requirements.txt tests/ecosystem/requirements-nodeps.txt tests/ecosystem/check_env.py
	PYTHON=$(PYTHON) bash tests/ecosystem/setup.sh $(ECOSYSTEM)

# What `pip install digits-server` gives: no TensorFlow. tests/server/test_litert_only.py serves from it.
setup-lite: $(LITE)/.installed

$(LITE)/.installed: client/pyproject.toml server/pyproject.toml
	$(PYTHON) -m venv $(LITE)
	$(LITE)/bin/pip install --quiet --upgrade pip
	$(LITE)/bin/pip install --quiet -e client -e server
	touch $@

setup-oracle: $(ORACLE)/.installed

$(ORACLE)/.installed: tests/oracle/requirements.txt tests/oracle/requirements-no-build-isolation.txt
	$(PYTHON) -m venv $(ORACLE)
	$(ORACLE)/bin/pip install --quiet --upgrade pip
	$(ORACLE)/bin/pip install --quiet -r tests/oracle/requirements.txt
	$(ORACLE)/bin/pip install --quiet --no-build-isolation -r tests/oracle/requirements-no-build-isolation.txt
	touch $@

# Trains the three cells if no models exist, starts the server, classifies sample digits.
demo: setup
	@if [ -z "$$(ls -d $(MODELS)/*/[0-9]* 2>/dev/null)" ]; then \
		$(BIN)/digits-train --cells rnn,lstm,gru --recipe seed --seed 0 --data $(DATA) --out $(MODELS); fi
	@$(BIN)/python -m digits_server --models $(MODELS) --port $(PORT) --metrics-port $(METRICS_PORT) \
		--http-port $(HTTP_PORT) --ready-file $(VENV)/demo-ready.json & echo $$! > $(VENV)/demo-server.pid; \
	trap 'kill $$(cat $(VENV)/demo-server.pid) 2>/dev/null' EXIT; \
	rm -f $(VENV)/demo-ready.json; \
	for i in $$(seq 1 600); do [ -f $(VENV)/demo-ready.json ] && break; sleep 0.2; done; \
	$(BIN)/digits models --target localhost:$(PORT) && \
	for cell in rnn lstm gru; do \
		$(BIN)/digits eval --target localhost:$(PORT) --data $$($(BIN)/python -m digits_trainer.data --sample-path) \
			--model $$cell --limit 300 || exit 1; done; \
	echo "REST on localhost:$(HTTP_PORT) (docs/protocols.md), e.g.: curl -s localhost:$(HTTP_PORT)/v1/models/lstm"; \
	curl -s localhost:$(HTTP_PORT)/v1/models/lstm; echo

# Three replicas on loopback sharing models/ and one model-config file, a real Envoy in front on
# localhost:$(PORT) (docs/scaling.md). Ctrl-C stops them all.
fleet: setup
	@if [ -z "$$(ls -d $(MODELS)/*/[0-9]* 2>/dev/null)" ]; then \
		$(BIN)/digits-train --cells rnn,lstm,gru --recipe seed --seed 0 --data $(DATA) --out $(MODELS); fi
	$(BIN)/python deploy/fleet.py --models $(MODELS) --replicas $(or $(REPLICAS),3) --port $(PORT)

test: setup setup-ecosystem setup-lite setup-oracle
	$(BIN)/python -m pytest -q

test-all: setup setup-ecosystem setup-lite setup-oracle
	$(BIN)/python -m pytest -q -m "slow or not slow"

# The benchmark harness (bench/run.py): our server against echo / model.predict / naive SavedModel
# servers in one run; writes bench/results/latest-{full,quick}.{json,md,png}.
bench: setup
	$(BIN)/python bench/run.py

bench-quick: setup
	$(BIN)/python bench/run.py --quick

# The full harness plus MLServer 1.7.1 (the peer) under the same v2 load; makes .venv-mlserver
# (bench/peers/setup.sh, from PyPI) on first use. Not part of `make test`.
bench-peers: setup
	$(BIN)/python bench/run.py --peers

proto: setup
	$(BIN)/python proto/generate.py

clean:
	rm -rf $(VENV) $(ECOSYSTEM) $(LITE) $(ORACLE) $(MODELS) .venv-mlserver
