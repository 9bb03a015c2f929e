# duplex — the two commands:
#   make run    install what is missing, build, start the server on :8080
#   make test   install what is missing, build, run every test suite (CTest)
# Also: make (build only), make test SANITIZE=1 (ASan+UBSan build in
# build-asan/), make clean.

BUILD ?= build
SANITIZE ?= 0
JOBS ?= $(shell nproc)
ifeq ($(SANITIZE),1)
BUILD := build-asan
CMAKE_FLAGS += -DDUPLEX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif

.PHONY: all build run test deps deps-build clean

all: build

deps-build:
	@scripts/deps build

deps:
	@scripts/deps all

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: deps-build
	@$(MAKE) --no-print-directory build
	$(BUILD)/duplex serve --echo --static web/echo --port 8080

test: deps
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

clean:
	rm -rf build build-asan
