// Package cpuset is the maths of CPU lists as the kernel and Docker write
// them ("0-3,6"): parsing, formatting and set operations.
package cpuset

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxCPU bounds the core numbers a list may name, so that a typo such as
// "0-99999999" is an error rather than a huge allocation.
const MaxCPU = 4095

// Set is a sorted list of distinct core numbers.
type Set []int

// Parse reads a list such as "0-2,5". The empty string is the empty set.
func Parse(s string) (Set, error) {
	var out Set
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	if len(s) > maxListLen {
		return nil, fmt.Errorf("cpuset: %d characters long, at most %d", len(s), maxListLen)
	}
	// Each core is marked once however often the list names it: memory
	// stays bounded by MaxCPU, not by the list's length.
	var seen [MaxCPU + 1]bool
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := core(lo)
		if err != nil {
			return nil, fmt.Errorf("cpuset %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = core(hi); err != nil {
				return nil, fmt.Errorf("cpuset %q: %w", s, err)
			}
			if b < a {
				return nil, fmt.Errorf("cpuset %q: range %s runs backwards", s, part)
			}
		}
		for c := a; c <= b; c++ {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// maxListLen bounds a list's text: every core once, each written out, fits.
const maxListLen = 6 * (MaxCPU + 1)

func core(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a core number", s)
	}
	if n > MaxCPU {
		return 0, fmt.Errorf("core %d is beyond any machine (%d at most)", n, MaxCPU)
	}
	return n, nil
}

// Of builds a set from core numbers in any order.
func Of(cores ...int) Set {
	s := slices.Clone(Set(cores))
	slices.Sort(s)
	return slices.Compact(s)
}

// String writes the set the way the kernel does, with ranges.
func (s Set) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Contains reports whether core c is in the set.
func (s Set) Contains(c int) bool {
	_, ok := slices.BinarySearch(s, c)
	return ok
}

// Minus is the set of cores in s and not in t.
func (s Set) Minus(t Set) Set {
	var out Set
	for _, c := range s {
		if !t.Contains(c) {
			out = append(out, c)
		}
	}
	return out
}

// Intersect is the set of cores in both.
func (s Set) Intersect(t Set) Set {
	var out Set
	for _, c := range s {
		if t.Contains(c) {
			out = append(out, c)
		}
	}
	return out
}

// Union is the set of cores in either.
func (s Set) Union(t Set) Set {
	return Of(append(slices.Clone(s), t...)...)
}
