// Package sockprobe finds the unix socket on which a given engine serves
// its API, from a short-lived container that init runs on that engine
// (api.ProbeArg) when the docker context does not say where the socket is
// (ssh://, tcp://): in the host's network namespace, with the host's root
// filesystem at api.ProbeHostRoot, read-only. The sockets listening in the
// namespace are listed by the kernel (/proc/net/unix); the one whose
// engine reports the wanted ID is the engine's, whatever its path.
package sockprobe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker-fleet/fleet/shared/api"
)

// perSocket bounds how long one candidate socket may take to say which
// engine it is (a socket that is no engine's may never answer HTTP).
const perSocket = time.Second

// Main prints the host path of the socket of the engine whose ID is
// args[0] and returns 0, or says on stderr why not and returns 1.
func Main(args []string) int {
	if len(args) != 1 || args[0] == "" {
		fmt.Fprintf(os.Stderr, "usage: fleet-agent %s ENGINE_ID\n", api.ProbeArg)
		return 2
	}
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	paths, err := Listening(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, p := range Candidates(paths) {
		if id, err := engineID(filepath.Join(api.ProbeHostRoot, p)); err == nil && id == args[0] {
			fmt.Println(p)
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "none of the %d unix sockets listening on this host serves engine %s\n", len(paths), args[0])
	return 1
}

// Listening is the paths of the stream sockets listening in the network
// namespace whose /proc/net/unix r is; abstract sockets have none.
func Listening(r io.Reader) ([]string, error) {
	const (
		acceptcon = 0x10000 // __SO_ACCEPTCON: listening
		stream    = 1       // SOCK_STREAM
	)
	var out []string
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		// Num RefCount Protocol Flags Type St Inode Path
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 || !strings.HasPrefix(f[7], "/") {
			continue
		}
		var flags, typ uint64
		if _, err := fmt.Sscanf(f[3]+" "+f[4], "%x %x", &flags, &typ); err != nil {
			continue
		}
		if flags&acceptcon != 0 && typ == stream {
			out = append(out, strings.Join(f[7:], " "))
		}
	}
	return out, sc.Err()
}

// Candidates orders the paths: those named like an engine's socket first,
// once each.
func Candidates(paths []string) []string {
	out := slices.Clone(paths)
	slices.SortStableFunc(out, func(a, b string) int {
		return rank(a) - rank(b)
	})
	return slices.Compact(out)
}

func rank(p string) int {
	switch base := filepath.Base(p); {
	case base == "docker.sock":
		return 0
	case strings.Contains(base, "docker") && !strings.Contains(p, "/plugins/"):
		return 1
	case strings.Contains(p, "containerd") || strings.Contains(p, "/plugins/"):
		return 3
	}
	return 2
}

// engineID asks the socket at path for the engine's info.
func engineID(path string) (string, error) {
	c := &http.Client{
		Timeout: perSocket,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}},
	}
	resp, err := c.Get("http://engine/info")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var info struct{ ID string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return "", err
	}
	return info.ID, nil
}
