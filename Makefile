# Thin wrapper over CMake. Every target that builds first makes sure the
# Debian packages paralab needs are installed (scripts/setup-deps.sh).
#   make          build (CUDA backend too when nvcc is found)
#   make test     install, build, run every test (ctest)
#   make run      the main job: a small default suite on this machine
#   make bench    the benchmarks at full size
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

.PHONY: all deps build test run bench format clean

all: build

deps:
	@scripts/setup-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	@scripts/setup-deps.sh --slurm --aarch64
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

run: build
	scripts/run-suite.sh $(BUILD)/bin

bench: build
	scripts/bench.sh $(BUILD)/bin

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp' '*.cu' '*.cuh')

clean:
	rm -rf $(BUILD)
