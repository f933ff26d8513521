# The README's two commands. Everything else is CMake and ctest.
#   make demo   install dependencies, build, run the local fleet, send mail through it
#   make check  install dependencies, build (plain and ASan+UBSan), run every test
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz

.PHONY: all deps build build-asan build-fuzz deb check-fleet check check-plain check-asan check-fuzz demo bench bench-relay bench-queue fuzz-long clean

all: build

deps:
	./scripts/deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

# Debian packages from the plain build (docs/packaging.md): build/deb/*.deb.
deb: build
	rm -f $(BUILD)/deb/*.deb
	cd $(BUILD) && cpack --config CPackConfig.cmake -B $(CURDIR)/$(BUILD)/deb
	ls -l $(BUILD)/deb/*.deb

# The fleet tests in full: five namespace hosts provisioned by ansible/site.yml
# from the packages just built (tests/integration/fleet; 10-20 minutes).
# `make check` runs the same label without the packages: the harness, the
# roles' lint, units, packages, failover, but not the provisioned fleet.
check-fleet: deb
	cd $(BUILD) && MXFLEET_DEB_DIR=$(CURDIR)/$(BUILD)/deb ctest --output-on-failure -L fleet

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMXFLEET_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)

build-fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMXFLEET_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_all

check-plain: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

check-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

check-fuzz: build-fuzz
	cd $(FUZZ_BUILD) && ctest --output-on-failure -L fuzz

check: check-plain check-asan check-fuzz

demo: build
	./scripts/demo

bench: build
	./tests/bench/smtp_accept

# Delivery at scale (docs/delivery.md, "Measured"): mxd and Postfix as
# relays side by side (about 10 minutes), and a queue of 100,000 messages.
bench-relay: build
	./tests/bench/relay/relay

bench-queue: build
	./tests/bench/queue/queue_100k

# A fuzzing campaign outside CI: every harness for FUZZ_SECONDS (default 600)
# each, or only those in FUZZ_ONLY. Figures go in docs/security.md.
FUZZ_SECONDS ?= 600
FUZZ_ONLY ?=
fuzz-long: build-fuzz
	./tests/fuzz/run-long $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_ONLY)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
