# The README's commands. Each installs what it needs (scripts/deps.sh), configures with
# CMake and builds; nothing here depends on the state of the machine beyond Debian 12.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 60

.PHONY: all deps build demo test check-asan fuzz clean install reproduce bench

# make install PREFIX=/opt/damc: damc, libdamc.so, damc.h, damc.pc, the CMake package and
# the Python module under PREFIX (docs/python.md, "Installing").
PREFIX ?= /usr/local

all: build

deps:
	@sh scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DDAMC_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

demo: build
	@sh scripts/demo.sh $(BUILD)/damc

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# damc against NumPy, PyTorch (CPU, when python3-torch installs) and C + OpenBLAS, alternating
# in one run (bench/bench.py): rewrites the generated block of docs/performance.md and
# docs/performance_scaling.png. About 10 minutes; BENCH_ARGS="--rounds 2" for fewer rounds.
bench: build
	@sh scripts/deps.sh --bench
	/usr/bin/python3 bench/bench.py $(BUILD) $(BENCH_ARGS)

# The reproductions of docs/theory.md §6 (experiments/): prints each table and rewrites
# docs/results.md, with plots in docs/results/ when matplotlib is installed.
reproduce: build
	/usr/bin/python3 experiments/results.py $(BUILD)/damc

check-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DDAMC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# Runs the fuzzers for FUZZ_SECONDS each: the front end, then the .npy and .npz readers.
# New crashes land in $(FUZZ_BUILD)/crashes; commit them to the corpora as regressions.
fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DDAMC_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_front fuzz_npy fuzz_npz
	mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/crashes $(FUZZ_BUILD)/corpus_npy $(FUZZ_BUILD)/corpus_npz
	$(FUZZ_BUILD)/tests/fuzz/fuzz_front -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -artifact_prefix=$(FUZZ_BUILD)/crashes/ -dict=tests/fuzz/dam.dict \
	  $(FUZZ_BUILD)/corpus tests/fuzz/corpus examples
	for fmt in npy npz; do \
	  $(FUZZ_BUILD)/runtime/tests/fuzz_$$fmt -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/ $(FUZZ_BUILD)/corpus_$$fmt runtime/tests/corpus/$$fmt \
	    || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
