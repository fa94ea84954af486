// Command leaky-service is a small Go service that leaks memory, goroutines or
// connections on purpose, so that leakwatch (and its tests) have something real to
// watch. It serves net/http/pprof, expvar, /leaked (what it leaked so far) and /healthz.
//
// It must build with Go 1.19 (Debian) as well as current Go: standard library only,
// no min/max builtins, no range-over-int, no slices/maps packages.
package main

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the command-line flags; every mode reads what it needs from it.
type config struct {
	addr           string
	modes          []string
	interval       time.Duration
	perTick        int
	size           int
	sawtooth       int
	plateauItems   int
	maxItems       int
	leakEvery      int
	memProfileRate int
	labelledEvery  int
	exitAfter      time.Duration
	callsiteDepth  int
	callsiteChurn  bool
	pidFile        string
}

// leakedCounts is both the /leaked page and the "leaked" map in /debug/vars.
var leakedCounts = expvar.NewMap("leaked")

// modeFuncs maps each -mode to the loop that runs it. Each runs in its own goroutine.
var modeFuncs = map[string]func(cfg *config, stop <-chan struct{}){
	"heap":       runHeap,
	"goroutine":  runGoroutine,
	"orphan":     runOrphan,
	"httpclient": runHTTPClient,
	"closure":    runClosure,
	"healthy":    runHealthy,
	"plateau":    runPlateau,
	"bursty":     runBursty,
	"callsites":  runCallsites,
}

// modeDescriptions is the one line logged per mode at start.
var modeDescriptions = map[string]string{
	"heap":       "caches a session (main.cacheSession -> main.newSession) of -size bytes per item, never evicted",
	"goroutine":  "starts main.waitForReply goroutines blocked forever on reachable channels",
	"orphan":     "starts main.waitOrphaned goroutines blocked on channels nothing else references",
	"httpclient": "main.fetchInventory never closes resp.Body: one open connection per request",
	"closure":    "main.registerCallback keeps a -size buffer alive in a registered closure",
	"healthy":    "main.buildResponse allocates -per-tick buffers, dropped every -sawtooth ticks",
	"plateau":    "main.warmCache fills to -plateau-items entries, then stays flat",
	"bursty":     "main.handleBurst allocates in bursts every -sawtooth ticks, nothing retained",
	"callsites":  "allocates from 4^-callsite-depth distinct stacks at start, keeps two thirds",
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("leaky-service", flag.ContinueOnError)
	cfg := &config{}
	var modes string
	var size string
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:6060", "listen address (host:port)")
	fs.StringVar(&modes, "mode", "heap", "comma-separated modes: heap,goroutine,orphan,httpclient,closure,healthy,plateau,bursty,callsites")
	fs.DurationVar(&cfg.interval, "interval", 100*time.Millisecond, "tick interval")
	fs.IntVar(&cfg.perTick, "per-tick", 1, "items per tick")
	fs.StringVar(&size, "size", "65536", "bytes per item (suffixes KiB, MiB accepted)")
	fs.IntVar(&cfg.sawtooth, "sawtooth", 20, "healthy/bursty: ticks per cycle (the batch is dropped every N ticks)")
	fs.IntVar(&cfg.plateauItems, "plateau-items", 200, "plateau: entries the cache grows to")
	fs.IntVar(&cfg.maxItems, "max-items", 0, "leak modes stop leaking after N items (0 = never)")
	fs.IntVar(&cfg.leakEvery, "leak-every", 1, "leak modes leak on every Nth tick only (a slow leak beside healthy/bursty modes on the same tick)")
	fs.IntVar(&cfg.memProfileRate, "memprofilerate", 0, "set runtime.MemProfileRate if > 0 (1 = record every allocation)")
	fs.IntVar(&cfg.labelledEvery, "labelled-every", 10, "goroutine: every Nth goroutine runs under pprof labels (0 = none)")
	fs.DurationVar(&cfg.exitAfter, "exit-after", 0, "exit cleanly after this long (0 = run until SIGTERM)")
	fs.IntVar(&cfg.callsiteDepth, "callsite-depth", 5, "callsites: recursion depth (4^depth distinct stacks)")
	fs.BoolVar(&cfg.callsiteChurn, "callsite-churn", false, "callsites: re-allocate the whole tree every tick")
	fs.StringVar(&cfg.pidFile, "pid-file", "", "write the process id to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	n, err := parseSize(size)
	if err != nil {
		return nil, fmt.Errorf("-size: %v", err)
	}
	cfg.size = n
	for _, m := range strings.Split(modes, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if _, ok := modeFuncs[m]; !ok {
			return nil, fmt.Errorf("-mode: unknown mode %q", m)
		}
		cfg.modes = append(cfg.modes, m)
	}
	switch {
	case len(cfg.modes) == 0:
		return nil, errors.New("-mode: no mode given")
	case cfg.interval <= 0:
		return nil, errors.New("-interval must be > 0")
	case cfg.perTick < 1:
		return nil, errors.New("-per-tick must be >= 1")
	case cfg.sawtooth < 1:
		return nil, errors.New("-sawtooth must be >= 1")
	case cfg.callsiteDepth < 0 || cfg.callsiteDepth > 10:
		return nil, errors.New("-callsite-depth must be 0..10")
	}
	return cfg, nil
}

// parseSize reads "65536", "64KiB" or "2MiB".
func parseSize(s string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// leakedHandler writes "MODE COUNT" per mode in -mode order, then "goroutines N".
func leakedHandler(modes []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		for _, m := range modes {
			fmt.Fprintf(&b, "%s %d\n", m, leakedCount(m))
		}
		fmt.Fprintf(&b, "goroutines %d\n", runtime.NumGoroutine())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(b.String()))
	}
}

