// fiber_baseline: Go's side of bench_fiber (see bench_fiber.c): goroutines
// and unbuffered channels on one OS thread (GOMAXPROCS=1), timed inside the
// process so that its start-up is not counted.
//
// Usage:
//
//	fiber_baseline pingpong N   two goroutines bounce a counter over two
//	                            unbuffered channels, N messages (N/2 round
//	                            trips) after 1000 round trips not timed;
//	                            prints "pingpong N NS_PER_MESSAGE"
//	fiber_baseline spawn N      the main goroutine starts N goroutines that
//	                            each call wg.Done() and return, then
//	                            wg.Wait()s; prints "spawn N NS_PER_GOROUTINE"
//	fiber_baseline park N       starts N goroutines that each report on a
//	                            channel, then block receiving from a channel
//	                            nobody sends to; prints "park N BYTES_PER_GOROUTINE"
//	                            (growth of the resident set, /proc/self/statm)
//
// Plain Go, no module: `go run fiber_baseline.go pingpong 1000000` or
// `go build -o fiber_baseline fiber_baseline.go`.  Exit status 1 on a
// failed check.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "fiber_baseline: "+format+"\n", args...)
	os.Exit(1)
}

const pingWarmup = 1000

// pingpong returns ns per message (one hop).
func pingpong(n int) float64 {
	rounds := n / 2
	if rounds < 1 {
		rounds = 1
	}
	ping := make(chan int)
	pong := make(chan int)
	done := make(chan int)
	go func() {
		next := 0
		for v := range ping {
			if v != next {
				die("pingpong: ping %d arrived, %d expected", v, next)
			}
			next++
			pong <- v
		}
		done <- next
	}()
	for i := 0; i < pingWarmup; i++ {
		ping <- i
		if v := <-pong; v != i {
			die("pingpong: pong %d arrived, %d expected", v, i)
		}
	}
	t0 := time.Now()
	for i := pingWarmup; i < pingWarmup+rounds; i++ {
		ping <- i
		if v := <-pong; v != i {
			die("pingpong: pong %d arrived, %d expected", v, i)
		}
	}
	el := time.Since(t0)
	close(ping)
	if seen := <-done; seen != pingWarmup+rounds {
		die("pingpong: the ponger saw %d pings, %d expected", seen, pingWarmup+rounds)
	}
	return float64(el.Nanoseconds()) / float64(2*rounds)
}

// spawn returns ns per goroutine started, run and finished.
func spawn(n int) float64 {
	var wg sync.WaitGroup
	var count int64
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&count, 1) // checks that every goroutine ran
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	if count := atomic.LoadInt64(&count); count != int64(n) {
		die("spawn: %d of %d goroutines ran", count, n)
	}
	return float64(el.Nanoseconds()) / float64(n)
}

func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		die("/proc/self/statm: %v", err)
	}
	var size, resident int64
	if _, err := fmt.Sscanf(string(b), "%d %d", &size, &resident); err != nil {
		die("/proc/self/statm: %v", err)
	}
	return resident * int64(os.Getpagesize())
}

// park returns the resident-set growth per goroutine blocked in a receive.
func park(n int) float64 {
	never := make(chan int)
	parked := make(chan struct{}, 1024)
	// One first, so that what the first goroutine costs once is not counted.
	go func() { parked <- struct{}{}; <-never }()
	<-parked
	runtime.GC()
	before := rss()
	for i := 0; i < n; i++ {
		go func() {
			parked <- struct{}{}
			<-never
		}()
	}
	for i := 0; i < n; i++ {
		<-parked
	}
	after := rss()
	if after <= before {
		die("park: the resident set did not grow (%d -> %d bytes)", before, after)
	}
	if g := runtime.NumGoroutine(); g < n+2 {
		die("park: %d goroutines alive, %d expected", g, n+2)
	}
	return float64(after-before) / float64(n)
}

func main() {
	if len(os.Args) != 3 {
		die("usage: fiber_baseline pingpong|spawn|park N")
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		die("N: not a positive integer: %q", os.Args[2])
	}
	runtime.GOMAXPROCS(1)
	switch os.Args[1] {
	case "pingpong":
		fmt.Printf("pingpong %d %.3f\n", n, pingpong(n))
	case "spawn":
		fmt.Printf("spawn %d %.3f\n", n, spawn(n))
	case "park":
		fmt.Printf("park %d %.1f\n", n, park(n))
	default:
		die("unknown mode %q (pingpong, spawn, park)", os.Args[1])
	}
}
