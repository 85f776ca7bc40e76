# EchoPilot Platform. Needs only Go (see go.work for the version).
#   make run    the whole suite on SQLite under .data/, gateway on :8080
#   make run-tls  the same with every gRPC connection over TLS (a local CA
#               and certificates under .data/tls, mutual TLS between services)
#   make test   every module's tests (PostgreSQL tests run when
#               ECHOPILOT_TEST_POSTGRES_URL is set, and skip otherwise)

SHELL      := /bin/bash
BIN        := $(CURDIR)/.bin
MODULES     = $(shell go list -m -f '{{.Dir}}')
GOTEST_FLAGS ?= -count=1 -timeout 30m
TOOLS      := buf protoc-gen-go protoc-gen-go-grpc protoc-gen-grpc-gateway protoc-gen-openapiv2 oapi-codegen

.PHONY: run run-tls test test-race build tools generate check-generated lint breaking api-breaking bench load bench-queue bench-finops bench-audit bench-growth vet deploy-check deploy-build

run:
	go run ./platform/cmd/devstack

run-tls:
	go run ./platform/cmd/devstack --tls

test:
	go test $(GOTEST_FLAGS) $(addsuffix /...,$(MODULES))

test-race:
	go test -race $(GOTEST_FLAGS) $(addsuffix /...,$(MODULES))

vet:
	go vet $(addsuffix /...,$(MODULES))

build:
	go build -o $(BIN)/ $(addsuffix /cmd/...,$(filter-out $(CURDIR)/gen $(CURDIR)/e2e $(CURDIR)/bench,$(MODULES)))

# Kubernetes manifests and Dockerfiles, checked offline (deploy/ is its own
# module outside go.work, so the Kubernetes libraries stay out of the services).
deploy-check:
	cd deploy && GOWORK=off go vet ./... && GOWORK=off go test $(GOTEST_FLAGS) ./...

