#!/usr/bin/env bash
# Install the Go-built dev tools aiaudit needs (buf, helm) into $REPO/.tools/bin.
#
# Why: a fresh CI/dev machine has Go but neither tool, and only language
# package registries are reachable (no release-binary downloads). `go install`
# builds them from the Go module proxy. Versions are pinned to releases that
# build with the machine's Go (1.26); GOTOOLCHAIN=local makes a release that
# wants a newer Go fail loudly instead of fetching a toolchain.
#
# Idempotent: a tool is (re)built only if missing or built from another version.
# Usage: scripts/install-tools.sh          -> prints the bin dir on stdout
#        export PATH="$(scripts/install-tools.sh):$PATH"
# Overrides: AIAUDIT_BUF_VERSION, AIAUDIT_HELM_VERSION.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
TOOLS_BIN="$REPO/.tools/bin"

BUF_VERSION="${AIAUDIT_BUF_VERSION:-v1.75.0}"
HELM_VERSION="${AIAUDIT_HELM_VERSION:-v3.22.0}"

log() { printf '[install-tools.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! command -v go >/dev/null 2>&1; then
    [ -x /usr/local/go/bin/go ] || die "go not found (Go 1.26 is required)"
    PATH="/usr/local/go/bin:$PATH"
fi

# Module version a Go binary was built from ("" if unknown/missing).
built_version() {
    [ -x "$1" ] || return 0
    go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3; exit }'
}

# install_tool NAME MODULE PACKAGE VERSION [LDFLAGS]
install_tool() {
    local name="$1" module="$2" pkg="$3" version="$4" ldflags="${5:-}" have
    have="$(built_version "$TOOLS_BIN/$name" "$module")"
    if [ "$have" = "$version" ]; then
        log "$name $version already installed"
        return 0
    fi
    log "installing $name $version (go install $pkg@$version)${have:+, replacing $have}"
    GOBIN="$TOOLS_BIN" GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
        go install -ldflags="$ldflags" "$pkg@$version" >&2 </dev/null
    have="$(built_version "$TOOLS_BIN/$name" "$module")"
    [ "$have" = "$version" ] || die "$name: expected $version, found '${have:-nothing}' in $TOOLS_BIN"
}

mkdir -p "$TOOLS_BIN"
install_tool buf github.com/bufbuild/buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
# helm's release builds stamp their full version via -ldflags; do the same so
# `helm version` (and chart kubeVersion/helm-version checks) see e.g. v3.22.0.
install_tool helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
printf '%s\n' "$TOOLS_BIN"
