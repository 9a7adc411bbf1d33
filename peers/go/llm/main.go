// peer-go-llm: N concurrent streaming chat completions against mock-llm from Go, a
// goroutine per conversation on net/http, measured from inside the process. The Go twin
// of build/bin/wl-llm and peers/ruby/llm_client.rb: the same request, the same request
// index per conversation (so every model meets the same draws), the same metrics, one
// JSON object on stdout in the same shape (peers/bench.py turns runs into
// results/peers.csv).
//
//	peer-go-llm --target 127.0.0.1:PORT --n N [--max-tokens T] [--timeout S]
//	            [--retries R] [--per-conv FILE]
//
// Every conversation POSTs {"stream":true} to /v1/chat/completions with
// 'x-mock-request-index: i' through one shared http.Client (net/http's default
// transport settings: what a Go service gets), reads the SSE stream line by line
// (bufio.Scanner, as the Go SDKs do), decodes each chunk with encoding/json, and times
// the first content delta from the user's arrival (all users arrive at once). Retries
// like the OpenAI SDKs: refused/reset, 408, 409, 429, 5xx before the stream starts.
//
// Standard library only. Exit status: 0 run done (failed conversations are counted, not
// fatal), 2 bad usage.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	target    string
	n         int
	maxTokens int
	timeout   float64
	retries   int
	perConv   string
	// pad each prompt to this many bytes (0: the short prompt); the same rule as the
	// other peer clients (prompt below)
	promptBytes int
}

// conv is what one conversation saw; times are offsets from the run's start, 0 = did
// not happen (the monotonic clock: time.Since of one start).
type conv struct {
	arrival, start, firstToken, end, lastDelta time.Duration
	tokens, deltas, attempts                   int
	ok                                         bool
	cause                                      string
}

var t0 time.Time

func now() time.Duration { return time.Since(t0) }

// Gaps between deltas, log-bucketed like wl-llm (4 buckets per octave of µs).
const itlBuckets = 96

var itl [itlBuckets]uint64

func itlAdd(gap time.Duration) {
	us := float64(gap) / 1e3
	b := 0
	if us >= 1 {
		b = int(4 * math.Log2(us))
	}
	if b >= itlBuckets {
		b = itlBuckets - 1
	}
	atomic.AddUint64(&itl[b], 1)
}

