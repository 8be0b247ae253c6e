package main

import (
	"fmt"
	"sync"
	"time"
)

// c7Parked: 100,000 goroutines parked in a receive on one channel: resident
// memory per parked goroutine, then the cost per goroutine of waking them all
// with one close and joining them.
func c7Parked(quick bool) int {
	n := 100000
	if quick {
		n = 10000
	}
	slots := make([]uint8, n)
	for i := range slots { // make its pages resident now, not during the measurement
		slots[i] = 0
	}
	neverSent := make(chan int64)
	var started, exited sync.WaitGroup
	started.Add(n)
	exited.Add(n)

	rssBefore := rssBytes()
	for i := 0; i < n; i++ {
		// Park until the channel is closed; mark the slot if the receive saw the close.
		go func(slot *uint8) {
			started.Done()
			if _, ok := <-neverSent; !ok {
				*slot = 1
			}
			exited.Done()
		}(&slots[i])
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let the last ones reach the receive and park
	rssParked := rssBytes()

	start := time.Now()
	close(neverSent)
	exited.Wait()
	wake := time.Since(start)

	sawClose := 0
	for _, s := range slots {
		sawClose += int(s)
	}
	failure := ""
	if sawClose != n {
		failure = fmt.Sprintf("%d of %d receives saw the close", sawClose, n)
	}
	return report(result{workload: "C7-memory", desc: "RSS per parked goroutine",
		unit: "bytes/goroutine", value: float64(rssParked-rssBefore) / float64(n),
		ops: int64(n), failure: failure}) +
		report(result{workload: "C7-wake",
			desc: "wake parked goroutines by one close + join, per goroutine",
			unit: "ns/op", value: nsPerOp(wake, int64(n)), ops: int64(n), failure: failure})
}
