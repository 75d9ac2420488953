// Command workspace-standin serves a stand-in for a Databricks workspace on 127.0.0.1:
// the Databricks CLI's own fake workspace (package libs/testserver, which the CLI's
// acceptance tests run the real binary against), so that tests/test_bundle_cli.py can
// run `databricks bundle deploy` with nothing leaving the machine.
//
// It prints its URL on the first line of stdout, logs every request the fake has no
// handler for on stderr (prefixed "standin: error:"), and stops when stdin closes or
// on SIGINT/SIGTERM.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/databricks/cli/libs/testserver"
)

// process stands in for the *testing.T that testserver.New expects: it has no test to
// fail, so errors are reported on stderr and fatal ones end the process.
type process struct {
	ctx      context.Context
	cleanups []func()
}

func (p *process) Log(args ...any)                 { fmt.Fprintln(os.Stderr, args...) }
func (p *process) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (p *process) Error(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"standin: error:"}, args...)...)
}

func (p *process) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "standin: error: "+format+"\n", args...)
}

func (p *process) Fatal(args ...any) {
	p.Error(args...)
	p.FailNow()
}

func (p *process) Fatalf(format string, args ...any) {
	p.Errorf(format, args...)
	p.FailNow()
}

func (p *process) Skip(args ...any)                 { p.Fatal(args...) }
func (p *process) Skipf(format string, args ...any) { p.Fatalf(format, args...) }
func (p *process) FailNow()                         { p.stop(); os.Exit(1) }
func (p *process) Cleanup(f func())                 { p.cleanups = append(p.cleanups, f) }
func (p *process) Context() context.Context         { return p.ctx }
func (p *process) Setenv(key, value string)         { _ = os.Setenv(key, value) }
func (p *process) Helper()                          {}

func (p *process) TempDir() string {
	dir, err := os.MkdirTemp("", "workspace-standin-")
	if err != nil {
		p.Fatal(err)
	}
	p.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (p *process) stop() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	p := &process{ctx: ctx}
	// httptest listens on 127.0.0.1 with a free port.
	server := testserver.New(p)
	testserver.AddDefaultHandlers(server)
	fmt.Println(server.URL)

	// Stop when the parent closes stdin (it exited or is done) or on a signal.
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		cancel()
	}()
	<-ctx.Done()
	p.stop()
}