type chunk struct {
	Error   json.RawMessage `json:"error"`
	Choices []struct {
		Delta struct {
			Content *string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

var errDone = errors.New("done")

type streamFailed string

func (e streamFailed) Error() string { return string(e) }

type retryableStatus struct {
	code         int
	retryAfterMs int
}

func (e *retryableStatus) Error() string { return fmt.Sprintf("http %d", e.code) }

// onData counts one chat chunk into c; errDone at [DONE].
func onData(data []byte, c *conv) error {
	if bytes.Equal(data, []byte("[DONE]")) {
		return errDone
	}
	var j chunk
	if err := json.Unmarshal(data, &j); err != nil {
		return streamFailed("bad JSON chunk")
	}
	if len(j.Error) > 0 && string(j.Error) != "null" {
		return streamFailed("error frame")
	}
	if len(j.Choices) > 0 && j.Choices[0].Delta.Content != nil && *j.Choices[0].Delta.Content != "" {
		t := now()
		if c.firstToken == 0 {
			c.firstToken = t
		} else {
			itlAdd(t - c.lastDelta)
		}
		c.lastDelta = t
		c.deltas++
	}
	if j.Usage != nil && j.Usage.CompletionTokens > 0 {
		c.tokens = j.Usage.CompletionTokens
	}
	return nil
}

// consume reads Server-Sent Events line by line: a blank line dispatches, data lines
// join with "\n", ':' starts a comment; lines end in LF or CRLF (bufio.ScanLines).
func consume(body io.Reader, c *conv) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 4096), 1<<20)
	var data []byte
	have := false
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if have {
				if err := onData(data, c); err != nil {
					return err
				}
				data, have = data[:0], false
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if k := bytes.IndexByte(line, ':'); k >= 0 {
			field, value = line[:k], line[k+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(field) != "data" {
			continue
		}
		if have {
			data = append(data, '\n')
		}
		data = append(data, value...)
		have = true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return streamFailed("stream ended before [DONE]")
}

// prompt is conversation i's prompt, padded with "fibers " to promptBytes bytes when that
// is longer (real requests carry kilobytes of prompt; 0 keeps the short one).
func prompt(i, promptBytes int) string {
	base := fmt.Sprintf("Conversation %d: tell me about fibers.", i)
	if promptBytes <= len(base) {
		return base
	}
	pad := promptBytes - len(base) - 1
	return base + " " + strings.Repeat("fibers ", pad/7+1)[:pad]
}

func body(i, maxTokens, promptBytes int) []byte {
	b, _ := json.Marshal(map[string]any{
		"model": "mock", "stream": true, "stream_options": map[string]bool{"include_usage": true},
		"max_tokens": maxTokens,
		"messages":   []map[string]string{{"role": "user", "content": prompt(i, promptBytes)}},
	})
	return b
}

// retryDelay is the OpenAI SDKs' backoff: retry-after-ms when given, else 0.5 s x
// 2^attempt (8 s cap) less up to 25% jitter.
func retryDelay(attempt, retryAfterMs int) time.Duration {
	if retryAfterMs >= 0 && retryAfterMs <= 60000 {
		return time.Duration(retryAfterMs) * time.Millisecond
	}
	if attempt > 5 {
		attempt = 5
	}
	s := math.Min(0.5*float64(int(1)<<attempt), 8) * (1 - 0.25*rand.Float64())
	return time.Duration(s * 1e9)
}

func retryAfter(h http.Header) int {
	if v, err := strconv.Atoi(h.Get("retry-after-ms")); err == nil {
		return v
	}
	if v, err := strconv.Atoi(h.Get("retry-after")); err == nil {
		return v * 1000
	}
	return -1
}

// causeOf names a failure the way the other clients do: errno names for system errors.
func causeOf(err error) string {
	var rs *retryableStatus
	var sf streamFailed
	var en syscall.Errno
	switch {
	case errors.As(err, &rs):
		return rs.Error()
	case errors.As(err, &sf):
		return string(sf)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.ErrUnexpectedEOF):
		// the server closed the connection inside the chunked body
		return "stream ended before [DONE]"
	case errors.As(err, &en):
		return errnoName(en)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ECONNREFUSED:
		return "ECONNREFUSED"
	case syscall.ECONNRESET:
		return "ECONNRESET"
	case syscall.EPIPE:
		return "EPIPE"
	case syscall.EMFILE:
		return "EMFILE"
	case syscall.ENFILE:
		return "ENFILE"
	case syscall.EADDRNOTAVAIL:
		return "EADDRNOTAVAIL"
	case syscall.ETIMEDOUT:
		return "ETIMEDOUT"
	}
	return "errno " + strconv.Itoa(int(e))
}

func retryable(err error) (bool, int) {
	var rs *retryableStatus
	if errors.As(err, &rs) {
		return true, rs.retryAfterMs
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE), -1
}

var retryStatus = map[int]bool{408: true, 409: true, 429: true, 500: true, 502: true, 503: true, 504: true}

func attempt(ctx context.Context, client *http.Client, url string, o *options, i int, c *conv) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body(i, o.maxTokens, o.promptBytes)))
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("accept", "text/event-stream")
	req.Header.Set("x-mock-request-index", strconv.Itoa(i))
	req.Header.Set("x-stainless-retry-count", strconv.Itoa(c.attempts-1))
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		io.Copy(io.Discard, res.Body)
		if retryStatus[res.StatusCode] {
			return &retryableStatus{res.StatusCode, retryAfter(res.Header)}
		}
		return streamFailed(fmt.Sprintf("http %d", res.StatusCode))
	}
	return consume(res.Body, c)
}

