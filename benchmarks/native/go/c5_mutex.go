package main

import (
	"fmt"
	"sync"
	"time"
)

const contenders = 4

type counter struct {
	mu             sync.Mutex
	count          int64 // guarded by mu
	incrementsEach int64
}

func (c *counter) lockedIncrements() {
	for i := int64(0); i < c.incrementsEach; i++ {
		c.mu.Lock()
		c.count++
		c.mu.Unlock()
	}
}

func reportCounter(workload, desc string, c *counter, ops int64, elapsed time.Duration) int {
	r := result{workload: workload, desc: desc, unit: "ns/op",
		value: nsPerOp(elapsed, ops), ops: ops}
	if c.count != ops {
		r.failure = fmt.Sprintf("count %d, want %d", c.count, ops)
	}
	return report(r)
}

// c5Mutex: mutex lock + unlock, uncontended (one goroutine) and contended (4 goroutines).
func c5Mutex(quick bool) int {
	failures := 0
	c := &counter{}

	c.incrementsEach = 10000000
	if quick {
		c.incrementsEach = 1000000
	}
	start := time.Now()
	c.lockedIncrements()
	failures += reportCounter("C5-uncontended", "mutex lock + unlock, uncontended", c,
		c.incrementsEach, time.Since(start))

	c.count = 0
	c.incrementsEach = 500000
	if quick {
		c.incrementsEach = 50000
	}
	var finished sync.WaitGroup
	start = time.Now()
	finished.Add(contenders)
	for i := 0; i < contenders; i++ {
		go func() {
			c.lockedIncrements()
			finished.Done()
		}()
	}
	finished.Wait()
	failures += reportCounter("C5-contended", "mutex lock + unlock, 4 goroutines contending",
		c, contenders*c.incrementsEach, time.Since(start))
	return failures
}
