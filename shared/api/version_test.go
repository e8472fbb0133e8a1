package api

import (
	"encoding/json"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestInfoAPI(t *testing.T) {
	assert.Check(t, is.Equal(Info{}.API(), 1), "no API version: an agent from before versioning")
	assert.Check(t, is.Equal(Info{APIVersion: 1}.API(), 1))
	assert.Check(t, is.Equal(Info{APIVersion: 2}.API(), 2))
	assert.Check(t, is.Equal(Info{APIVersion: 7}.API(), 7))

	// What an agent of API 1 sends has no apiVersion at all.
	var old Info
	assert.NilError(t, json.Unmarshal([]byte(`{"node":"h2","agentVersion":"0.9"}`), &old))
	assert.Check(t, is.Equal(old.API(), 1))

	b, err := json.Marshal(Info{Node: "h1", APIVersion: APIVersion})
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(b), `"apiVersion":5`))
	var back Info
	assert.NilError(t, json.Unmarshal(b, &back))
	assert.Check(t, is.Equal(back.API(), APIVersion))
}

// TestStampedAPI: a build stamped to speak an older API speaks it; a stamp
// that is no older API is ignored.
func TestStampedAPI(t *testing.T) {
	assert.Check(t, is.Equal(stampedAPI(""), latestAPI))
	assert.Check(t, is.Equal(stampedAPI("1"), 1))
	assert.Check(t, is.Equal(stampedAPI("2"), 2))
	assert.Check(t, is.Equal(stampedAPI("9"), latestAPI))
	assert.Check(t, is.Equal(stampedAPI("0"), latestAPI))
	assert.Check(t, is.Equal(stampedAPI("x"), latestAPI))
}
