package cpuset

import (
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]string{
		"":          "",
		"0":         "0",
		"0-3":       "0-3",
		"3,1,2":     "1-3",
		"0-2,5,7-8": "0-2,5,7-8",
		"1,1,1":     "1",
		" 0 , 2 ":   "0,2",
	} {
		s, err := Parse(in)
		assert.NilError(t, err, in)
		assert.Check(t, is.Equal(s.String(), want), in)
	}
	for in, want := range map[string]string{
		"a":       `"a" is not a core number`,
		"-1":      `"" is not a core number`,
		"3-1":     "runs backwards",
		"0-99999": "beyond any machine",
		"1,,2":    `"" is not a core number`,
	} {
		_, err := Parse(in)
		assert.Check(t, is.ErrorContains(err, want), in)
	}
}

// A long list naming the same cores again and again stays cheap: it
// allocated 769 MB once (a 28 kB cpuset in a request body).
func TestParseBounded(t *testing.T) {
	_, err := Parse(strings.Repeat("0-4095,", 4000) + "0")
	assert.Check(t, is.ErrorContains(err, "characters long"))
	list := strings.Repeat("0-4095,", 3000) + "0"
	allocs := testing.AllocsPerRun(1, func() { _, _ = Parse(list) })
	s, err := Parse(list)
	assert.NilError(t, err)
	assert.Check(t, is.Len(s, MaxCPU+1))
	assert.Check(t, allocs < 10000, "allocations: %v", allocs)
	var all []string
	for c := 0; c <= MaxCPU; c++ {
		all = append(all, strconv.Itoa(c))
	}
	s, err = Parse(strings.Join(all, ","))
	assert.NilError(t, err, "every core written out fits")
	assert.Check(t, is.Len(s, MaxCPU+1))
}

func TestSetOps(t *testing.T) {
	a, b := Of(0, 1, 2, 3), Of(2, 3, 4)
	assert.Check(t, is.DeepEqual(a.Minus(b), Of(0, 1)))
	assert.Check(t, is.DeepEqual(a.Intersect(b), Of(2, 3)))
	assert.Check(t, a.Contains(3) && !a.Contains(4))
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0-3,5", "", "7", "1-0", "0-4095"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		// What parses formats to a list that parses to the same set.
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("%q formatted as %q, which does not parse: %v", in, s, err)
		}
		if again.String() != s.String() {
			t.Fatalf("%q: %q then %q", in, s, again)
		}
		for i := 1; i < len(s); i++ {
			if s[i] <= s[i-1] {
				t.Fatalf("%q: not sorted and distinct: %v", in, s)
			}
		}
	})
}