func leakedCount(mode string) int64 {
	if v, ok := leakedCounts.Get(mode).(*expvar.Int); ok {
		return v.Value()
	}
	return 0
}

func main() {
	log.SetFlags(log.LstdFlags)
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		log.Printf("leaky-service: %v", err)
		os.Exit(2)
	}
	// Must happen before the allocations it should record.
	if cfg.memProfileRate > 0 {
		runtime.MemProfileRate = cfg.memProfileRate
	}
	if err := run(cfg); err != nil {
		log.Printf("leaky-service: %v", err)
		os.Exit(1)
	}
}

func run(cfg *config) error {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	if cfg.pidFile != "" {
		if err := os.WriteFile(cfg.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
	}
	for _, m := range cfg.modes {
		leakedCounts.Add(m, 0)
	}
	expvar.NewString("modes").Set(strings.Join(cfg.modes, ","))

	http.HandleFunc("/leaked", leakedHandler(cfg.modes))
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}

	log.Printf("leaky-service %s pid %d serving pprof on http://%s/debug/pprof/ modes=%s",
		runtime.Version(), os.Getpid(), ln.Addr(), strings.Join(cfg.modes, ","))
	stop := make(chan struct{})
	for _, m := range cfg.modes {
		log.Printf("mode %s: %s", m, modeDescriptions[m])
		go modeFuncs[m](cfg, stop)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if cfg.exitAfter > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, cfg.exitAfter)
		defer cancelTimeout()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	close(stop)
	log.Printf("leaky-service: shutting down")
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShutdown()
	// Leaked keep-alive connections never go idle, so Shutdown may time out: that is expected.
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// tickLoop calls f(tick) every interval until stop is closed. tick starts at 0.
func tickLoop(cfg *config, stop <-chan struct{}, f func(tick int)) {
	t := time.NewTicker(cfg.interval)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-stop:
			return
		case <-t.C:
			f(tick)
		}
	}
}

// leakTicks runs a leak mode: per tick, leakOne(n) for per-tick items, until -max-items.
func leakTicks(cfg *config, stop <-chan struct{}, mode string, leakOne func(n int) error) {
	tickLoop(cfg, stop, func(tick int) {
		if cfg.leakEvery > 1 && tick%cfg.leakEvery != 0 {
			return
		}
		for i := 0; i < cfg.perTick; i++ {
			n := int(leakedCount(mode))
			if cfg.maxItems > 0 && n >= cfg.maxItems {
				return
			}
			if err := leakOne(n); err != nil {
				log.Printf("mode %s: %v", mode, err)
				return
			}
			leakedCounts.Add(mode, 1)
		}
	})
}

// touch writes one byte per page so the memory is really resident (RSS, cgroup), not
// just reserved: fresh pages from the OS are already zero and Go would not write them.
func touch(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
}

func intVar(n int) *expvar.Int {
	v := new(expvar.Int)
	v.Set(int64(n))
	return v
}
