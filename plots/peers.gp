# 10,000 streaming LLM conversations from one client process, in the runtimes people
# choose (peers/bench.py: Python threads and asyncio, Go goroutines, the openai SDK on
# Node; peers/ruby/bench.py: Ruby threads and Async, from ruby.csv when present) with
# C threads and C fibers of the same run as ceiling and floor: memory per open
# conversation, client CPU per 1,000 tokens (with and without connection setup; without:
# tokens paced one per event, peers/peerlib.py MARGINAL), the
# first token users see, and how many conversations completed.
# needs: peers.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "peers" 1800 1650
# ruby.csv's own C rows (impl c-thread, c-fiber) are left out: the C rows drawn are those
# measured in peers.csv's run
w10k = "case~^llm/[a-z0-9-]+/gpt4o-5tps/n=10000$;impl!=c-thread|c-fiber"
# Values from partial runs say so (py-thread: ~1,765 of 10,000 alive at peak; py-httpx:
# 3,289 completed); the suptitle names the colours, so no key covers a bar's label.
hnotes = 1
set multiplot layout 3, 2 title "10,000 streaming conversations per runtime and model (red: C threads, blue: C fibers, same run; Ruby: its own run)" font ",14"
call "plots/lib/hbars.gpi" "peers+ruby" w10k.";metric=bytes_per_unit" "Memory per open conversation (RSS growth + kernel estimate)" "bytes" "log" "nokey"
call "plots/lib/hbars.gpi" "peers+ruby" w10k.";metric=cpu_per_1k_tokens_ms" "Client CPU per 1,000 tokens (connection setup included)" "ms" "log" "nokey"
# the marginal, paced (tokens one per event): from the set's own rows, or from the bounded
# marginal-only runs (marginal/peers.csv, marginal/ruby.csv) where the set predates it
hcomp = 2
call "plots/lib/hbars.gpi" "peers+ruby+marginal/peers+marginal/ruby" "case~/fixed-50tps/n=100/marginal-;metric=cpu_per_1k_tokens_marginal_ms;impl!=c-thread|c-fiber" "CPU per 1,000 more tokens, setup excluded\n(paced, 50/s, N = 100, tokens 16-64)" "ms" "log" "nokey"
hcomp = 0
call "plots/lib/hbars.gpi" "peers+ruby" w10k.";metric=ttft_p50_ms" "First token as users see it, p50" "ms" "log" "nokey"
call "plots/lib/hbars.gpi" "peers+ruby" w10k.";metric=ttft_p99_ms" "First token as users see it, p99" "ms" "log" "nokey"
call "plots/lib/hbars.gpi" "peers+ruby" w10k.";metric=completed_count" "Conversations completed of 10,000 (within 60 s each)" "count" "lin" "nokey"
hnotes = 0
unset multiplot
