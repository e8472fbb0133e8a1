package logs

import (
	"fmt"
	"io"
	"strings"

	"github.com/docker-fleet/fleet/shared/api"
)

// timeFormat is docker logs --timestamps': RFC 3339 with nanoseconds,
// fixed width so that the text lines up.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Printer prints lines as docker logs does: stdout's to Out, stderr's to
// Err, each after its time (Timestamps); a service's replicas each after
// its name, padded, and " | " (Prefix), as docker compose logs does.
type Printer struct {
	Out, Err   io.Writer
	Timestamps bool
	Prefix     bool
	width      int
}

// Pad makes room for the longest of names in the prefix.
func (p *Printer) Pad(names []string) {
	for _, n := range names {
		p.width = max(p.width, len(n))
	}
}

// Print prints one line of container name.
func (p *Printer) Print(name string, l api.LogLine) error {
	var b strings.Builder
	if p.Prefix {
		fmt.Fprintf(&b, "%-*s | ", p.width, name)
	}
	if p.Timestamps {
		b.WriteString(l.Time.UTC().Format(timeFormat))
		b.WriteByte(' ')
	}
	b.WriteString(l.Text)
	b.WriteByte('\n')
	w := p.Out
	if l.Stream == api.StreamStderr {
		w = p.Err
	}
	_, err := io.WriteString(w, b.String())
	return err
}