# Every deployable's static binary, built exactly as its Dockerfile builds it.
deploy-build:
	for df in deploy/docker/*.Dockerfile; do bash deploy/build.sh "$$(basename "$$df" .Dockerfile)" $(BIN)/static || exit 1; done

# Code generators are pinned in tools/go.mod (not part of go.work, so their
# dependencies never leak into the services).
tools: $(addprefix $(BIN)/,$(TOOLS))
$(addprefix $(BIN)/,$(TOOLS)): tools/go.mod tools/go.sum
	cd tools && GOWORK=off go build -o $(BIN)/ \
		github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 \
		github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen

# The OpenAPI 3.0 document the gateway serves is protoc-gen-openapiv2's
# Swagger 2.0 one with the gateway's wire rules applied (gateway/internal/apidoc);
# the e2e suite's REST client is generated from it.
generate: tools
	PATH="$(BIN):$$PATH" buf generate
	go run ./gateway/internal/apidoc/cmd/apidoc gen/openapi/echopilot.swagger.json gen/openapi/echopilot.openapi.json
	$(BIN)/oapi-codegen -config e2e/internal/apiclient/oapi-codegen.yaml gen/openapi/echopilot.openapi.json

# Fails when the committed gen/ differs from what buf generates.
check-generated: generate
	@git status --porcelain -- gen proto e2e/internal/apiclient | grep . && { echo "gen/ is stale: run make generate and commit"; exit 1; } || echo "gen/ is current"

lint: tools
	PATH="$(BIN):$$PATH" buf lint

# Compares the protos with the previous commit (skipped on the first one).
breaking: tools
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
		PATH="$(BIN):$$PATH" buf breaking --against '.git#ref=HEAD~1'; \
	else echo "no previous commit: breaking check skipped"; fi

# Compares the OpenAPI document with the previous commit's (oasdiff, in
# tools/apibreaking): a change that breaks clients fails unless the commit
# message says [api-breaking]. Skipped while the previous commit has none.
api-breaking:
	@if git cat-file -e HEAD~1:gen/openapi/echopilot.openapi.json 2>/dev/null; then \
		base=$$(mktemp) && git show HEAD~1:gen/openapi/echopilot.openapi.json > "$$base" && \
		cd tools/apibreaking && GOWORK=off go run . -base "$$base" -revision ../../gen/openapi/echopilot.openapi.json \
			-message "$$(git log -1 --format=%B)"; rc=$$?; rm -f "$$base"; exit $$rc; \
	else echo "no OpenAPI 3 document in the previous commit: API breaking check skipped"; fi

# Figures in BENCHMARKS.md come from these targets.
bench:
	cd platform && go test -run='^$$' -bench=Interceptor -benchtime=2s ./identity/

# The load commands run on SQLite, or on PostgreSQL when
# ECHOPILOT_DATABASE_URL is set; load measures a bare grpc-gateway baseline
# in the same run.
load:
	go run ./e2e/cmd/load -duration 10s -concurrency 16
	go run ./e2e/cmd/load -duration 10s -concurrency 1
	go run ./e2e/cmd/mixload -duration 60s -concurrency 16

# Queue jobs/s beside River, and pickup latency (PostgreSQL parts need
# ECHOPILOT_TEST_POSTGRES_URL).
bench-queue:
	cd bench && go test -run '^$$' -bench 'QueueWork|RiverWork|PickupLatency' -benchtime 1x ./
	cd services/queue && go test -run '^$$' -bench Throughput -benchtime 20000x -count 3 ./internal/store/

# FinOps summary latency at 1M usage records and 100k payments, and usage
# intake through the outbox (PostgreSQL parts need ECHOPILOT_TEST_POSTGRES_URL).
bench-finops:
	cd services/finops && go test -run '^$$' -bench SummaryAtScale -benchtime 300x -timeout 30m ./app/
	cd bench && go test -run '^$$' -bench UsageIntake -benchtime 3x ./

# Audit appends/s, full verification and proof latency at 1,000,000 entries
# (PostgreSQL parts need ECHOPILOT_TEST_POSTGRES_URL; seeding takes minutes).
bench-audit:
	cd services/audit && go test -run '^$$' -bench 'Append/.*/.*/batch=100$$' -benchtime 300x ./app/
	cd services/audit && go test -run '^$$' -bench 'Append/.*/.*/batch=1$$' -benchtime 3000x ./app/
	cd services/audit && go test -run '^$$' -bench LargeLog -benchtime 3x -timeout 40m ./app/

# Issue 14 at 1,000,000 entries: one scrub pass (s/pass, and the CPU share
# it keeps), and GET /api/audit/chain?limit=10 through the gateway on a
# 1,000,000-entry log against a 1,000-entry one, on SQLite and, when
# ECHOPILOT_TEST_POSTGRES_URL is set, on PostgreSQL. Seeding takes minutes;
# run it on a quiet machine. A failure or missed target (make says
# "ignored") does not stop the later measurements.
.PHONY: bench-audit-scale
bench-audit-scale:
	-cd services/audit && go test -v -run '^$$' -bench Scrub -benchtime 3x -timeout 60m ./app/
	-go run ./e2e/cmd/chainload
	if [ -n "$$ECHOPILOT_TEST_POSTGRES_URL" ]; then ECHOPILOT_DATABASE_URL="$$ECHOPILOT_TEST_POSTGRES_URL" go run ./e2e/cmd/chainload; fi

# Growth stats latency over 1,000,000 events and 100,000 referrers, and the
# payout CSV export of 10,000, 100,000 and 1,000,000 rows (PostgreSQL parts
# need ECHOPILOT_TEST_POSTGRES_URL; seeding takes minutes; with
# ECHOPILOT_MEASURE_LOCK=<file> the export benchmark holds that flock only
# while it measures).
bench-growth:
	cd services/growth && go test -run '^$$' -bench ReferralStatsAtScale -benchtime 2000x -timeout 60m ./app/
	cd services/growth && go test -run '^$$' -bench PayoutExport -benchtime 3x -timeout 60m ./app/
