// Package testkit is what the end-to-end suites share: running commands and
// the docker CLI against the simulator's engines, by docker context.
package testkit

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// Result is what a command printed and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return "exit " + strconv.Itoa(r.Code) + "\nstdout:\n" + r.Stdout + "\nstderr:\n" + r.Stderr
}

// Run runs a command, for ten minutes at most.
func Run(t *testing.T, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return r
}

// Docker runs the docker CLI against the engine of a docker context.
func Docker(t *testing.T, ctxName string, args ...string) Result {
	t.Helper()
	return Run(t, "docker", append([]string{"--context", ctxName}, args...)...)
}

// MustDocker is Docker that fails the test on a non-zero exit.
func MustDocker(t *testing.T, ctxName string, args ...string) string {
	t.Helper()
	r := Docker(t, ctxName, args...)
	assert.Assert(t, r.Code == 0, "docker --context %s %v\n%s", ctxName, args, r)
	return strings.TrimSpace(r.Stdout)
}