func run(client *http.Client, o *options, i int, c *conv) {
	deadline := c.arrival + time.Duration(o.timeout*1e9)
	ctx, cancel := context.WithDeadline(context.Background(), t0.Add(deadline))
	defer cancel()
	c.start = now()
	url := "http://" + o.target + "/v1/chat/completions"
	for {
		c.attempts++
		err := attempt(ctx, client, url, o, i, c)
		if err == errDone {
			c.ok = true
			break
		}
		if ok, ra := retryable(err); ok && c.attempts <= o.retries && c.firstToken == 0 {
			d := retryDelay(c.attempts-1, ra)
			if now()+d < deadline {
				time.Sleep(d)
				continue
			}
		}
		c.cause = causeOf(err)
		break
	}
	c.end = now()
}

func statusKiB(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
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
	return -1
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func quantile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	k := int(p*float64(len(v)) + 0.999999)
	if k < 1 {
		k = 1
	}
	if k > len(v) {
		k = len(v)
	}
	return v[k-1]
}

func itlQuantile(p float64) float64 {
	var n uint64
	for _, c := range itl {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(p*float64(n) + 0.999999)
	var seen uint64
	for b, c := range itl {
		seen += c
		if seen >= rank {
			return math.Pow(2, float64(b+1)/4) / 1000
		}
	}
	return 0
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "peer-go-llm: %s (see --help)\n", msg)
	os.Exit(2)
}

