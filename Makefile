# Vigil — build, test and benchmark. Every target does its own set-up on a
# fresh Debian machine with Go: `make test` fetches the Go modules, ONNX
# Runtime (through npm, once) and generates the demo models.

GO        ?= go
ORT_VER   := 1.24.3
MODELS    := build/models
MODEL_FILES := $(MODELS)/primary.onnx $(MODELS)/shadow.onnx $(MODELS)/degraded.onnx $(MODELS)/primary-v2.onnx $(MODELS)/primary-bad.onnx $(MODELS)/primary-slow.onnx
# Packages with goroutines of their own run under the race detector, the
# others once without it (running the former twice cost CI eight minutes).
# agent/drill/render draws plots and has no concurrency of its own (43 s
# under -race against 5 s without): it runs with the plain packages.
RACE_PKGS = $$($(GO) list ./inference/... ./watchdog/... ./agent/... ./hw/... ./storage/... ./sync/... | grep -v -E '/agent/drill/render$$')
PLAIN_PKGS = $$($(GO) list ./... | grep -v -E '/vigil/(inference|watchdog|agent|hw|storage|sync)(/|$$)') ./agent/drill/render
# Tests run one package at a time (-p 1): several packages' tests hold real
# deadlines, and on a small CI machine the others' load would eat them.
# Set by .ci/run: tests that would skip for a missing dependency fail instead.
export VIGIL_REQUIRE_DEPS

.PHONY: all build deps tools ort models test test-race vet fmt-check bench fuzz demo fleet-demo dr-demo clean help

all: build

help:
	@echo "make demo     start vigild with the demo models and drive it with vigil-sim for a minute"
	@echo "make fleet-demo  a broker, vigild with the cloud link, the ingester, signed fleet commands, model rollouts and a fleet drill"
	@echo "make dr-demo  disaster recovery: checkpoints uploaded, the vehicle's computer lost, restored onto a new unit"
	@echo "make deps     fetch ONNX Runtime $(ORT_VER) (npm registry) and generate the demo models"
	@echo "make test     vet, then every test (race detector on concurrent packages); does its own set-up"
	@echo "make bench    the vigil-bench suites (inference, failover, socket, storage, sync, checkpoint, models, restart), --quick"
	@echo "make build    build the commands into build/bin"
	@echo "make clean    remove build/ (fetched libraries stay in third_party/)"

build:
	$(GO) build -o build/bin/ ./cmd/...

demo: deps build
	scripts/demo.sh

# fleet-demo: the README's operator walk-through — a broker, vigild with the
# cloud link, vigil-fleet ingest, and signed commands the vehicle carries out.
fleet-demo: deps build
	scripts/fleet-demo.sh

# dr-demo: disaster recovery with real processes — checkpoints uploaded, the
# vehicle's data destroyed, restored onto a new unit from the fleet's copy,
# the loss measured (README, "Disaster recovery").
dr-demo: deps build
	scripts/dr-demo.sh

# tools: what a fresh Debian machine lacks for `make deps` and the tests:
# npm (to fetch ONNX Runtime), Mosquitto (the broker the sync tests run) and
# python3 (a second client of the socket protocol, written from its document).
# Installs them from Debian's packages when running as root; otherwise the
# fetch script and the tests say what is missing.
tools:
	@missing=""; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing from Debian's packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

ort: tools
	scripts/fetch-onnxruntime.sh

models: $(MODEL_FILES)

$(MODEL_FILES) &: $(wildcard models/demo/*.go models/onnxgraph/*.go cmd/vigil-models/*.go)
	$(GO) run ./cmd/vigil-models -out $(MODELS)

deps: ort models
	$(GO) mod download

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps fmt-check vet
	scripts/test-fetch-onnxruntime.sh
	scripts/console-tools.sh
	$(GO) test -count=1 -p 1 $(PLAIN_PKGS)
	$(GO) test -count=1 -p 1 -race $(RACE_PKGS)
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 10s ./agent/wire/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 5s ./sync/batch/
	$(GO) test -run '^$$' -fuzz FuzzScanSegment -fuzztime 5s ./sync/sink/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 5s ./sync/ckptlink/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 5s ./agent/drill/
	# The README's operator walk-through, end to end (about 40 s), and the
	# disaster-recovery story (about 20 s).
	$(GO) build -o build/bin/ ./cmd/...
	scripts/fleet-demo.sh
	scripts/dr-demo.sh
	# The Debian packages for amd64 and arm64 (lintian: no errors), then
	# installed, run, upgraded and purged on this machine (as root only:
	# it installs into the machine; CI runs as root).
	$(MAKE) --no-print-directory package-tools package
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory install-test; \
	elif [ -n "$$VIGIL_REQUIRE_DEPS" ]; then echo "install-test needs root (VIGIL_REQUIRE_DEPS is set)" >&2; exit 1; \
	else echo "install-test skipped: it needs root (it installs the packages into this machine)"; fi
	# The arm64 build, proved under qemu-user: every command cross-built, a
	# short subset of the tests run (docs/arm64.md; make test-arm64 runs all).
	$(MAKE) --no-print-directory test-arm64-short

bench: deps
	$(GO) run ./cmd/vigil-bench inference --quick
	$(GO) run ./cmd/vigil-bench failover --quick
	$(GO) run ./cmd/vigil-bench socket --quick
	$(GO) run ./cmd/vigil-bench storage --quick
	$(GO) run ./cmd/vigil-bench sync --quick
	$(GO) run ./cmd/vigil-bench checkpoint --quick
	$(GO) run ./cmd/vigil-bench models --quick
	$(GO) run ./cmd/vigil-bench restart --quick

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-5m} ./agent/wire/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-5m} ./sync/batch/
	$(GO) test -run '^$$' -fuzz FuzzScanSegment -fuzztime $${FUZZTIME:-5m} ./sync/sink/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $${FUZZTIME:-5m} ./sync/ckptlink/

# crash-test: 100 rounds of kill -9 against a storage writer in a child
# process; every record it reported durable must survive (go test runs 5).
.PHONY: crash-test
crash-test:
	VIGIL_CRASH_ROUNDS=100 $(GO) test -count=1 -timeout 30m -run 'TestCrashKill9' -v ./storage/

clean:
	rm -rf build

# Packaging (mk/package.mk) and the arm64 build under emulation (mk/arm64.mk).
-include $(wildcard mk/*.mk)
