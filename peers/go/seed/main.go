// peer-go-seed: the post's protocol (socketry/performance fiber-vs-thread) in Go, as
// bench/ruby/seed.rb runs it in Ruby and bench/seed.c in C: N units, each switching M
// times, timed from the first creation to the end of the last unit.
//
//	peer-go-seed [--mode full|quick|tiny] [--models go-goroutine,go-locked-thread]
//
// Models, both with GOMAXPROCS=1 (one unit runs at a time, as under Ruby's GVL and on
// one fiber scheduler; with two Ps, two goroutines that Gosched would each return at
// once on their own P, and the switch would measure nothing):
//
//	go-goroutine      a goroutine per unit; a switch is runtime.Gosched()
//	go-locked-thread  a goroutine locked to its own OS thread (runtime.LockOSThread,
//	                  never unlocked: the thread ends with it); a switch is Gosched,
//	                  which hands the one P to another thread (a kernel wake-up): Go's
//	                  thread-per-unit model, the twin of C's GVL-like baton
//
// Cases, case names and metrics as seed.csv's (model and impl in the case): alloc
// (10,000, 2), switch (2, 10,000), throughput (1,000, 100, 10 repeats, first and last),
// warming (10,000, 2, 10 repeats; full only). Models interleaved run by run. One JSON
// object per row on stdout: case, model, impl, metric, unit, samples (peers/bench.py
// aggregates them into results/peers.csv); a limit (the runtime cannot make a thread)
// ends the process with the runtime's own message on stderr, which the driver records.
//
// Standard library only. Exit status: 0 done, 2 bad arguments.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

type mode struct{ runs, repeats, warmRepeats, series, allocN, switchM, tpN, tpM int }

var modes = map[string]mode{
	"full":  {3, 10, 10, 3, 10000, 10000, 1000, 100},
	"quick": {1, 10, 0, 1, 10000, 10000, 1000, 100},
	"tiny":  {1, 2, 2, 1, 500, 500, 50, 10},
}

var impl = "go-" + strings.TrimPrefix(runtime.Version(), "go") + pinnedSuffix()

// pinnedSuffix is "/cpu=same" when this process may run on one CPU only (every thread
// the runtime makes inherits it), as C's cpu=same cases; the driver pins it so.
func pinnedSuffix() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Cpus_allowed_list:") {
			v := strings.TrimSpace(line[len("Cpus_allowed_list:"):])
			if v != "" && !strings.ContainsAny(v, ",-") {
				return "/cpu=same"
			}
		}
	}
	return ""
}

