// savina_baseline: Go's side of bench_savina (see bench_savina.c): five
// Savina benchmarks written with goroutines and channels, one measurement per
// process, timed inside the process so that its start-up is not counted.
//
// Usage:
//
//	savina_baseline NAME ACTORS MSGS
//
// where NAME and the meaning of ACTORS and MSGS are
//
//	counting   1 N            a producer goroutine sends N increments to a
//	                          counter, then asks for the total
//	fjthrput   A N            main sends N values to each of A workers, round
//	                          robin; each worker hashes every value it gets
//	threadring A R            A goroutines in a ring pass a token R hops
//	chameneos  C M            C creatures meet M times through a mall
//	big        W N            W workers each send N pings to random peers,
//	                          one at a time, and wait for each pong
//
// and prints one line, "NAME MS CHECKSUM": the milliseconds from the first
// goroutine started until the result was known (tearing down is not timed),
// and the checksum bench_savina compares with axon's (see bench_savina.c for
// what each one sums).  GOMAXPROCS comes from the environment, as for any Go
// program.  Exit status 1 on a failed check.
//
// A worker is a goroutine that owns one receiving channel: its mailbox.  Each
// channel is buffered so that its senders rarely wait: a mailbox flooded by
// one sender (counting, fjthrput) holds floodCap values, and a mailbox that
// takes replies gets a capacity at least as large as the messages that can
// be in flight to it, so no goroutine ever blocks on a send there and the
// message patterns cannot deadlock.
//
// Plain Go, no module: `go run savina_baseline.go big 120 20000` or
// `go build -o savina_baseline savina_baseline.go`.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// floodCap is the buffer of a channel that one sender floods.
const floodCap = 1024

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "savina_baseline: "+format+"\n", args...)
	os.Exit(1)
}

