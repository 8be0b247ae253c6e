package main

import (
	"fmt"
	"time"
)

// c3Stream: one producer streams to one consumer through a channel of capacity 1024.
func c3Stream(quick bool) int {
	n := int64(2000000)
	if quick {
		n = 200000
	}
	stream := make(chan int64, 1024)

	received, outOfOrder := int64(0), int64(0)
	start := time.Now()
	go func() { // the producer: send 0 .. n-1, then close
		for i := int64(0); i < n; i++ {
			stream <- i
		}
		close(stream)
	}()
	for v := range stream {
		if v != received {
			outOfOrder++
		}
		received++
	}
	elapsed := time.Since(start)

	r := result{workload: "C3", desc: "Chan(1024) stream, per item",
		unit: "ns/op", value: nsPerOp(elapsed, n), ops: n}
	if received != n || outOfOrder != 0 {
		r.failure = fmt.Sprintf("received %d of %d, %d out of order", received, n, outOfOrder)
	}
	return report(r)
}
