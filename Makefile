# Two commands matter: `make demo` and `make test`. See README.md.
.PHONY: setup demo test lint unit e2e cluster-up cluster-down crd bench

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

lint: setup
	scripts/lint.sh

unit: setup
	scripts/pytest.sh tests -q

e2e: setup
	scripts/pytest.sh e2e -q

cluster-up:
	bash e2e/cluster/up.sh

cluster-down:
	bash e2e/cluster/down.sh

crd: setup
	.venv/bin/aifleet crd > crds/aifleet.dev_aiservices.yaml
	cp crds/aifleet.dev_aiservices.yaml charts/aifleet-operator/crds/aifleet.dev_aiservices.yaml
	.venv/bin/aifleet docs > docs/api.md
