// Package criucheck finds out, through go-criu, which CRIU the host has and
// which kernel features migration can use there.
package criucheck

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	criu "github.com/checkpoint-restore/go-criu/v7"
	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"

	"github.com/docker-fleet/fleet/shared/api"
)

// Check asks the CRIU at path for its version and features; it also returns
// the version as go-criu's number (major*10000+minor*100+sublevel), 0 if none.
func Check(path string) (api.CRIUInfo, int) {
	c := criu.MakeCriu()
	c.SetCriuPath(path)
	v, err := c.GetCriuVersion()
	if err != nil {
		return api.CRIUInfo{Error: explain(err)}, 0
	}
	info := api.CRIUInfo{Version: FormatVersion(v)}
	f, err := c.FeatureCheck(&rpc.CriuFeatures{
		MemTrack:  proto.Bool(true),
		LazyPages: proto.Bool(true),
	})
	if err != nil {
		info.Error = "feature check failed: " + explain(err)
		return info, v
	}
	info.Features = api.CRIUFeatures{MemTrack: f.GetMemTrack(), LazyPages: f.GetLazyPages()}
	return info, v
}

// FormatVersion turns go-criu's major*10000+minor*100+sublevel into "4.2.1".
func FormatVersion(v int) string {
	s := fmt.Sprintf("%d.%d", v/10000, v/100%100)
	if v%100 != 0 {
		s += fmt.Sprintf(".%d", v%100)
	}
	return s
}

func explain(err error) string {
	msg := err.Error()
	// The host launcher exits 127 when the host has no criu, like a shell.
	if errors.Is(err, fs.ErrNotExist) || strings.Contains(msg, "exit status 127") {
		return "CRIU is not installed on the host"
	}
	return msg
}
