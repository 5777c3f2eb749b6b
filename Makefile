# Galley developer commands. `make help` lists them.
.DEFAULT_GOAL := help
CARGO ?= cargo
# `galley stack`: where its state lives, and extra flags for `make up` (e.g. STACK_FLAGS="--replicas rss-worker=2").
STATE ?= stack
STACK_FLAGS ?=
COMPONENT ?= nginx
GALLEY_RELEASE = $(or $(CARGO_TARGET_DIR),target)/release/galley

.PHONY: help run test check fmt lint bench bench-rss bench-amqp bench-stack build clean init up status logs down prune \
	image compose-up compose-down compose-test

help: ## List every target with its description
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-13s\033[0m %s\n", $$1, $$2}'

run: ## Run every service in one process on embedded defaults (http://127.0.0.1:8080)
	$(CARGO) run --release -p galley -- serve

test: ## Run the whole test suite (unit, contract, API, cucumber, binary, failure drills); installs/starts Redis and RabbitMQ if missing
	scripts/test-prerequisites.sh
	$(CARGO) test --workspace --locked --no-fail-fast
	@if [ -n "$$GALLEY_TEST_MONGODB_URI" ]; then \
		echo "Running the MongoDB suites against GALLEY_TEST_MONGODB_URI"; \
		$(CARGO) test --locked -p galley-mongo --test contracts -- --include-ignored && \
		$(CARGO) test --locked -p galley-mongo --test leased -- --include-ignored && \
		$(CARGO) test --locked -p rss-api --test standalone -- --include-ignored mongodb && \
		$(CARGO) test --locked -p galley --test distributed -- --include-ignored mongodb; \
	else \
		echo "NOTE: the MongoDB suites were SKIPPED (shown as ignored above; no server): set GALLEY_TEST_MONGODB_URI=mongodb://... to run them."; \
	fi

check: fmt lint test ## Format check, lints and tests: what a pull request must pass

fmt: ## Check formatting (cargo fmt --all to fix)
	$(CARGO) fmt --all -- --check

lint: ## Clippy on every target, warnings denied
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

bench: ## Read-path load test (wrk) of the release build against a bare-axum ceiling; prints ratios
	scripts/bench.sh

bench-rss: ## End-to-end RSS ingestion: 1,000-entry feed POST → job done, entries/s (release build)
	$(CARGO) bench -p galley --bench ingest

bench-amqp: ## RabbitMQ publish-with-confirm throughput against the local broker, as a ratio of aio-pika's in the same run
	scripts/python-tools.sh
	$(CARGO) bench -p galley-rabbitmq --bench publish

bench-stack: ## The local stack: up cold/warm, resident memory, GET /recipes through nginx vs direct (ratio)
	scripts/bench-stack.sh

build: ## Build release binaries of every service
	$(CARGO) build --release --workspace --bins --locked

clean: ## Remove build artefacts
	$(CARGO) clean

$(GALLEY_RELEASE): $(shell find galley crates services -name '*.rs' -o -name Cargo.toml) Cargo.lock deploy/nginx/nginx.conf.template
	$(CARGO) build --release -p galley --locked

init: $(GALLEY_RELEASE) ## Create the local stack's state in ./stack: CA + certificate, cookie key, configuration (idempotent)
	$(GALLEY_RELEASE) stack --state-dir $(STATE) init

up: $(GALLEY_RELEASE) ## Start the local stack (Redis, RabbitMQ, services, nginx on https://localhost:8443); STACK_FLAGS=... for more
	$(GALLEY_RELEASE) stack --state-dir $(STATE) up $(STACK_FLAGS)

status: ## Health, pid, uptime and restarts of every stack component (non-zero exit when one is down)
	$(GALLEY_RELEASE) stack --state-dir $(STATE) status

logs: ## Last lines of a stack component's log: make logs COMPONENT=rss-worker
	$(GALLEY_RELEASE) stack --state-dir $(STATE) logs $(COMPONENT)

down: ## Stop every stack component (SIGTERM, then SIGKILL after 20 s)
	$(GALLEY_RELEASE) stack --state-dir $(STATE) down

prune: ## Stop the stack and delete ./stack (certificates, data, logs); asks first
	$(GALLEY_RELEASE) stack --state-dir $(STATE) prune

image: $(GALLEY_RELEASE) ## Build the container image localhost/galley:latest (podman, docker format) from the release binary
	scripts/containers.sh image $(GALLEY_RELEASE)

compose-up: $(GALLEY_RELEASE) ## Build the local images and start deploy/compose/compose.local.yaml (https://localhost:8443)
	scripts/containers.sh up $(GALLEY_RELEASE)

compose-down: ## Stop the local compose stack; remove its containers, networks and volumes
	scripts/containers.sh down

compose-test: ## Base image if missing, images, compose up, every flow through nginx, a killed worker, down
	scripts/python-tools.sh
	$(CARGO) test --locked -p galley --test compose -- --nocapture
