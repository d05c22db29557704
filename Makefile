SHELL := /bin/bash
# cgrstat build, test and benchmark entry points.
GO      ?= go
CLANG   ?= clang-19
BIN     := bin/cgrstat
export CGO_ENABLED := 0

.PHONY: all deps build generate test hostside unit hosttest soaktest soak labtest vmtest guests support-table release image bench check lint clean man completion

# Debian packages, installed only when one is missing: the BPF toolchain
# (make generate); for the kernel lab QEMU for amd64 and arm64 guests,
# busybox, e2fsprogs (mkfs.ext4 -d for the scratch disk), xz-utils and zstd
# (compressed kernel modules), the archive keyring (apt verifies the kernels
# it downloads), and cpio (the initramfs writer's unit test reads with it);
# and what the serve and watch tests drive: a real Prometheus (its promtool
# checks and unit-tests the shipped rules), tmux,
# systemd-analyze (systemd) and setpriv (util-linux); the container test's
# runtime: Podman with crun, or runc where crun refuses the host's cgroups
# (cgroup v1 beside a cgroup2 hierarchy with controllers).
DEBS := clang-19 llvm-19 bpftool libbpf-dev linux-libc-dev \
	qemu-system-x86 qemu-system-arm busybox-static e2fsprogs xz-utils zstd \
	debian-archive-keyring cpio \
	prometheus tmux systemd util-linux podman crun runc

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

# make test = the short soak, then the kernel lab's guests while this host
# runs lint, the unit tests, the lab's own tests and the host kernel tests:
# the lab's guests are QEMU, CPU-bound on both cores for most of make
# test, and the host's side, about ten minutes one after another, mostly
# waits on the kernel, on processes it starts and on sleeps, and ends
# minutes before the guests do. So nothing but the soak runs before the
# first guest boots: lint (about 20 s) and labtest (about 20 s, five tiny
# guests) ran before the guests in turn until December 2026. The soak runs
# alone: it wants one scrape of serve per ten cgroup lifecycles, and had
# only 9% to spare beside QEMU. Output is synchronized by line (make
# -Oline); each side fails make test on its own. hosttest runs the Go-side
# kernel tests on this machine's cgroup version, so the lab's guests of
# that version leave them out (-hosttest; cmd/kernellab/subset.go).
test: soaktest
	@$(MAKE) --no-print-directory -j2 -Oline hostside guests VMTEST_FLAGS="-hosttest $(VMTEST_FLAGS)"

hostside:
	@$(MAKE) --no-print-directory lint && $(MAKE) --no-print-directory unit && \
	  $(MAKE) --no-print-directory labtest && $(MAKE) --no-print-directory hosttest

unit:
	$(GO) test -short -count=1 ./...
	$(GO) test -short -count=1 -tags man -run '^TestManPages$$' ./cmd/cgrstat

# Tests named TestKernel* load real BPF objects into the running kernel. They
# skip, saying why, where this host cannot run them (-v shows the reason).
# The lab's own tests, which boot guests, are TestLab*: vmtest runs them.
hosttest:
	$(GO) test -count=1 -v -run '^TestKernel' ./... 2>&1 | tee /tmp/cgrstat-hosttest.log | grep -E '^(=== RUN|--- |\s+--- |ok|FAIL|PASS|panic|\s+\S+_test\.go:[0-9]+:)' ; \
	  exit $${PIPESTATUS[0]}

# The soak (TestSoak, cmd/cgrstat/soak_test.go): cgroup lifecycles on this
# host while serve is scraped, read --all runs every second and watch in
# batch; it prints a table of what it checked. soaktest, part of make test,
# runs 20,000 lifecycles (about a minute here); soak runs a month of a batch
# node's churn, 100,000 (SOAK_LIFECYCLES, and SOAK_WORKERS: one per CPU
# unless set).
SOAK_LIFECYCLES ?= 100000
SOAK_WORKERS ?=

soaktest:
	$(GO) test -count=1 -v -run '^TestSoak$$' ./cmd/cgrstat/

