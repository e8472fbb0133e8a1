package agentinstall

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/docker-fleet/fleet/packaging"
	"github.com/docker-fleet/fleet/shared/api"
)

// Capabilities are what the agent is installed with on an engine whose
// host's root has the capabilities host: every required one, and the
// optional ones the host has. A managed plugin gets its capabilities from
// config.json when it is created, all or nothing (an engine does not
// start a plugin that asks for one its root lacks), so init rewrites the
// list per engine. Until the host is known (known false) it asks for the
// required ones only: those every root has.
func Capabilities(host []string, known bool) []string {
	out := slices.Clone(api.RequiredCaps)
	if !known {
		return out
	}
	for _, c := range api.OptionalCaps {
		if slices.Contains(host, c) {
			out = append(out, c)
		}
	}
	return out
}

// Fit installs the agent with the capabilities that fit its host, through
// install, which installs it with caps and returns what the agent reports
// the host's root has (the probe). It starts from the capabilities
// recorded for the host (nil: none yet, so the required ones), installs
// once more with those the report shows when they differ, and falls back
// to the last capabilities an agent started with when an install fails
// (a stale record, a capability the engine's runc does not know). It
// returns the capabilities the agent runs with.
func Fit(recorded []string, install func(caps []string) (host []string, err error)) ([]string, error) {
	caps := Capabilities(recorded, recorded != nil)
	safe := Capabilities(nil, false)
	upgraded := false
	for {
		host, err := install(caps)
		if err != nil {
			if slices.Equal(caps, safe) {
				return nil, err
			}
			caps = safe
			continue
		}
		want := Capabilities(host, true)
		if len(host) == 0 || upgraded || slices.Equal(want, caps) {
			return caps, nil // an agent that cannot tell keeps what it has
		}
		safe, caps, upgraded = caps, want, true
	}
}

// sameCaps reports whether two capability lists hold the same ones.
func sameCaps(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// withCapabilities is the plugin tarball (gzipped, as embedded) as the
// plain tar the Engine API takes, its config.json asking for caps, with
// extra files added.
func withCapabilities(gz []byte, caps []string, extra ...extraFile) (io.Reader, error) {
	tr, err := packaging.Uncompress(gz)
	if err != nil {
		return nil, err
	}
	in := tar.NewReader(tr)
	var buf bytes.Buffer
	out := tar.NewWriter(&buf)
	for {
		hdr, err := in.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("plugin tarball: %w", err)
		}
		if hdr.Name != "config.json" {
			if err := out.WriteHeader(hdr); err != nil {
				return nil, err
			}
			if _, err := io.Copy(out, in); err != nil {
				return nil, err
			}
			continue
		}
		cfg, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		if cfg, err = setCapabilities(cfg, caps); err != nil {
			return nil, fmt.Errorf("plugin config.json: %w", err)
		}
		hdr.Size = int64(len(cfg))
		if err := out.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := out.Write(cfg); err != nil {
			return nil, err
		}
	}
	for _, f := range extra {
		if err := out.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			return nil, err
		}
		if _, err := out.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// extraFile is a file added to a plugin's tarball.
type extraFile struct {
	name string
	data []byte
}

// setCapabilities sets linux.capabilities in a plugin's config.json,
// keeping every other field as it is.
func setCapabilities(config []byte, caps []string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(config, &doc); err != nil {
		return nil, err
	}
	var linux map[string]json.RawMessage
	if raw, ok := doc["linux"]; ok {
		if err := json.Unmarshal(raw, &linux); err != nil {
			return nil, err
		}
	}
	if linux == nil {
		linux = map[string]json.RawMessage{}
	}
	var err error
	if linux["capabilities"], err = json.Marshal(caps); err != nil {
		return nil, err
	}
	if doc["linux"], err = json.Marshal(linux); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}
