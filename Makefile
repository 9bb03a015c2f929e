# duplex — the two commands:
#   make run    install what is missing, build, start the chat on :8080
#   make test   install what is missing, build, run every test suite (CTest)
# Also: make (builds the C library and the command only, no Node needed),
# make ui (the chat web UI, needs Node; make run and make test build it too),
# make test SANITIZE=1 (ASan+UBSan build in build-asan/), make run-echo (the
# echo page), make fuzz (every libFuzzer harness for FUZZ_TIME seconds,
# default 60), make clean.

BUILD ?= build
SANITIZE ?= 0
JOBS ?= $(shell nproc)
ifeq ($(SANITIZE),1)
BUILD := build-asan
CMAKE_FLAGS += -DDUPLEX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif

.PHONY: all build ui run run-echo test fuzz deps deps-build clean

# The chat web UI (React + Vite) is rebuilt only when one of its sources or
# the browser library it imports changed; the server serves web/chat/dist.
UI_SRC := $(shell find web/chat/src web/chat/public web/client -type f 2>/dev/null) web/chat/index.html \
          web/chat/vite.config.js package-lock.json
CHAT_DB ?= $(BUILD)/chat.db

all: build

deps-build:
	@scripts/deps build

deps:
	@scripts/deps all

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

# C only: a fresh clone without Node builds with plain `make`.
build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

ui: web/chat/dist/index.html

web/chat/dist/index.html: $(UI_SRC)
	npx --no-install vite build --config web/chat/vite.config.js

# Builds the command and the page only (the test programs are `make test`'s);
# the server prints the address to open.
run: deps-build
	@$(MAKE) --no-print-directory $(BUILD)/CMakeCache.txt ui
	cmake --build $(BUILD) -j $(JOBS) --target duplex
	$(BUILD)/duplex serve --chat --db $(CHAT_DB) --static web/chat/dist --port 8080

run-echo: deps-build
	@$(MAKE) --no-print-directory build
	$(BUILD)/duplex serve --echo --static web/echo --port 8080

test: deps
	@$(MAKE) --no-print-directory build ui
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600

# Each harness in fuzz/ in turn, built with clang in build-fuzz/; new corpus
# entries and crash inputs go to fuzz/corpus-run/ (git-ignored). FUZZ=name
# runs one harness only.
FUZZ_TIME ?= 60
fuzz:
	@scripts/deps test
	fuzz/run.sh -t $(FUZZ_TIME) -b build-fuzz -w fuzz/corpus-run $(FUZZ)

clean:
	rm -rf build build-asan build-fuzz
