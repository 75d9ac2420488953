module github.com/zoom-ingest/zoom_ingest/tests/workspace_standin

go 1.26.0

// The CLI's own fake workspace; the same version as the CLI binary the tests run
// (Makefile: DATABRICKS_CLI_VERSION).
require github.com/databricks/cli v1.13.0
