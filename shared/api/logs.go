package api

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// LogsSuffix follows PathContainer + name: a container's logs.
//
// GET streams them as JSON lines, one LogLine each, oldest first: the live
// container's (read from its engine with timestamps, stdout and stderr kept
// apart), or with QueryKept=1 the parts this node kept of containers of
// that name that migrated away (whether or not one runs here now). A
// missing container is a 404 before the stream starts; a failure once it
// has started is a last line with only Error set. With QueryFollow=1 the
// stream goes on until the container stops or is removed here (a migration
// away ends it too), or the caller hangs up. QuerySince and QueryUntil are
// RFC 3339 times (bounds included), QueryTail the number of lines from the
// end.
//
// DELETE removes this node's kept parts of that name (docker fleet rm asks
// every node, as the container is gone from the fleet).
const LogsSuffix = "/logs"

// Queries of a logs request.
const (
	QueryFollow = "follow"
	QueryKept   = "kept"
	QuerySince  = "since"
	QueryUntil  = "until"
	QueryTail   = "tail"
)

// Streams of a LogLine.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// LogLine is one line a container wrote, without its newline.
type LogLine struct {
	// Time is when the engine took it in (RFC 3339 with nanoseconds on the
	// wire): the key lines of different nodes are merged by.
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Text   string    `json:"text"`
	// Node is where the container wrote it.
	Node string `json:"node,omitempty"`
	// Error, alone on a stream's last line, says why it broke off.
	Error string `json:"error,omitempty"`
}

// LogsQuery is what a logs request asks for; zero values ask for no bound.
type LogsQuery struct {
	Follow       bool
	Kept         bool
	Since, Until time.Time
	// Tail is the number of lines from the end; 0: all.
	Tail int
}

// Values encodes q as the request's query.
func (q LogsQuery) Values() url.Values {
	v := url.Values{}
	if q.Follow {
		v.Set(QueryFollow, "1")
	}
	if q.Kept {
		v.Set(QueryKept, "1")
	}
	if !q.Since.IsZero() {
		v.Set(QuerySince, q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set(QueryUntil, q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Tail > 0 {
		v.Set(QueryTail, strconv.Itoa(q.Tail))
	}
	return v
}

// ParseLogsQuery reads a logs request's query.
func ParseLogsQuery(v url.Values) (LogsQuery, error) {
	q := LogsQuery{Follow: v.Get(QueryFollow) == "1", Kept: v.Get(QueryKept) == "1"}
	for _, t := range []struct {
		key string
		to  *time.Time
	}{{QuerySince, &q.Since}, {QueryUntil, &q.Until}} {
		s := v.Get(t.key)
		if s == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("%s=%q: not an RFC 3339 time", t.key, s)
		}
		*t.to = at
	}
	if s := v.Get(QueryTail); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, fmt.Errorf("%s=%q: not a number of lines", QueryTail, s)
		}
		q.Tail = n
	}
	return q, nil
}
