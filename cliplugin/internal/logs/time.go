package logs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime reads --since and --until as docker logs does: a duration
// before now ("10m"), an RFC 3339 time or date (local time without a
// zone), or Unix seconds ("1700000000.5").
func ParseTime(value string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(value); value != "0" && err == nil {
		return now.Add(-d), nil
	}
	if strings.Contains(value, "-") {
		zoned := strings.ContainsAny(value, "zZ+") || strings.Count(value, "-") == 3
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04Z07:00",
			"2006-01-02T15:04", "2006-01-02T15Z07:00", "2006-01-02T15", "2006-01-02Z07:00", "2006-01-02"} {
			var t time.Time
			var err error
			if zoned {
				t, err = time.Parse(layout, value)
			} else {
				t, err = time.ParseInLocation(layout, value, now.Location())
			}
			if err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%q: not a time (2006-01-02T15:04:05Z, 2006-01-02) or a duration (10m)", value)
	}
	sec, frac, ok := strings.Cut(value, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || (ok && (frac == "" || len(frac) > 9)) {
		return time.Time{}, fmt.Errorf("%q: not a time (2006-01-02T15:04:05Z), a duration (10m) or Unix seconds", value)
	}
	var ns int64
	if ok {
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: not Unix seconds", value)
		}
		ns = n
	}
	return time.Unix(s, ns), nil
}
