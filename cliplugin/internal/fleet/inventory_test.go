package fleet

import (
	"sync/atomic"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func TestEachNodeBounded(t *testing.T) {
	var running, most atomic.Int32
	done := make([]bool, 3*AgentsAtOnce)
	EachNode(len(done), func(i int) {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		done[i] = true
		running.Add(-1)
	})
	assert.Check(t, most.Load() <= AgentsAtOnce, "%d at once", most.Load())
	for i, d := range done {
		assert.Check(t, d, "%d not done", i)
	}
}
