package specfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
)

// needsBuildKit is why build keys of BuildKit alone are refused.
const needsBuildKit = "it needs BuildKit, and docker fleet builds with the manager engine's classic builder"

// Build is an image a Compose service builds before it runs: once, with
// the manager's engine, from a local directory.
type Build struct {
	Service string `json:"service"`
	// Image is the tag: the service's image:, else PROJECT-SERVICE:latest
	// (as docker compose names it).
	Image string `json:"image"`
	// Context is an absolute directory; Dockerfile is within it, relative.
	Context    string             `json:"context"`
	Dockerfile string             `json:"dockerfile"`
	Args       map[string]*string `json:"args,omitempty"`
	Target     string             `json:"target,omitempty"`
	Labels     map[string]string  `json:"labels,omitempty"`
	NoCache    bool               `json:"noCache,omitempty"`
	Pull       bool               `json:"pull,omitempty"`
}

// buildOf reads a service's build (nil: it has none). compose-go has made
// the context absolute; the keys the classic builder lacks were refused
// by checkService.
func buildOf(c types.ServiceConfig, project string) (*Build, error) {
	bc := c.Build
	if bc == nil {
		return nil, nil
	}
	b := &Build{
		Service: c.Name, Image: c.Image, Context: bc.Context, Dockerfile: bc.Dockerfile,
		Target: bc.Target, NoCache: bc.NoCache, Pull: bc.Pull,
	}
	if len(bc.Args) > 0 {
		b.Args = map[string]*string(bc.Args)
	}
	if len(bc.Labels) > 0 {
		b.Labels = map[string]string(bc.Labels)
	}
	if b.Image == "" {
		b.Image = strings.ToLower(project+"-"+c.Name) + ":latest"
		if _, err := reference.ParseNormalizedNamed(b.Image); err != nil {
			return nil, fmt.Errorf("build: the image's default name %s is not one docker takes: name it with image:", b.Image) //nolint:staticcheck // ST1005: ends with the Compose key to set
		}
	}
	if strings.Contains(b.Context, "://") || strings.HasPrefix(b.Context, "git@") {
		return nil, fmt.Errorf("build.context: %q: not supported by docker fleet: it builds from a local directory", b.Context)
	}
	if fi, err := os.Stat(b.Context); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build.context: %s: not a directory", b.Context)
	}
	if b.Dockerfile == "" {
		b.Dockerfile = "Dockerfile"
	}
	df := b.Dockerfile
	if !filepath.IsAbs(df) {
		df = filepath.Join(b.Context, df)
	}
	rel, err := filepath.Rel(b.Context, df)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("build.dockerfile: %s is outside the context %s: docker fleet sends the context alone", b.Dockerfile, b.Context)
	}
	if fi, err := os.Stat(df); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("build.dockerfile: %s: no such file", df)
	}
	b.Dockerfile = filepath.ToSlash(rel)
	return b, nil
}
