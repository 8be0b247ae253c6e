package main

import (
	"fmt"
	"time"
)

// c4Select: a 4-case select with one random case ready.  The channels are
// unbuffered and one producer sends on a random one of them at a time, so
// exactly one case can proceed whenever the consumer selects.
func c4Select(quick bool) int {
	n := int64(500000)
	if quick {
		n = 50000
	}
	var chans [4]chan int64
	for k := range chans {
		chans[k] = make(chan int64)
	}
	exited := make(chan struct{})

	// The consumer replays the producer's random sequence to check each choice.
	rng := benchRandSeed
	wrong := int64(0)
	start := time.Now()
	go func() { // send i on the channel the shared random sequence picks
		rng := benchRandSeed
		for i := int64(0); i < n; i++ {
			chans[(benchRand(&rng)>>32)%4] <- i
		}
		close(exited)
	}()
	for i := int64(0); i < n; i++ {
		var v int64
		var ok bool
		var chosen int
		select {
		case v, ok = <-chans[0]:
			chosen = 0
		case v, ok = <-chans[1]:
			chosen = 1
		case v, ok = <-chans[2]:
			chosen = 2
		case v, ok = <-chans[3]:
			chosen = 3
		}
		if chosen != int((benchRand(&rng)>>32)%4) || !ok || v != i {
			wrong++
		}
	}
	elapsed := time.Since(start)

	<-exited
	r := result{workload: "C4", desc: "select over 4 channels, one ready",
		unit: "ns/op", value: nsPerOp(elapsed, n), ops: n}
	if wrong != 0 {
		r.failure = fmt.Sprintf("%d wrong selects", wrong)
	}
	return report(r)
}
