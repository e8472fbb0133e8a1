package main

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestCompletionArgs(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"docker-fleet", "__completeNoDesc", "migrate", "we"}, []string{"docker-fleet", "__completeNoDesc", "fleet", "migrate", "we"}},
		{[]string{"docker-fleet", "__complete", "fleet", "migrate", ""}, []string{"docker-fleet", "__complete", "fleet", "migrate", ""}},
		{[]string{"docker-fleet", "__complete"}, []string{"docker-fleet", "__complete", "fleet"}},
		{[]string{"docker-fleet", "fleet", "ps"}, []string{"docker-fleet", "fleet", "ps"}},
		{[]string{"docker-fleet"}, []string{"docker-fleet"}},
	} {
		assert.DeepEqual(t, completionArgs(c.in), c.want)
	}
}
