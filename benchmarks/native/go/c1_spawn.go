package main

import (
	"fmt"
	"sync"
	"time"
)

// c1Spawn: spawn and join 1,000,000 trivial goroutines (go + one WaitGroup).
func c1Spawn(quick bool) int {
	n := 1000000
	if quick {
		n = 100000
	}
	slots := make([]uint8, n)
	var spawned sync.WaitGroup

	start := time.Now()
	spawned.Add(n)
	for i := 0; i < n; i++ {
		// The trivial goroutine: mark its slot, so the join can be checked.
		go func(slot *uint8) {
			*slot = 1
			spawned.Done()
		}(&slots[i])
	}
	spawned.Wait()
	elapsed := time.Since(start)

	ran := 0
	for _, s := range slots {
		ran += int(s)
	}
	r := result{workload: "C1", desc: "spawn + join, per goroutine",
		unit: "ns/op", value: nsPerOp(elapsed, int64(n)), ops: int64(n)}
	if ran != n {
		r.failure = fmt.Sprintf("%d of %d goroutines ran", ran, n)
	}
	return report(r)
}
