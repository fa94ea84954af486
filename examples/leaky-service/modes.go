package main

// The modes. Each mode's state is touched only by that mode's own goroutine, so no
// locks are needed. Functions that must appear by name in profiles are //go:noinline:
// the docs and tests look for main.newSession, main.waitForReply and so on.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"time"
)

// ---- heap: a session cache that is never evicted ----

type session struct {
	id      string
	created time.Time
	payload []byte
}

var sessions = map[string]*session{}

func runHeap(cfg *config, stop <-chan struct{}) {
	leakTicks(cfg, stop, "heap", func(n int) error {
		cacheSession(n, cfg.size)
		return nil
	})
}

//go:noinline
func cacheSession(n, size int) {
	id := fmt.Sprintf("sess-%08d", n)
	sessions[id] = newSession(id, size)
}

//go:noinline
func newSession(id string, size int) *session {
	s := &session{id: id, created: time.Now(), payload: make([]byte, size)}
	touch(s.payload)
	return s
}

// ---- goroutine: workers blocked forever, their channels kept reachable ----

// replyChans keeps every channel reachable, so the goroutines are "blocked" for the
// runtime, not provably leaked (compare orphan mode).
var replyChans []chan struct{}

func runGoroutine(cfg *config, stop <-chan struct{}) {
	leakTicks(cfg, stop, "goroutine", func(n int) error {
		startRequestWorker(n, cfg.labelledEvery)
		return nil
	})
}

//go:noinline
func startRequestWorker(n, labelledEvery int) {
	ch := make(chan struct{})
	replyChans = append(replyChans, ch)
	if labelledEvery > 0 && n%labelledEvery == 0 {
		// Goroutines inherit the labels of the goroutine that starts them.
		labels := pprof.Labels("handler", "/api/orders", "tenant", "acme")
		pprof.Do(context.Background(), labels, func(context.Context) {
			go waitForReply(ch)
		})
		return
	}
	go waitForReply(ch)
}

//go:noinline
func waitForReply(ch chan struct{}) {
	<-ch
}

// ---- orphan: goroutines blocked on channels nobody else can reach ----

func runOrphan(cfg *config, stop <-chan struct{}) {
	leakTicks(cfg, stop, "orphan", func(int) error {
		startOrphan()
		return nil
	})
}

// startOrphan drops its only reference to ch once the goroutine is running: nothing can
// ever send on it. Go 1.26+'s goroutineleak profile proves these goroutines leaked.
//
//go:noinline
func startOrphan() {
	ch := make(chan int)
	go waitOrphaned(ch)
}

//go:noinline
func waitOrphaned(ch chan int) {
	<-ch
}

// ---- httpclient: response bodies never closed ----

func runHTTPClient(cfg *config, stop <-chan struct{}) {
	// A loopback server with a non-empty body: with an empty body the transport would
	// reuse the connection and nothing would leak.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sku":"A-1","count":42,"padding":"`+strings.Repeat("x", 512)+`"}`)
	}))
	defer srv.Close()
	// A private transport (no proxy from the environment) and no client timeout: a
	// timeout would cancel the body and free the connection.
	client := &http.Client{Transport: &http.Transport{}}
	leakTicks(cfg, stop, "httpclient", func(int) error {
		return fetchInventory(client, srv.URL+"/inventory")
	})
}

// fetchInventory never reads or closes resp.Body, so the connection's readLoop and
// writeLoop goroutines (and the server's conn.serve) stay forever.
//
//go:noinline
func fetchInventory(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("inventory: status %d", resp.StatusCode)
	}
	return nil
}

// ---- closure: buffers captured by callbacks kept in a registry ----

var callbacks []func() int

func runClosure(cfg *config, stop <-chan struct{}) {
	leakTicks(cfg, stop, "closure", func(int) error {
		registerCallback(cfg.size)
		return nil
	})
}

//go:noinline
func registerCallback(size int) {
	buf := make([]byte, size)
	touch(buf)
	callbacks = append(callbacks, func() int { return len(buf) + int(buf[0]) })
}

// ---- healthy: a sawtooth, nothing retained ----

