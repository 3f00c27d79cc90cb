# Thin wrapper over CMake. `make` sets up, configures and builds (Release) into build/;
# `make test` also runs every test through ctest. See README.md.
#   make test SANITIZE=address,undefined   builds into build-sanitize/ and runs the tests there
#   make test CTEST_ARGS='-R Config'       extra ctest arguments
#   make coverage                          builds into build-coverage/ with --coverage, runs every
#                                          test, prints line and branch coverage per module and
#                                          fails below scripts/coverage-floors.json
#   make fuzz FUZZ_SECONDS=300 FUZZERS=image   libFuzzer targets (clang) in build-fuzz/, see fuzz/

JOBS ?= $(shell nproc)
SANITIZE ?=
CTEST_ARGS ?=
FUZZ_SECONDS ?= 60
FUZZERS ?=

ifeq ($(strip $(SANITIZE)),)
BUILD_DIR := build
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=Release
else
BUILD_DIR := build-sanitize
CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSG_SANITIZE=$(SANITIZE)
endif

.PHONY: all setup configure build test coverage demo models bench format clean fuzz peer-test

all: build

setup:
	@scripts/setup

# Configure once; CMake re-runs itself when a CMakeLists.txt changes.
$(BUILD_DIR)/build.ninja: | setup
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS)

configure: setup $(BUILD_DIR)/build.ninja
	@grep -q "SG_SANITIZE:STRING=$(SANITIZE)$$" $(BUILD_DIR)/CMakeCache.txt || \
	  cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# TorchServe's own Postman collections run with newman against sg-serve (tests/peer/README.md);
# the cases that cannot apply are listed in tests/peer/skipped.tsv and printed.
peer-test: build
	tests/peer/run-torchserve-collections.sh $(BUILD_DIR)

# Line and branch coverage per module (gcovr), with the floors of scripts/coverage-floors.json.
# Debug (-O0), so lines and branches are the source's; counters are reset before the tests run.
# -fprofile-update=atomic: the gateway, the online comparator and sg-serve update counters from
# several threads, and racy updates gave gcov negative branch counts ("branch 11 taken -7"),
# which gcovr refuses.
coverage: setup
	cmake -S . -B build-coverage -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  "-DCMAKE_CXX_FLAGS=--coverage -fprofile-update=atomic" -DCMAKE_EXE_LINKER_FLAGS=--coverage
	cmake --build build-coverage -j $(JOBS)
	find build-coverage -name '*.gcda' -delete
	-cd build-coverage && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	scripts/coverage-check build-coverage

# The main job: a whole migration on 127.0.0.1, judged (see README). PRIMARY=/CANDIDATE= URLs
# use your own backends instead of the bundled servers.
demo: build
	scripts/demo

# Retrains the demo's models from the Debian Fashion-MNIST package (a few minutes on 2 cores).
models: setup
	/usr/bin/python3 scripts/train_fashion_mnist.py --out models/fashion-mnist

# libFuzzer targets (fuzz/): a clang build with ASan + UBSan in build-fuzz/, then each target
# runs FUZZ_SECONDS from its seeds; fails on any crash, leak or sanitizer report.
fuzz: setup
	@test -f build-fuzz/build.ninja || cmake -S . -B build-fuzz -G Ninja \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  '-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g' -DSG_FUZZ=ON -DBUILD_TESTING=OFF
	cmake --build build-fuzz -j $(JOBS) --target fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZERS)

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf build build-sanitize build-coverage build-mutation build-fuzz

# Container images (podman, FROM scratch with the built binaries and the libraries they load):
# localhost/shadowgate/sg-serve and localhost/shadowgate/shadowgate. See docs/deploy.md.
.PHONY: images
images: build
	deploy/images/build.sh $(BUILD_DIR)/bin
