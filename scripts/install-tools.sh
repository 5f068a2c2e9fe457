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

# The -ldflags a Go binary was built with ("" if none/missing).
built_ldflags() {
    [ -x "$1" ] || return 0
    go version -m "$1" 2>/dev/null | awk -F'\t' '$2 == "build" && index($3, "-ldflags=") == 1 {
        v = substr($3, 10); gsub(/^"|"$/, "", v); print v; exit }'
}

# install_tool NAME MODULE PACKAGE VERSION [LDFLAGS]
install_tool() {
    local name="$1" module="$2" pkg="$3" version="$4" ldflags="${5:-}" have
    have="$(built_version "$TOOLS_BIN/$name" "$module")"
    if [ "$have" = "$version" ] && [ "$(built_ldflags "$TOOLS_BIN/$name")" = "$ldflags" ]; then
        log "$name $version already installed"
        return 0
    fi
    log "installing $name $version (go install $pkg@$version)${have:+, replacing $have}"
    GOBIN="$TOOLS_BIN" GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -buildvcs=false" \
        go install -ldflags="$ldflags" "$pkg@$version" >&2 </dev/null
    have="$(built_version "$TOOLS_BIN/$name" "$module")"
    [ "$have" = "$version" ] || die "$name: expected $version, found '${have:-nothing}' in $TOOLS_BIN"
}

# The Kubernetes version helm assumes without a cluster (`helm template`, `helm lint`), as
# helm's own Makefile stamps it: its client-go v0.N is Kubernetes 1.N. Unstamped, a go-installed
# helm assumes v1.20.0 and refuses every chart that declares `kubeVersion: >=1.27.0-0` (the
# aiaudit chart does: gRPC probes), where a released helm binary renders it.
helm_kube_ldflags() {
    local gomod minor
    gomod="$(GOTOOLCHAIN=local go mod download -json "helm.sh/helm/v3@$1" </dev/null |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    [ -f "$gomod" ] || die "helm $1: go mod download found no go.mod"
    minor="$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$gomod")"
    [ -n "$minor" ] || die "helm $1: no k8s.io/client-go in $gomod"
    printf -- '-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=%s' "$minor"
    printf -- ' -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=%s' "$minor"
}

mkdir -p "$TOOLS_BIN"
install_tool buf github.com/bufbuild/buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
# helm's release builds stamp their full version via -ldflags, and the Kubernetes version
# it assumes without a cluster; do the same so `helm version` (and chart helm-version checks)
# see e.g. v3.22.0 and `helm template` checks a chart's kubeVersion against e.g. v1.37.0.
install_tool helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION $(helm_kube_ldflags "$HELM_VERSION")"
printf '%s\n' "$TOOLS_BIN"
