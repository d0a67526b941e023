# linux/arm64: cross-build with cgo and test under qemu-user (docs/arm64.md).
#
#   make cross-tools       aarch64 gcc, arm64 libc, qemu-user (Debian's packages, as root)
#   make build-arm64       every command into build/linux-arm64/bin/
#                          (extra linker flags: make build-arm64 LDFLAGS='-X ...')
#   make test-arm64        the pure packages, inference, storage under emulation
#   make test-arm64-short  the subset `make test` runs (2-3 minutes)

ARM64_CC  ?= aarch64-linux-gnu-gcc
ARM64_DIR := build/linux-arm64
# LDFLAGS given to make (command line or another makefile) goes to go's
# -ldflags; one inherited from the environment is left alone, since there it
# usually holds C linker flags.
ARM64_LDFLAGS = $(if $(filter environment%,$(origin LDFLAGS)),,$(LDFLAGS))
# NVML's header marks many calls deprecated; cgo would print each one.
ARM64_CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
ARM64_ENV := CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=$(ARM64_CC) CGO_CFLAGS="$(ARM64_CGO_CFLAGS)"

.PHONY: cross-tools build-arm64 test-arm64 test-arm64-short

cross-tools:
	@scripts/arm64-tools.sh

build-arm64: cross-tools
	@command -v $(ARM64_CC) >/dev/null 2>&1 || { echo "build-arm64: $(ARM64_CC) not found; run make cross-tools as root (Debian: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross)" >&2; exit 1; }
	$(ARM64_ENV) $(GO) build -ldflags '$(ARM64_LDFLAGS)' -o $(ARM64_DIR)/bin/ ./cmd/...

# The script checks the tools (installing them as root), then runs
# build-arm64 itself: without them it skips, or fails under VIGIL_REQUIRE_DEPS=1.
test-arm64: deps
	ARM64_CC=$(ARM64_CC) ARM64_CGO_CFLAGS="$(ARM64_CGO_CFLAGS)" GO=$(GO) MAKE=$(MAKE) scripts/test-arm64.sh full

test-arm64-short: deps
	ARM64_CC=$(ARM64_CC) ARM64_CGO_CFLAGS="$(ARM64_CGO_CFLAGS)" GO=$(GO) MAKE=$(MAKE) scripts/test-arm64.sh short
