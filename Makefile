# Thin front door over CMake. Everything builds into build/, executables in build/bin/.
#   make          build everything
#   make test     install what the tests need, build, run every test (ctest)
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test clean

all: build

deps:
	@scripts/deps.sh build

configure: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test:
	@scripts/deps.sh test
	@# the peers' runtimes (Python libraries, Go, the openai npm SDK) for their smoke tests: as root
	@# installed here, before CMake looks for go; otherwise those tests say what is missing and skip
	@if [ "$$(id -u)" -eq 0 ]; then scripts/deps.sh peers || \
	  echo "make test: the peers' runtimes could not be installed; their smoke tests will skip"; fi
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD)

# --- benchmarks, plots, reproduction (scripts/bench.sh, plots/draw.sh, scripts/reproduce.sh)
#   make bench [QUICK=1]   deps, build, every harness -> results/*.csv, then make plots
#   make plots             plots/*.gp over results/*.csv -> plots/*.svg, plots/*.png
#   make plots-published   every set results/published/<machine>/ -> plots/published/<machine>/
#   make reproduce         quick switch, alloc, memory, seed vs the published set of this
#                          CPU model and the post's claims; fails on a regression
#   make publish [ONLY=h1,h2] [SHOW=1] [FROM=dir]
#                          results/ (a full, calm make bench) -> results/published/<machine>/,
#                          its figures, the generated README sections
#   make compare A=dir B=dir   every figure in both sets: B/A, * where ranges do not overlap
#   make readme            regenerate the README sections between <!-- gen:... --> markers
.PHONY: bench plots plots-published reproduce publish compare readme
bench:
	@BUILD=$(BUILD) JOBS=$(JOBS) QUICK=$(QUICK) scripts/bench.sh

plots:
	@plots/draw.sh results plots

plots-published:
	@for d in $$(scripts/resultsets.py sets); do \
	  plots/draw.sh "$$d" "plots/published/$$(basename "$$d")" || exit 1; done

reproduce:
	@BUILD=$(BUILD) JOBS=$(JOBS) scripts/reproduce.sh

publish:
	@scripts/publish.py $(if $(FROM),--from $(FROM),) $(if $(ONLY),--only $(ONLY),) $(if $(SHOW),--show,)

compare:
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make compare A=dir B=dir" >&2; exit 2; }
	@scripts/compare.py "$(A)" "$(B)"

readme:
	@scripts/gen_readme.py

# Every bench-* target installs what it needs and builds its targets first, unless
# BENCH_PREPARED=1: scripts/bench.sh (make bench) has done both once for all the stages
# (the dependency check, CMake's configure and its up-to-date check cost 5-8 s a stage
# on the 2-vCPU Xeon under load, and measure nothing).
UNPREPARED = $(if $(filter 1,$(BENCH_PREPARED)),: ,)

# --- mock-llm benchmark (mock-llm/bench/mockllm_bench.py)
#   make bench-mockllm [QUICK=1]   capacity, concurrency, keep-alive vs nginx -> results/mockllm.csv
.PHONY: bench-mockllm
bench-mockllm:
	@$(UNPREPARED)scripts/deps.sh bench
	@$(UNPREPARED)cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@$(UNPREPARED)cmake --build $(BUILD) -j $(JOBS) --target mock-llm mllm-load mllm-floor
	@python3 mock-llm/bench/mockllm_bench.py --bin $(BUILD)/bin $(if $(QUICK),--quick,)

# --- micro harnesses (bench/run_micro.sh): switch, alloc, memory, scale, seed
#   make bench-micro [QUICK=1]   -> results/{switch,alloc,memory,scale,seed}.csv (+ .machine.txt)
.PHONY: bench-micro
bench-micro:
	@$(UNPREPARED)scripts/deps.sh bench
	@$(UNPREPARED)cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@$(UNPREPARED)cmake --build $(BUILD) -j $(JOBS) --target bench_switch bench_alloc bench_memory bench_scale bench_seed
	@BUILD=$(BUILD) QUICK=$(QUICK) bench/run_micro.sh

# --- workloads (workloads/bench/run.py): HTTP throughput with an nginx anchor, streaming
#   LLM conversations, slot starvation, shared "database connections"
#   make bench-workloads [QUICK=1]   -> results/{throughput,llm,curl}.csv (+ .machine.txt)
.PHONY: bench-workloads
bench-workloads:
	@$(UNPREPARED)scripts/deps.sh bench
	@$(UNPREPARED)cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@$(UNPREPARED)cmake --build $(BUILD) -j $(JOBS) --target wl-http wl-llm wl-load wl-curl wl-curl-plain mock-llm
	@python3 workloads/bench/run.py --bin $(BUILD)/bin $(if $(QUICK),--quick,)

# --- the post's claims in Ruby (peers/ruby/bench.py): Ruby threads, a 25-thread pool and
#   Async as LLM clients, Puma vs an Async::HTTP server relaying streams, C beside them
#   make bench-ruby [QUICK=1]   -> results/ruby.csv (+ .machine.txt)
.PHONY: bench-ruby
bench-ruby:
	@$(UNPREPARED)scripts/deps.sh ruby
	@$(UNPREPARED)cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@$(UNPREPARED)cmake --build $(BUILD) -j $(JOBS) --target wl-llm wl-relay mock-llm
	@python3 peers/ruby/bench.py --bin $(BUILD)/bin $(if $(QUICK),--quick,)

# --- Python, Go and Node beside Ruby and C (peers/bench.py): streaming-LLM clients and the
#   post's micro protocol in each runtime, C threads and fibers in the same run
#   make bench-peers [QUICK=1]   -> results/peers.csv (+ .machine.txt)
.PHONY: bench-peers
bench-peers:
	@$(UNPREPARED)scripts/deps.sh peers
	@$(UNPREPARED)cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@$(UNPREPARED)cmake --build $(BUILD) -j $(JOBS) --target wl-llm mock-llm peer-go
	@python3 peers/bench.py --bin $(BUILD)/bin $(if $(QUICK),--quick,)