func runHealthy(cfg *config, stop <-chan struct{}) {
	var batch [][]byte
	tickLoop(cfg, stop, func(tick int) {
		if tick%cfg.sawtooth == 0 {
			batch = nil
		}
		for i := 0; i < cfg.perTick; i++ {
			batch = append(batch, buildResponse(cfg.size))
			leakedCounts.Add("healthy", 1)
		}
	})
}

//go:noinline
func buildResponse(size int) []byte {
	b := make([]byte, size)
	touch(b)
	return b
}

// ---- plateau: a cache that warms up, then stays flat ----

var warm = map[int][]byte{}

func runPlateau(cfg *config, stop <-chan struct{}) {
	tickLoop(cfg, stop, func(tick int) {
		for i := 0; i < cfg.perTick; i++ {
			warmCache(tick*cfg.perTick+i, cfg.plateauItems, cfg.size)
		}
		leakedCounts.Set("plateau", intVar(len(warm)))
	})
}

// warmCache adds entry n until the cache holds limit entries; after that it only
// touches existing entries (a cache hit), so the heap stays flat.
//
//go:noinline
func warmCache(n, limit, size int) {
	if len(warm) < limit {
		b := make([]byte, size)
		touch(b)
		warm[len(warm)] = b
		return
	}
	if len(warm) > 0 {
		warm[n%len(warm)][0]++
	}
}

// ---- bursty: allocation bursts, nothing retained ----

// burstTicks ticks of each -sawtooth cycle allocate burstFactor times -per-tick buffers.
const (
	burstTicks  = 3
	burstFactor = 8
)

func runBursty(cfg *config, stop <-chan struct{}) {
	var batch [][]byte
	tickLoop(cfg, stop, func(tick int) {
		phase := tick % cfg.sawtooth
		if phase >= burstTicks {
			batch = nil // quiet: the burst's garbage is freed at the next GC
			return
		}
		for i := 0; i < cfg.perTick*burstFactor; i++ {
			batch = append(batch, handleBurst(cfg.size))
			leakedCounts.Add("bursty", 1)
		}
	})
}

//go:noinline
func handleBurst(size int) []byte {
	b := make([]byte, size)
	touch(b)
	return b
}

// ---- callsites: many distinct allocation stacks ----

// callsiteKeep holds two thirds of the leaves; the rest is garbage at the next GC.
var callsiteKeep [][]byte

func runCallsites(cfg *config, stop <-chan struct{}) {
	round := 0
	grow := func() {
		// Sized up front, so the only allocation with main.csLeaf on top is the leaf's own.
		keep := make([][]byte, 0, 1<<(2*uint(cfg.callsiteDepth)))
		csStep(cfg.callsiteDepth, 0, round, &keep)
		callsiteKeep = keep
		leakedCounts.Add("callsites", int64(1)<<(2*uint(cfg.callsiteDepth)))
		round++
	}
	grow()
	if !cfg.callsiteChurn {
		<-stop
		return
	}
	tickLoop(cfg, stop, func(int) { grow() })
}

// csStep recurses through four functions, so each leaf is reached by its own call stack:
// 4^depth distinct stacks, each one line in the heap profile.
//
//go:noinline
func csStep(depth, path, round int, keep *[][]byte) {
	if depth == 0 {
		csLeaf(path, round, keep)
		return
	}
	csNorth(depth-1, path*4, round, keep)
	csEast(depth-1, path*4+1, round, keep)
	csSouth(depth-1, path*4+2, round, keep)
	csWest(depth-1, path*4+3, round, keep)
}

//go:noinline
func csNorth(depth, path, round int, keep *[][]byte) { csStep(depth, path, round, keep) }

//go:noinline
func csEast(depth, path, round int, keep *[][]byte) { csStep(depth, path, round, keep) }

//go:noinline
func csSouth(depth, path, round int, keep *[][]byte) { csStep(depth, path, round, keep) }

//go:noinline
func csWest(depth, path, round int, keep *[][]byte) { csStep(depth, path, round, keep) }

// csLeaf allocates 64..3904 bytes, varying by path (and by round, with churn).
//
//go:noinline
func csLeaf(path, round int, keep *[][]byte) {
	b := make([]byte, 64+((path+round)%61)*64)
	b[0] = byte(path)
	if path%3 != 2 {
		*keep = append(*keep, b)
	}
}
