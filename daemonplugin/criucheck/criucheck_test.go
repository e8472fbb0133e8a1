package criucheck

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestFormatVersion(t *testing.T) {
	for _, tc := range []struct {
		n int
		s string
	}{{40201, "4.2.1"}, {40200, "4.2"}, {31700, "3.17"}, {31701, "3.17.1"}} {
		assert.Check(t, is.Equal(FormatVersion(tc.n), tc.s))
	}
}

func TestCheckMissingBinary(t *testing.T) {
	info, v := Check("/nonexistent/criu")
	assert.Check(t, is.Equal(v, 0))
	assert.Check(t, is.Equal(info.Version, ""))
	assert.Check(t, is.Contains(info.Error, "not installed"))
}

func TestPatches(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "criu")
	assert.NilError(t, os.WriteFile(bin, []byte("a criu binary"), 0o755))
	assert.Check(t, is.Len(Patches(bin), 0), "no stamp: a stock build")

	stamp := "# CRIU built by docker fleet\nbinary-sha256 " + fileSHA256(bin) + "\npatch rlimits-from-proc 66379cdb\n"
	assert.NilError(t, os.WriteFile(bin+StampSuffix, []byte(stamp), 0o644))
	assert.Check(t, is.DeepEqual(Patches(bin), []string{"rlimits-from-proc"}))

	// A binary replaced after the build (a package, by hand) is not the
	// fleet's build any more, whatever the stamp says.
	assert.NilError(t, os.WriteFile(bin, []byte("a stock criu binary"), 0o755))
	assert.Check(t, is.Len(Patches(bin), 0))
}
