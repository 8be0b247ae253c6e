package main

import (
	"fmt"
	"time"
)

// c2PingPong: two goroutines pass a value back and forth over two unbuffered channels.
func c2PingPong(quick bool) int {
	n := int64(300000)
	if quick {
		n = 30000
	}
	ping, pong := make(chan int64), make(chan int64)
	exited := make(chan struct{})
	go func() { // echo: answer every v with v + 1 until ping is closed
		for v := range ping {
			pong <- v + 1
		}
		close(exited)
	}()

	wrong := int64(0)
	start := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		if <-pong != i+1 {
			wrong++
		}
	}
	elapsed := time.Since(start)

	close(ping)
	<-exited
	r := result{workload: "C2", desc: "unbuffered ping-pong, round trip",
		unit: "ns/op", value: nsPerOp(elapsed, n), ops: n}
	if wrong != 0 {
		r.failure = fmt.Sprintf("%d wrong replies", wrong)
	}
	return report(r)
}
