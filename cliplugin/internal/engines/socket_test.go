package engines

import (
	"context"
	"testing"
)

func TestSocketOnHost(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"unix:///run/fsim/h1/docker.sock", "/run/fsim/h1/docker.sock"},
		{"ssh://root@h1/run/my/docker.sock", "/run/my/docker.sock"},
		{"tcp://h1:2376", DefaultSocket},
	} {
		e := &Engine{Host: tc.host}
		if tc.host[:3] == "ssh" {
			e.LearnSocket(context.Background()) // the path alone: no engine call
		}
		if got := e.SocketOnHost(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.host, got, tc.want)
		}
	}
}
