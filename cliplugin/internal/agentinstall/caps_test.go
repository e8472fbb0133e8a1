package agentinstall

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

// pluginGz is a plugin tarball like packaging's, with the repository's
// manifest.
func pluginGz(t *testing.T) []byte {
	cfg, err := os.ReadFile("../../../manifest/config.json")
	assert.NilError(t, err)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		body []byte
	}{{"config.json", cfg}, {"rootfs/fleet-agent", []byte("\x7fELF agent")}} {
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body))}))
		_, err := tw.Write(f.body)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	assert.NilError(t, gz.Close())
	return buf.Bytes()
}

// installedConfig reads config.json back from the tar init sends.
func installedConfig(t *testing.T, r io.Reader) (map[string]any, []string) {
	tr := tar.NewReader(r)
	var cfg map[string]any
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		assert.NilError(t, err)
		names = append(names, h.Name)
		if h.Name == "config.json" {
			assert.NilError(t, json.NewDecoder(tr).Decode(&cfg))
		}
	}
	return cfg, names
}

func capsOf(t *testing.T, cfg map[string]any) []string {
	var out []string
	for _, c := range cfg["linux"].(map[string]any)["capabilities"].([]any) {
		out = append(out, c.(string))
	}
	return out
}

func TestManifestAsksForEveryCapability(t *testing.T) {
	cfg, _ := installedConfig(t, mustPlain(t, pluginGz(t)))
	want := append(slices.Clone(api.RequiredCaps), api.OptionalCaps...)
	assert.Check(t, sameCaps(capsOf(t, cfg), want), "manifest/config.json lists %v", capsOf(t, cfg))
}

func mustPlain(t *testing.T, gz []byte) io.Reader {
	r, err := gzip.NewReader(bytes.NewReader(gz))
	assert.NilError(t, err)
	return r
}

// The probe is the agent's report of what the host's root has (faked
// here): a host whose root has CAP_SYS_RESOURCE gets an agent that asks for
// it; this machine's, whose root lacks it, one that does not.
func TestPluginAsksForWhatTheHostHas(t *testing.T) {
	gz := pluginGz(t)
	everything := append(slices.Clone(api.RequiredCaps), api.OptionalCaps...)
	withoutRes := slices.DeleteFunc(slices.Clone(everything), func(c string) bool { return c == api.CapSysResource })

	for name, tc := range map[string]struct {
		host  []string
		known bool
		want  []string
	}{
		"root has all":                {everything, true, everything},
		"root lacks CAP_SYS_RESOURCE": {withoutRes, true, withoutRes},
		"not known yet":               {nil, false, api.RequiredCaps},
	} {
		caps := Capabilities(tc.host, tc.known)
		assert.Check(t, sameCaps(caps, tc.want), "%s: %v", name, caps)
		r, err := withCapabilities(gz, caps)
		assert.NilError(t, err)
		cfg, names := installedConfig(t, r)
		assert.Check(t, sameCaps(capsOf(t, cfg), tc.want), name)
		assert.Check(t, is.Equal(slices.Contains(capsOf(t, cfg), api.CapSysResource), slices.Contains(tc.host, api.CapSysResource)), name)
		// The rest of the plugin is as built.
		assert.Check(t, is.DeepEqual(names, []string{"config.json", "rootfs/fleet-agent"}), name)
		assert.Check(t, is.Equal(cfg["entrypoint"].([]any)[0], "/fleet-agent"), name)
		assert.Check(t, cfg["linux"].(map[string]any)["allowAllDevices"].(bool), name)
	}
}

func TestSameCaps(t *testing.T) {
	assert.Check(t, sameCaps([]string{"A", "B"}, []string{"B", "A"}))
	assert.Check(t, !sameCaps([]string{"A", "B"}, []string{"A"}))
	assert.Check(t, !sameCaps(nil, []string{"A"}))
}

// fakeEngine installs an agent as an engine whose root has root does: one
// that asks for more is not started; a started one reports root's.
type fakeEngine struct {
	root     []string
	installs [][]string
}

func (e *fakeEngine) install(caps []string) ([]string, error) {
	e.installs = append(e.installs, caps)
	for _, c := range caps {
		if !slices.Contains(e.root, c) {
			return nil, errors.New("enabling plugin: unable to apply caps: operation not permitted")
		}
	}
	return e.root, nil
}

func TestFitCapabilitiesToTheHost(t *testing.T) {
	everything := append(slices.Clone(api.RequiredCaps), api.OptionalCaps...)
	withoutRes := slices.DeleteFunc(slices.Clone(everything), func(c string) bool { return c == api.CapSysResource })

	for name, tc := range map[string]struct {
		root, recorded []string
		want           []string
		installs       int
	}{
		"new host whose root has all":        {everything, nil, everything, 2},
		"new host lacking CAP_SYS_RESOURCE":  {withoutRes, nil, withoutRes, 2},
		"recorded host whose root has all":   {everything, everything, everything, 1},
		"recorded host lacking it":           {withoutRes, withoutRes, withoutRes, 1},
		"host that lost it since the record": {withoutRes, everything, withoutRes, 3},
		"host that gained it since":          {everything, withoutRes, everything, 2},
	} {
		e := &fakeEngine{root: tc.root}
		got, err := Fit(tc.recorded, e.install)
		assert.NilError(t, err, name)
		assert.Check(t, sameCaps(got, tc.want), "%s: %v", name, got)
		assert.Check(t, is.Len(e.installs, tc.installs), name)
		assert.Check(t, sameCaps(e.installs[len(e.installs)-1], tc.want), name)
	}

	// A root without one of the required ones: no agent, and the reason.
	e := &fakeEngine{root: api.RequiredCaps[1:]}
	_, err := Fit(nil, e.install)
	assert.Check(t, is.ErrorContains(err, "unable to apply caps"))
	assert.Check(t, is.Len(e.installs, 1))
}
