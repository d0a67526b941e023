# Debian packages (docs/packaging.md).
#
#   make package-tools  what packaging, lintian and the install test need, from
#                       Debian's packages (as root; only what is missing)
#   make package        build/packages/: vigil and vigil-fleet for amd64 and
#                       arm64, vigil-models (all); lintian on each, no errors
#   make install-test   install, run, upgrade, remove and purge the amd64
#                       packages on this machine (as root; scripts/install-test.sh)
#
# PKG_ARCHS=amd64 skips arm64; PKG_VERSION overrides the version from git.
# The binaries carry the version (internal/version) through the linker:
# amd64 built into build/pkgbin/amd64/, arm64 by build-arm64 (mk/arm64.mk).

PKG_DIR     ?= build/packages
PKG_BIN     := build/pkgbin
PKG_TOOL    := $(PKG_BIN)/vigil-package
PKG_ARCHS   ?= amd64 arm64
PKG_VERSION ?=
PKG_COMPRESSION ?= xz
# A configuration shipped instead of the built-in one (the install test's upgrade).
PKG_CONFIG  ?=
PKG_VERPKG  := github.com/vigil-av/vigil/internal/version
PKG_CMDS    := ./cmd/vigild ./cmd/vigilctl ./cmd/vigil-fleet
# NVML's header marks many calls deprecated; cgo would print each one.
PKG_CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: package package-tools package-tool package-debs package-lint install-test

package-tools:
	@missing=""; \
	command -v lintian >/dev/null 2>&1 || missing="$$missing lintian"; \
	command -v dpkg-deb >/dev/null 2>&1 || missing="$$missing dpkg"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v adduser >/dev/null 2>&1 || missing="$$missing adduser"; \
	command -v setpriv >/dev/null 2>&1 || missing="$$missing util-linux"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing from Debian's packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "package-tools: missing$$missing; install them from Debian's packages as root" >&2; \
	fi

package-tool:
	$(GO) build -o $(PKG_TOOL) ./cmd/vigil-package

# package-debs builds the packages without linting them (the install test
# builds twice and needs no lintian).
package-debs: ort models package-tool $(if $(filter arm64,$(PKG_ARCHS)),cross-tools)
	@set -e; rm -f $(PKG_DIR)/*.deb; \
	ver="$${PKG_VERSION:-$$($(PKG_TOOL) version)}"; \
	sem="$$($(PKG_TOOL) version --semver)"; commit="$$($(PKG_TOOL) version --commit)"; \
	ld="-s -w -X $(PKG_VERPKG).Version=$$sem -X $(PKG_VERPKG).Commit=$$commit"; \
	models="--models $(MODELS)"; \
	for arch in $(PKG_ARCHS); do \
	  case $$arch in \
	  amd64) bin=$(PKG_BIN)/amd64; \
	    echo "package: building $(PKG_CMDS) for amd64 (version $$sem)"; \
	    CGO_ENABLED=1 GOOS=linux GOARCH=amd64 CGO_CFLAGS="$(PKG_CGO_CFLAGS)" \
	      $(GO) build -ldflags "$$ld" -o $$bin/ $(PKG_CMDS);; \
	  arm64) bin=$(ARM64_DIR)/bin; \
	    echo "package: building the arm64 commands with make build-arm64 (version $$sem)"; \
	    $(MAKE) --no-print-directory build-arm64 LDFLAGS="$$ld";; \
	  *) echo "package: PKG_ARCHS: unknown architecture $$arch (amd64, arm64)" >&2; exit 1;; \
	  esac; \
	  $(PKG_TOOL) build --arch $$arch --bin $$bin --version "$$ver" --out $(PKG_DIR) \
	    --compression $(PKG_COMPRESSION) $(if $(PKG_CONFIG),--config $(PKG_CONFIG)) $$models; \
	  models=""; \
	done

# lintian on every package built, failing on errors (warnings are listed).
package-lint:
	@command -v lintian >/dev/null 2>&1 || { echo "package: lintian not found; run make package-tools as root" >&2; exit 1; }
	@set -e; for d in $(PKG_DIR)/*.deb; do \
	  echo "lintian $$d"; \
	  lintian --fail-on error --allow-root --tag-display-limit 0 "$$d"; \
	done

package: package-debs
	@$(MAKE) --no-print-directory package-lint PKG_DIR=$(PKG_DIR)

install-test: package-tools
	scripts/install-test.sh
