package criucheck

import (
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
