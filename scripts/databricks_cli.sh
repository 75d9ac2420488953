#!/usr/bin/env bash
# Builds the genuine Databricks CLI and the workspace stand-in into .cache/bin, for
# tests/test_bundle_cli.py, with this machine's Go. The CLI comes from its Go module,
# github.com/databricks/cli, through the Go module proxy (`go install`); when the proxy
# refuses the module (it answers 403 for every version), from the CLI's source tree
# kept beside the repository, ../shared/vendor/databricks-cli/ (its README has the
# recipe followed here; DATABRICKS_CLI_SOURCE names another tarball). The module's
# dependencies come from the proxy either way; nothing is downloaded from anywhere else.
# Go's module and build caches (GOMODCACHE, GOCACHE: by default under $HOME, kept
# between CI runs on one machine) make a rebuild take seconds; a build whose binary
# already says this version is not redone.
#
# Never fails the caller: when the build is impossible (no Go, neither the module nor
# the source, no network), the reason goes to .cache/bin/databricks.unavailable; the
# tests then skip and print it (under CI=true they fail with it).
set -uo pipefail
cd "$(dirname "$0")/.."

version="${DATABRICKS_CLI_VERSION:?set DATABRICKS_CLI_VERSION (the Makefile does)}"
bin="$PWD/.cache/bin"
reason="$bin/databricks.unavailable"
mkdir -p "$bin"
rm -f "$reason"

unavailable() {
  printf '%s\n' "$1" >"$reason"
  echo "databricks CLI: not built: $1" >&2
  exit 0
}

if [[ -x "$bin/databricks" && -x "$bin/workspace-standin" ]] &&
  "$bin/databricks" --version 2>/dev/null | grep -q "v$version\$"; then
  exit 0 # already built at this version
fi
command -v go >/dev/null 2>&1 || unavailable "no Go toolchain (go) on PATH to build github.com/databricks/cli@v$version"

# The source tarball: named, or in ../shared/vendor beside this checkout, or beside the
# main checkout when this is a linked git worktree.
source_tarball() {
  local name="databricks-cli/databricks-cli-$version-src.tar.gz" common
  if [[ -n "${DATABRICKS_CLI_SOURCE:-}" ]]; then
    echo "$DATABRICKS_CLI_SOURCE"
    return
  fi
  if [[ -f "../shared/vendor/$name" ]]; then
    echo "$(cd ../shared/vendor && pwd)/$name"
    return
  fi
  common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
    [[ -f "$common/../../shared/vendor/$name" ]] &&
    echo "$(cd "$common/../../shared/vendor" && pwd)/$name"
}

start=$(date +%s)
log="$bin/databricks.build.log"
: >"$log"
tree="" # the unpacked source, when the CLI is built from it
# The module's main package builds a binary named `cli`.
if GOBIN="$bin" GOFLAGS=-buildvcs=false go install "github.com/databricks/cli@v$version" >>"$log" 2>&1; then
  mv -f "$bin/cli" "$bin/databricks"
else
  refused="go install github.com/databricks/cli@v$version failed: $(grep -m1 -E 'error|Forbidden|refused|not available|cannot' "$log" || tail -n1 "$log")"
  tarball=$(source_tarball)
  [[ -n "$tarball" && -f "$tarball" ]] ||
    unavailable "$refused; and no source tarball databricks-cli-$version-src.tar.gz in ../shared/vendor/databricks-cli/ (or \$DATABRICKS_CLI_SOURCE)"
  echo "databricks CLI: the proxy refused the module; building from $tarball" >&2
  tree="$PWD/.cache/databricks-cli-$version"
  # Unpacked once per version; a partial unpack (no go.mod yet) is redone.
  if [[ ! -f "$tree/go.mod" ]]; then
    rm -rf "$tree" && mkdir -p "$tree" &&
      tar -xzf "$tarball" -C "$tree" >>"$log" 2>&1 ||
      unavailable "could not unpack $tarball: $(tail -n1 "$log")"
  fi
  # -trimpath: the build cache then serves a tree unpacked anywhere. The -X flags make
  # the binary call itself v$version (without them it says v1.14.0-dev).
  if ! (cd "$tree" && go mod download && GOFLAGS=-buildvcs=false go build -trimpath \
    -ldflags "-s -w -X github.com/databricks/cli/internal/build.buildProjectName=cli -X github.com/databricks/cli/internal/build.buildVersion=$version" \
    -o "$bin/databricks" .) >>"$log" 2>&1; then
    unavailable "building the CLI from $tarball failed: $(tail -n1 "$log")"
  fi
fi

# The stand-in: our tests/workspace_standin/main.go against the same CLI version (the
# module, or the unpacked tree through a replace), in a copy so that go.mod and go.sum
# changes stay under .cache, not in the source tree.
src="$PWD/.cache/workspace_standin"
rm -rf "$src" && mkdir -p "$src"
cp tests/workspace_standin/main.go tests/workspace_standin/go.mod "$src/"
if ! (cd "$src" && go mod edit -require="github.com/databricks/cli@v$version" &&
  if [[ -n "$tree" ]]; then go mod edit -replace="github.com/databricks/cli=$tree"; fi &&
  go mod tidy && GOFLAGS=-buildvcs=false go build -trimpath -o "$bin/workspace-standin" .) >>"$log" 2>&1; then
  unavailable "building tests/workspace_standin failed: $(tail -n1 "$log")"
fi
echo "databricks CLI v$version and workspace stand-in built in $(( $(date +%s) - start )) s"
