package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

const tasks = 64

// hashChain: Murmur3's 64-bit finalizer, iterated: a dependent chain no compiler folds.
func hashChain(x uint64, rounds int64) uint64 {
	for i := int64(0); i < rounds; i++ {
		x ^= x >> 33
		x *= 0xff51afd7ed558ccd
		x ^= x >> 33
		x *= 0xc4ceb9fe1a85ec53
		x ^= x >> 33
	}
	return x
}

// fanOut runs the tasks with procs Ps and returns the time taken and their checksum.
func fanOut(rounds int64, procs int) (time.Duration, uint64) {
	runtime.GOMAXPROCS(procs)
	var results [tasks]uint64
	var finished sync.WaitGroup
	start := time.Now()
	finished.Add(tasks)
	for i := 0; i < tasks; i++ {
		go func(i int) {
			results[i] = hashChain(uint64(i)+1, rounds)
			finished.Done()
		}(i)
	}
	finished.Wait()
	elapsed := time.Since(start)

	checksum := uint64(0)
	for _, r := range results {
		checksum += r
	}
	return elapsed, checksum
}

// c6FanOut: a CPU-bound kernel (an integer hash chain) in 64 goroutines, run
// with GOMAXPROCS 1 and then with the default; reports the speedup.  The
// checksum is the C program's too, which lets native.py check both computed
// the same.
func c6FanOut(quick bool) int {
	rounds := int64(1000000)
	if quick {
		rounds = 100000
	}
	defaultProcs := runtime.GOMAXPROCS(0)
	oneProc, oneProcSum := fanOut(rounds, 1)
	allProcs, allProcsSum := fanOut(rounds, defaultProcs)
	runtime.GOMAXPROCS(defaultProcs)

	r := result{workload: "C6", desc: "CPU-bound fan-out, speedup over GOMAXPROCS=1",
		unit: "x", value: float64(oneProc) / float64(allProcs), ops: tasks * rounds,
		extra: fmt.Sprintf("\"procs\":%d,\"ns_1proc\":%d,\"ns_allprocs\":%d,\"checksum\":\"%016x\"",
			defaultProcs, oneProc.Nanoseconds(), allProcs.Nanoseconds(), allProcsSum)}
	if oneProcSum != allProcsSum {
		r.failure = "checksums differ between the two runs"
	}
	return report(r)
}