func main() {
	o := options{}
	flag.StringVar(&o.target, "target", "", "mock-llm, loopback IPv4 H:P")
	flag.IntVar(&o.n, "n", 100, "conversations")
	flag.IntVar(&o.maxTokens, "max-tokens", 64, "max_tokens asked")
	flag.Float64Var(&o.timeout, "timeout", 120, "seconds per conversation, from arrival")
	flag.IntVar(&o.retries, "retries", 2, "retries before the stream starts")
	flag.StringVar(&o.perConv, "per-conv", "", "also write one CSV line per conversation")
	flag.IntVar(&o.promptBytes, "prompt-bytes", 0, "pad each prompt to this many bytes (0: the short prompt)")
	model := flag.String("model", "goroutine", "goroutine (the only model)")
	flag.Parse()
	if flag.NArg() > 0 {
		usage("unexpected argument '" + flag.Arg(0) + "'")
	}
	if *model != "goroutine" {
		usage("--model must be goroutine")
	}
	if !regexp.MustCompile(`^127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$`).MatchString(o.target) {
		usage("bad --target '" + o.target + "' (want 127.x.x.x:PORT: loopback only)")
	}
	if p, _ := strconv.Atoi(o.target[strings.LastIndexByte(o.target, ':')+1:]); p < 1 || p > 65535 {
		usage("bad --target port")
	}
	if o.n < 1 || o.n > 1000000 {
		usage("--n must be 1..1000000")
	}
	if o.maxTokens < 1 || o.maxTokens > 100000 {
		usage("--max-tokens must be 1..100000")
	}
	if o.promptBytes < 0 || o.promptBytes > 1<<20 {
		usage("--prompt-bytes must be 0..1048576")
	}
	if !(o.timeout > 0) {
		usage("--timeout must be > 0")
	}
	if o.retries < 0 || o.retries > 10 {
		usage("--retries must be 0..10")
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	// One client for all conversations, as a service has: net/http's default transport
	// settings (no cap on connections per host; keep-alive), no overall client timeout
	// (a stream lasts as long as it lasts; each conversation carries its deadline).
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

	runtime.GC()
	rssBase := statusKiB("VmRSS")
	cpu0 := cpuSeconds()
	t0 = time.Now()
	convs := make([]conv, o.n)
	var live, peak, started int64
	var wg sync.WaitGroup
	for i := range convs {
		convs[i].arrival = 0
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l := atomic.AddInt64(&live, 1)
			atomic.AddInt64(&started, 1)
			for {
				p := atomic.LoadInt64(&peak)
				if l <= p || atomic.CompareAndSwapInt64(&peak, p, l) {
					break
				}
			}
			run(client, &o, i, &convs[i])
			atomic.AddInt64(&live, -1)
		}(i)
	}
	wg.Wait()
	cpu := cpuSeconds() - cpu0
	rssPeak := statusKiB("VmHWM")

	ok, failed, tokens, retries := 0, 0, 0, 0
	causes := map[string]int{}
	var last time.Duration
	for i := range convs {
		c := &convs[i]
		if c.end > last {
			last = c.end
		}
		if c.attempts > 1 {
			retries += c.attempts - 1
		}
		if c.ok {
			ok++
			if c.tokens > 0 {
				tokens += c.tokens
			} else {
				tokens += c.deltas
			}
		} else {
			failed++
			causes[c.cause]++
		}
	}
	elapsed := last.Seconds()
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	var all, first25, rest, total []float64
	for i := range convs {
		c := &convs[i]
		if c.firstToken != 0 {
			v := ms(c.firstToken - c.arrival)
			all = append(all, v)
			if i < 25 {
				first25 = append(first25, v)
			} else {
				rest = append(rest, v)
			}
		}
		if c.ok {
			total = append(total, ms(c.end-c.arrival))
		}
	}
	for _, v := range [][]float64{all, first25, rest, total} {
		sort.Float64s(v)
	}
	u26 := -1.0
	if o.n > 25 && convs[25].firstToken != 0 {
		u26 = ms(convs[25].firstToken - convs[25].arrival)
	}
	var gaps uint64
	for _, c := range itl {
		gaps += c
	}
	per := func(x float64) float64 {
		if elapsed > 0 {
			return x / elapsed
		}
		return 0
	}
	cpuPer1k := 0.0
	if tokens > 0 {
		cpuPer1k = cpu / (float64(tokens) / 1000)
	}
	maxTTFT := 0.0
	if len(all) > 0 {
		maxTTFT = all[len(all)-1]
	}
	out := map[string]any{
		"model": "goroutine", "kind": "fiber", "runtime": "go-" + strings.TrimPrefix(runtime.Version(), "go"),
		"library": "net-http", "gomaxprocs": runtime.GOMAXPROCS(0),
		"n": o.n, "ok": ok, "failed": failed, "not_started": 0, "retries": retries,
		"elapsed_s": elapsed, "conv_per_s": per(float64(ok)), "tokens": tokens,
		"tokens_per_s": per(float64(tokens)), "ttft_p50_ms": quantile(all, 0.5),
		"ttft_p99_ms": quantile(all, 0.99), "ttft_max_ms": maxTTFT, "ttft_user26_ms": u26,
		"ttft_first25_p50_ms": quantile(first25, 0.5), "ttft_rest_p50_ms": quantile(rest, 0.5),
		"ttft_rest_p99_ms": quantile(rest, 0.99), "total_p50_ms": quantile(total, 0.5),
		"total_p99_ms": quantile(total, 0.99), "itl_p50_ms": itlQuantile(0.5),
		"itl_p99_ms": itlQuantile(0.99), "itl_gaps": gaps,
		"rss_base_kib": rssBase, "rss_peak_kib": rssPeak, "cpu_s": cpu,
		"cpu_s_per_1k_tokens": cpuPer1k, "peak_live": peak, "units_started": started,
		// a goroutine cannot fail to start: the runtime aborts the process instead
		"spawn_failed": 0, "spawn_errno": "", "nofile": rl.Max, "causes": causes,
	}
	if o.perConv != "" {
		if f, err := os.Create(o.perConv); err != nil {
			fmt.Fprintf(os.Stderr, "peer-go-llm: cannot write %s: %v\n", o.perConv, err)
		} else {
			w := bufio.NewWriter(f)
			rel := func(d time.Duration, set bool) string {
				if !set {
					return "-1"
				}
				return strconv.FormatFloat(ms(d), 'f', 3, 64)
			}
			fmt.Fprintln(w, "index,arrival_ms,start_ms,first_token_ms,end_ms,tokens,attempts,ok,cause")
			for i := range convs {
				c := &convs[i]
				okv := 0
				if c.ok {
					okv = 1
				}
				fmt.Fprintf(w, "%d,%s,%s,%s,%s,%d,%d,%d,\"%s\"\n", i, rel(c.arrival, true),
					rel(c.start, true), rel(c.firstToken, c.firstToken != 0), rel(c.end, true),
					c.tokens, c.attempts, okv, strings.ReplaceAll(c.cause, "\"", "'"))
			}
			w.Flush()
			f.Close()
		}
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
