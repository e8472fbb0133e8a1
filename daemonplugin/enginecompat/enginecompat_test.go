package enginecompat

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestNeedsNetnsHolder(t *testing.T) {
	for _, v := range []string{"20.10.24+dfsg1", "23.0.6", "25.0.5", "26.1.5+dfsg1", "27.5.1", "dev", ""} {
		assert.Check(t, !NeedsNetnsHolder(v), v)
	}
	for _, v := range []string{"26.0.0", "28.0.0", "28.5.2+dfsg4", "29.1.3", "30.0.0-rc.1"} {
		assert.Check(t, NeedsNetnsHolder(v), v)
	}
}