soak:
	CGRSTAT_SOAK_LIFECYCLES=$(SOAK_LIFECYCLES) CGRSTAT_SOAK_WORKERS=$(SOAK_WORKERS) \
	  $(GO) test -count=1 -v -timeout 3h -run '^TestSoak$$' ./cmd/cgrstat/

# The kernel lab's own tests (TestLab*) boot guests that must fail in each
# way a guest can, and check the harness says so.
labtest:
	$(GO) test -count=1 -run '^TestLab' ./internal/kernellab/

# Every TestKernel* test in QEMU guests: Debian's amd64 6.1, 6.12 and 7.x and
# arm64 6.12 and 7.x kernels, cgroup v2 and, where the kernel has it, v1.
# One line per (kernel, arch, cgroup version); results in $(VMTEST_RESULTS).
VMTEST_RESULTS ?= kernellab-results.json
VMTEST_FLAGS ?=

# The lab's own tests (it fails on a failing, crashing or hanging guest),
# then every TestKernel* test in every guest (guests; make test runs the two
# side by side).
vmtest: labtest
	@$(MAKE) --no-print-directory guests

guests:
	$(GO) run ./cmd/kernellab -results $(VMTEST_RESULTS) $(VMTEST_FLAGS)

# Rewrites README.md's support table from the last full vmtest's results.
support-table:
	$(GO) run ./cmd/kernellab -results $(VMTEST_RESULTS) -support-table README.md

# Static cgrstat binaries for linux/amd64 and linux/arm64 in dist/, with
# the version from git (VERSION=v1.2.3 to override).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
RELEASE_ARCHES := amd64 arm64

release:
	@mkdir -p dist
	@for arch in $(RELEASE_ARCHES); do \
	  echo "dist/cgrstat-linux-$$arch ($(VERSION))"; \
	  GOOS=linux GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath \
	    -ldflags "-s -w -X main.version=$(VERSION)" -o dist/cgrstat-linux-$$arch ./cmd/cgrstat || exit 1; \
	done
	cd dist && sha256sum cgrstat-linux-* > SHA256SUMS

# cgrstat's OCI image from the release binaries, offline and reproducible:
# an image index for amd64 and arm64 (empty base, one layer: the binary with
# file capabilities cap_bpf,cap_perfmon=ep, run as root holding only the
# capabilities the runtime gives), written as an
# OCI layout (dist/cgrstat-oci) and an OCI archive (dist/cgrstat-oci.tar).
# Its time is the last commit's, so two builds of one commit are the same
# bytes. See internal/ociimage and README.md, "Kubernetes".
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

image: release
	rm -rf dist/cgrstat-oci dist/cgrstat-oci.tar
	$(GO) run ./cmd/ociimage -version $(VERSION) -source-date-epoch $(SOURCE_DATE_EPOCH)

bench:
	$(GO) run ./bench $(BENCH_FLAGS)

# Man pages generated from the commands: bin/man/cgrstat*.1 (man -l to read).
man:
	$(GO) run -tags man ./cmd/cgrstat man bin/man

# Shell completion scripts: bin/completion/cgrstat.{bash,zsh,fish}.
completion: build
	mkdir -p bin/completion
	for sh in bash zsh fish; do ./$(BIN) completion $$sh > bin/completion/cgrstat.$$sh; done

check: build
	./$(BIN) check

# Fails on any finding: a tracked ELF file other than the bpf2go objects
# (built binaries are never committed), unformatted files, go vet,
# staticcheck (a go.mod tool).
lint:
	@elves=$$(git ls-files -z | while IFS= read -r -d '' f; do \
	  [ -f "$$f" ] && [ "$$(head -c4 "$$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue; \
	  case "$$f" in bpf/*_bpfel.o|bench/*_bpfel.o) ;; *) echo "$$f" ;; esac; \
	done); \
	if [ -n "$$elves" ]; then echo "lint: tracked ELF binaries (never commit built binaries):" $$elves; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt: not formatted:" $$unformatted; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf bin dist
