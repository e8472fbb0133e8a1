package metrics

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const stat1 = `cpu  100 0 100 800 0 0 0 0 0 0
cpu0 50 0 50 400 0 0 0 0 0 0
cpu1 50 0 50 400 0 0 0 0 0 0
intr 12345
ctxt 999
`

const stat2 = `cpu  250 0 150 900 0 0 0 0 0 0
cpu0 150 0 100 400 0 0 0 0 0 0
cpu1 50 0 50 500 0 0 0 0 0 0
`

func TestUsage(t *testing.T) {
	a, err := ParseStat(strings.NewReader(stat1))
	assert.NilError(t, err)
	b, err := ParseStat(strings.NewReader(stat2))
	assert.NilError(t, err)
	u := Usage(a, b)
	// cpu0 was busy the whole interval, cpu1 idle: the machine half busy.
	assert.Check(t, is.Equal(u.Percent, 200.0*100/300))
	assert.Check(t, is.Len(u.Cores, 2))
	assert.Check(t, is.Equal(u.Cores[0].Percent, 100.0))
	assert.Check(t, is.Equal(u.Cores[1].Percent, 0.0))
}

func TestUsageCounterWrap(t *testing.T) {
	a, _ := ParseStat(strings.NewReader(stat2))
	b, _ := ParseStat(strings.NewReader(stat1)) // counters went backwards
	for _, c := range Usage(a, b).Cores {
		assert.Check(t, c.Percent >= 0 && c.Percent <= 100)
	}
}

func TestParseStatBad(t *testing.T) {
	_, err := ParseStat(strings.NewReader("cpuX 1 2 3 4 5\n"))
	assert.Check(t, is.ErrorContains(err, "cpuX"))
	_, err = ParseStat(strings.NewReader("cpu0 1 2 x 4 5\n"))
	assert.Check(t, is.ErrorContains(err, "cpu0"))
}

func TestParseMeminfo(t *testing.T) {
	m, err := ParseMeminfo(strings.NewReader("MemTotal:       1000 kB\nMemFree:  10 kB\nMemAvailable:    250 kB\n"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(m.Total, int64(1024000)))
	assert.Check(t, is.Equal(m.Available, int64(256000)))
	assert.Check(t, is.Equal(m.Used, int64(768000)))
	_, err = ParseMeminfo(strings.NewReader("MemFree: 10 kB\n"))
	assert.Check(t, is.ErrorContains(err, "MemTotal"))
}

func TestParseNetDev(t *testing.T) {
	in := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     200       2    0    0    0     0          0         0      200       2    0    0    0     0       0          0
  eth0: 1234567    1000    0    0    0     0          0         0   765432     900    0    0    0     0       0          0
`
	ifs, err := ParseNetDev(strings.NewReader(in))
	assert.NilError(t, err)
	assert.Assert(t, is.Len(ifs, 2))
	assert.Check(t, is.Equal(ifs[1].Name, "eth0"))
	assert.Check(t, is.Equal(ifs[1].RxBytes, uint64(1234567)))
	assert.Check(t, is.Equal(ifs[1].TxBytes, uint64(765432)))
	assert.Check(t, is.Equal(ifs[1].RxPackets, uint64(1000)))
	assert.Check(t, is.Equal(ifs[1].TxPackets, uint64(900)))

	_, err = ParseNetDev(strings.NewReader("eth0: 1 2 3\n"))
	assert.Check(t, is.ErrorContains(err, "eth0"))
}

func TestParseUptime(t *testing.T) {
	up, err := ParseUptime(strings.NewReader("12345.67 2345.00\n"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(up, 12345.67))
	_, err = ParseUptime(strings.NewReader(""))
	assert.Check(t, err != nil)
}

func FuzzParsers(f *testing.F) {
	f.Add(stat1)
	f.Add("MemTotal: 1 kB\n")
	f.Fuzz(func(t *testing.T, s string) {
		a, _ := ParseStat(strings.NewReader(s))
		for _, c := range Usage(a, a).Cores {
			if c.Percent != 0 {
				t.Fatalf("no time passed but usage %v", c.Percent)
			}
		}
		_, _ = ParseMeminfo(strings.NewReader(s))
		_, _ = ParseNetDev(strings.NewReader(s))
	})
}