// mix is splitmix64's step, the same function as bench_rng_next in
// bench_util.h: fjthrput's hash and big's random numbers.
func mix(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// ------------------------------------------------------------------------
// counting

// countMsg is an increment, or a request for the total when reply is set.
type countMsg struct {
	reply chan uint64
}

func counting(n int) uint64 {
	counter := make(chan countMsg, floodCap)
	result := make(chan uint64)
	go func() { // the counter
		var count uint64
		for m := range counter {
			if m.reply != nil {
				m.reply <- count
			} else {
				count++
			}
		}
	}()
	go func() { // the producer
		for i := 0; i < n; i++ {
			counter <- countMsg{}
		}
		total := make(chan uint64)
		counter <- countMsg{reply: total}
		result <- <-total
	}()
	total := <-result
	close(counter)
	return total
}

// ------------------------------------------------------------------------
// fjthrput: fork-join throughput

func fjthrput(actors, n int) uint64 {
	inboxes := make([]chan uint64, actors)
	sums := make(chan uint64, actors)
	for j := range inboxes {
		inboxes[j] = make(chan uint64, floodCap)
		go func(j int, in chan uint64) {
			var sum, next uint64
			for v := range in {
				if v != next {
					die("fjthrput: worker %d got value %d, %d expected", j, v, next)
				}
				next++
				state := uint64(j)<<32 | v
				sum += mix(&state)
				if next == uint64(n) {
					sums <- sum
				}
			}
		}(j, inboxes[j])
	}
	for i := 0; i < n; i++ {
		for _, in := range inboxes {
			in <- uint64(i)
		}
	}
	var total uint64
	for j := 0; j < actors; j++ {
		total += <-sums
	}
	for _, in := range inboxes {
		close(in)
	}
	return total
}

// ------------------------------------------------------------------------
// threadring

type token struct {
	left, hops uint64
}

func threadring(actors, hops int) uint64 {
	ring := make([]chan token, actors)
	for k := range ring {
		ring[k] = make(chan token, 1) // one token: never more than one message
	}
	done := make(chan uint64)
	for k := range ring {
		go func(in, next chan token) {
			for t := range in {
				if t.left == 0 {
					done <- t.hops
				} else {
					next <- token{t.left - 1, t.hops + 1}
				}
			}
		}(ring[k], ring[(k+1)%actors])
	}
	ring[0] <- token{uint64(hops), 0}
	total := <-done
	for _, in := range ring {
		close(in)
	}
	return total
}

// ------------------------------------------------------------------------
// chameneos

const (
	meet   = iota // creature -> mall: wants to meet; mall -> creature: met peer
	change        // creature -> creature: the colour after the meeting
	exit          // mall -> creature: no meetings left
	faded         // creature -> mall: how many meetings it took part in
)

type chamMsg struct {
	kind  int
	color int // meet, change: the sender's colour
	from  int // meet: the creature that wants to meet
	met   int // faded: the creature's meetings
}

// complement is the colour of a creature of colour a after it met one of
// colour b (red, yellow, blue = 0, 1, 2).
func complement(a, b int) int {
	if a == b {
		return a
	}
	return 3 - a - b
}

func chameneos(creatures, meetings int) uint64 {
	mall := make(chan chamMsg, creatures) // at most one message per creature in flight
	inboxes := make([]chan chamMsg, creatures)
	for k := range inboxes {
		inboxes[k] = make(chan chamMsg, 1) // it waits for one answer at a time
	}
	for k := range inboxes {
		go func(self int) {
			color, met := self%3, 0
			mall <- chamMsg{kind: meet, color: color, from: self}
			for m := range inboxes[self] {
				switch m.kind {
				case meet:
					color = complement(color, m.color)
					met++
					inboxes[m.from] <- chamMsg{kind: change, color: color}
					mall <- chamMsg{kind: meet, color: color, from: self}
				case change:
					color = m.color
					met++
					mall <- chamMsg{kind: meet, color: color, from: self}
				case exit:
					mall <- chamMsg{kind: faded, met: met}
					return
				}
			}
		}(k)
	}
	// The mall, on the main goroutine.
	left, waiting, fadedCount := meetings, -1, 0
	var sum uint64
	for fadedCount < creatures {
		m := <-mall
		switch {
		case m.kind == faded:
			sum += uint64(m.met)
			fadedCount++
		case left == 0:
			inboxes[m.from] <- chamMsg{kind: exit}
		case waiting < 0:
			waiting = m.from
		default:
			left--
			inboxes[waiting] <- m
			waiting = -1
		}
	}
	return sum
}

// ------------------------------------------------------------------------
// big

type bigMsg struct {
	pong bool
	from int
}

func big(actors, pings int) uint64 {
	inboxes := make([]chan bigMsg, actors)
	for k := range inboxes {
		// At most actors-1 pings from the others and one pong in flight to
		// each worker.
		inboxes[k] = make(chan bigMsg, actors)
	}
	done := make(chan uint64, actors)
	for k := range inboxes {
		go func(self int) {
			rng := uint64(0x5eed0000 + self)
			send := func() {
				peer := int(mix(&rng) % uint64(actors-1))
				if peer >= self {
					peer++
				}
				inboxes[peer] <- bigMsg{from: self}
			}
			pongs := 0
			send()
			for m := range inboxes[self] {
				if !m.pong {
					inboxes[m.from] <- bigMsg{pong: true, from: self}
					continue
				}
				pongs++
				if pongs == pings {
					done <- uint64(pongs)
				} else {
					send()
				}
			}
		}(k)
	}
	var total uint64
	for k := 0; k < actors; k++ {
		total += <-done
	}
	for _, in := range inboxes {
		close(in)
	}
	return total
}

// ------------------------------------------------------------------------

func main() {
	if len(os.Args) != 4 {
		die("usage: savina_baseline counting|fjthrput|threadring|chameneos|big ACTORS MSGS")
	}
	actors, err := strconv.Atoi(os.Args[2])
	if err != nil || actors <= 0 {
		die("ACTORS: not a positive integer: %q", os.Args[2])
	}
	n, err := strconv.Atoi(os.Args[3])
	if err != nil || n <= 0 {
		die("MSGS: not a positive integer: %q", os.Args[3])
	}
	var bench func() uint64
	switch os.Args[1] {
	case "counting":
		bench = func() uint64 { return counting(n) }
	case "fjthrput":
		bench = func() uint64 { return fjthrput(actors, n) }
	case "threadring":
		bench = func() uint64 { return threadring(actors, n) }
	case "chameneos":
		bench = func() uint64 { return chameneos(actors, n) }
	case "big":
		if actors < 2 {
			die("big: at least 2 actors")
		}
		bench = func() uint64 { return big(actors, n) }
	default:
		die("unknown benchmark %q", os.Args[1])
	}
	t0 := time.Now()
	sum := bench()
	el := time.Since(t0)
	fmt.Printf("%s %.3f %d\n", os.Args[1], float64(el.Nanoseconds())/1e6, sum)
}
