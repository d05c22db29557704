SHELL := /bin/bash
# cgrstat build, test and benchmark entry points.
GO      ?= go
CLANG   ?= clang-19
BIN     := bin/cgrstat
export CGO_ENABLED := 0

.PHONY: all deps build generate test unit hosttest vmtest bench check lint clean

# Debian packages: the BPF toolchain (make generate), and QEMU, busybox and
# cpio for the kernel lab. Installed only when one is missing.
DEBS := clang-19 llvm-19 bpftool libbpf-dev linux-libc-dev qemu-system-x86 busybox-static cpio

all: build

deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: $(BIN)

$(BIN): $(shell find cmd pkg bpf internal -name '*.go' 2>/dev/null) bpf/cgrstat_x86_bpfel.o bpf/cgrstat_arm64_bpfel.o
	$(GO) build -o $@ ./cmd/cgrstat

# Regenerates the bpf2go Go bindings and objects (bpf/, bench/); all are committed.
generate:
	cd bpf && BPF2GO_CC=$(CLANG) BPF2GO_STRIP=llvm-strip-19 $(GO) generate ./...
	cd bench && BPF2GO_CC=$(CLANG) BPF2GO_STRIP=llvm-strip-19 $(GO) generate ./...

# make test = unit tests, then host kernel tests, then the kernel lab.
test: unit hosttest vmtest

unit:
	$(GO) test -short -count=1 ./...

# Tests named TestKernel* load real BPF objects into the running kernel. They
# skip, saying why, where this host cannot run them (-v shows the reason).
hosttest:
	$(GO) test -count=1 -v -run '^TestKernel' ./... 2>&1 | tee /tmp/cgrstat-hosttest.log | grep -E '^(=== RUN|--- |\s+--- |ok|FAIL|PASS|panic|\s+\S+_test\.go:[0-9]+:)' ; \
	  exit $${PIPESTATUS[0]}

VMTEST_FLAGS ?= -timeout 5m

vmtest:
	$(GO) run ./cmd/kernellab $(VMTEST_FLAGS)

bench:
	$(GO) run ./bench $(BENCH_FLAGS)

check: build
	./$(BIN) check

lint:
	gofmt -l $$(git ls-files '*.go')
	$(GO) vet ./...

clean:
	rm -rf bin