func statusKB(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key+":") {
			f := strings.Fields(line[len(key)+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// hwmReset sets VmHWM back to VmRSS (Linux >= 4.0).
func hwmReset() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func runUnits(locked bool, n, m int) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			if locked {
				// never unlocked: the thread exits with the goroutine, as a thread per
				// unit does
				runtime.LockOSThread()
			}
			for k := 0; k < m; k++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
}

// runOnce is one run: seconds, VmHWM growth in bytes.
func runOnce(model string, n, m int) (float64, float64) {
	runtime.GC()
	hwmReset()
	rss0 := statusKB("VmRSS")
	t0 := time.Now()
	runUnits(model == "go-locked-thread", n, m)
	t := time.Since(t0).Seconds()
	return t, float64(statusKB("VmHWM")-rss0) * 1024
}

func row(cs, model, metric, unit string, samples []float64) {
	b, _ := json.Marshal(map[string]any{"case": cs, "model": model, "impl": impl,
		"metric": metric, "unit": unit, "samples": samples})
	fmt.Println(string(b))
}

func caseName(model, what string, n, m int) string {
	return fmt.Sprintf("seed/%s/%s/%s/n=%d/m=%d", model, impl, what, n, m)
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[peer-go-seed] "+format+"\n", a...)
}

func main() {
	modeName := flag.String("mode", "full", "full | quick | tiny")
	models := flag.String("models", "go-goroutine,go-locked-thread", "comma list of models")
	noWarming := flag.Bool("no-warming", false, "leave the warming case out")
	flag.Parse()
	cfg, ok := modes[*modeName]
	if *noWarming {
		cfg.warmRepeats = 0
	}
	if !ok || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "peer-go-seed: --mode must be full, quick or tiny")
		os.Exit(2)
	}
	ms := strings.Split(*models, ",")
	for _, mo := range ms {
		if mo != "go-goroutine" && mo != "go-locked-thread" {
			fmt.Fprintf(os.Stderr, "peer-go-seed: unknown model '%s'\n", mo)
			os.Exit(2)
		}
	}
	runtime.GOMAXPROCS(1)
	// 10,000 locked units are 10,000 threads at once: past the runtime's default cap of
	// 10,000 (which would abort the process before the kernel's limits are reached)
	debug.SetMaxThreads(30000)
	order := func(r int) []string {
		if r%2 == 0 {
			return ms
		}
		rev := make([]string, len(ms))
		for i, m := range ms {
			rev[len(ms)-1-i] = m
		}
		return rev
	}
	alloc, mem, sw := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for r := 0; r < cfg.runs; r++ {
		for _, mo := range order(r) {
			t, h := runOnce(mo, cfg.allocN, 2)
			alloc[mo] = append(alloc[mo], t*1e6/float64(cfg.allocN))
			if r == 0 { // later runs reuse the stacks and heap the first one left
				mem[mo] = append(mem[mo], h/float64(cfg.allocN))
			}
			t, _ = runOnce(mo, 2, cfg.switchM)
			sw[mo] = append(sw[mo], t*1e6/float64(2*cfg.switchM))
		}
		progress("alloc and switch: run %d/%d", r+1, cfg.runs)
	}
	for _, mo := range ms {
		c := caseName(mo, "alloc", cfg.allocN, 2)
		row(c, mo, "us_per_unit", "us", alloc[mo])
		row(c, mo, "user_bytes_per_unit", "bytes", mem[mo])
		row(caseName(mo, "switch", 2, cfg.switchM), mo, "us_per_switch", "us", sw[mo])
	}
	tpFirst, tpLast, wFirst, wLast := map[string][]float64{}, map[string][]float64{},
		map[string][]float64{}, map[string][]float64{}
	for s := 0; s < cfg.series; s++ {
		for _, mo := range order(s) {
			var ups []float64
			for k := 0; k < cfg.repeats; k++ {
				t, _ := runOnce(mo, cfg.tpN, cfg.tpM)
				ups = append(ups, float64(cfg.tpN)/t)
			}
			tpFirst[mo] = append(tpFirst[mo], ups[0])
			tpLast[mo] = append(tpLast[mo], ups[len(ups)-1])
			if cfg.warmRepeats > 0 {
				var us []float64
				for k := 0; k < cfg.warmRepeats; k++ {
					t, _ := runOnce(mo, cfg.allocN, 2)
					us = append(us, t*1e6/float64(cfg.allocN))
				}
				wFirst[mo] = append(wFirst[mo], us[0])
				wLast[mo] = append(wLast[mo], us[len(us)-1])
			}
			progress("throughput x%d and warming x%d: %s, series %d/%d", cfg.repeats,
				cfg.warmRepeats, mo, s+1, cfg.series)
		}
	}
	for _, mo := range ms {
		c := caseName(mo, "throughput", cfg.tpN, cfg.tpM)
		row(c, mo, "units_per_s", "units/s", tpLast[mo])
		row(c, mo, "first_repeat_units_per_s", "units/s", tpFirst[mo])
		if len(wFirst[mo]) > 0 {
			c = caseName(mo, "warming", cfg.allocN, 2)
			row(c, mo, "cold_unit_us", "us", wFirst[mo])
			row(c, mo, "warm_unit_us", "us", wLast[mo])
		}
	}
}
