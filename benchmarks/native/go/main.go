// Command gobench runs C1-C7 (docs/benchmarks.md) on Go's own runtime: the
// peer that the gopy programs in ../c are measured against.  It prints the
// same JSON lines as they do, one per measurement.
//
//	gobench [--quick] [all | C1 ... C7]
//
// --quick (or GOPY_BENCH_QUICK=1 in the environment) runs reduced sizes.
// Exit status 1 if any workload's own check failed, 2 on a usage error.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// C7 comes first: its RSS delta means something only while the runtime has not
// yet kept memory freed by other workloads (native.py runs each in its own process).
var workloads = []struct {
	name string
	run  func(quick bool) int // returns how many of its checks failed
}{
	{"C7", c7Parked}, {"C1", c1Spawn}, {"C2", c2PingPong}, {"C3", c3Stream},
	{"C4", c4Select}, {"C5", c5Mutex}, {"C6", c6FanOut},
}

// result is one measurement, printed as one JSON line.
type result struct {
	workload string // "C2", or "C5-contended" when a workload measures twice
	desc     string
	unit     string // "ns/op", "x" (a speedup), "bytes/goroutine"
	value    float64
	ops      int64
	failure  string // why the program's own check failed; "" if it passed
	extra    string // further JSON members without braces, or ""
}

// report prints r and returns 0 if its check passed, 1 if not.
func report(r result) int {
	check := "ok"
	if r.failure != "" {
		check = "FAIL: " + r.failure
	}
	extra := ""
	if r.extra != "" {
		extra = "," + r.extra
	}
	// %g of a float64 as in C's %.6g; Go's %q is valid JSON for these ASCII strings.
	fmt.Printf("{\"workload\":%q,\"desc\":%q,\"unit\":%q,\"value\":%s,\"ops\":%d,\"check\":%q%s}\n",
		r.workload, r.desc, r.unit, strconv.FormatFloat(r.value, 'g', 6, 64), r.ops, check, extra)
	if r.failure != "" {
		return 1
	}
	return 0
}

func nsPerOp(elapsed time.Duration, ops int64) float64 {
	return float64(elapsed.Nanoseconds()) / float64(ops)
}

// rssBytes reads the resident set size from /proc/self/statm, as the C programs do.
func rssBytes() int64 {
	statm, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		fields := strings.Fields(string(statm))
		if len(fields) >= 2 {
			if pages, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				return pages * int64(os.Getpagesize())
			}
		}
	}
	fmt.Fprintln(os.Stderr, "gobench: cannot read /proc/self/statm")
	os.Exit(1)
	return 0
}

// benchRandSeed and benchRand: xorshift64*, the same generator as the C programs'.
const benchRandSeed uint64 = 0x9E3779B97F4A7C15

func benchRand(state *uint64) uint64 {
	x := *state
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*state = x
	return x * 2685821657736338717
}

func main() {
	quick := os.Getenv("GOPY_BENCH_QUICK") != "" && os.Getenv("GOPY_BENCH_QUICK") != "0"
	selected := make([]bool, len(workloads))
	anySelected := false
	for _, arg := range os.Args[1:] {
		if arg == "--quick" {
			quick = true
			continue
		}
		known := false
		for i, w := range workloads {
			if arg == "all" || arg == w.name {
				selected[i], anySelected, known = true, true, true
			}
		}
		if !known {
			fmt.Fprintf(os.Stderr, "usage: %s [--quick] [all | C1 ... C7]\n", os.Args[0])
			os.Exit(2)
		}
	}

	failures := 0
	for i, w := range workloads {
		if selected[i] || !anySelected {
			failures += w.run(quick)
		}
	}
	if failures != 0 {
		os.Exit(1)
	}
}
