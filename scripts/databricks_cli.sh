#!/usr/bin/env bash
# Builds the genuine Databricks CLI and the workspace stand-in into .cache/bin, for
# tests/test_bundle_cli.py. Both come from the CLI's Go module, github.com/databricks/cli,
# through the Go module proxy, built with this machine's Go (`go install`); nothing is
# downloaded from anywhere else. Go's module and build caches (GOMODCACHE, GOCACHE: by
# default under $HOME, kept between CI runs on one machine) make a rebuild quick.
#
# Never fails the caller: when the build is impossible (no Go, the proxy refuses the
# module, no network), the reason goes to .cache/bin/databricks.unavailable and the test
# skips, printing it.
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

start=$(date +%s)
log="$bin/databricks.build.log"
# The module's main package builds a binary named `cli`.
if ! GOBIN="$bin" GOFLAGS=-buildvcs=false go install "github.com/databricks/cli@v$version" >"$log" 2>&1; then
  unavailable "go install github.com/databricks/cli@v$version failed: $(grep -m1 -E 'error|Forbidden|refused|not available|cannot' "$log" || tail -n1 "$log")"
fi
mv -f "$bin/cli" "$bin/databricks"

# The stand-in: our tests/workspace_standin/main.go against the same module version, in
# a copy so that go.sum is written under .cache, not into the source tree.
src="$PWD/.cache/workspace_standin"
rm -rf "$src" && mkdir -p "$src"
cp tests/workspace_standin/main.go tests/workspace_standin/go.mod "$src/"
if ! (cd "$src" && sed -i "s|github.com/databricks/cli v[0-9.]*|github.com/databricks/cli v$version|" go.mod &&
  go mod tidy && GOFLAGS=-buildvcs=false go build -o "$bin/workspace-standin" .) >>"$log" 2>&1; then
  unavailable "building tests/workspace_standin failed: $(tail -n1 "$log")"
fi
echo "databricks CLI v$version and workspace stand-in built in $(( $(date +%s) - start )) s"
