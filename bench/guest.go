package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cgrstat/cgrstat/internal/kernellab"
)

// guestEnv carries the config into a lab guest, whose init runs the bench
// binary as if it were a test binary (with -test.* flags, ignored here).
const guestEnv = "CGRSTAT_BENCH_CONFIG"

// Console markers: the result is base64 in short lines, each behind
// markData, so that a kernel message between lines cannot corrupt it.
const (
	markData = "CGRSTAT-BENCH-DATA"
	markEnd  = "CGRSTAT-BENCH-END"
)

// guestConfig is config plus the guest's own deadline, which leaves time
// to print what was measured before the host kills the VM.
type guestConfig struct {
	config
	Deadline time.Duration `json:"deadline"`
}

// guestMain measures the guest's kernel and prints the result on the console.
func guestMain() int {
	var gc guestConfig
	r := &Result{Machine: "guest"}
	start := time.Now()
	if err := json.Unmarshal([]byte(os.Getenv(guestEnv)), &gc); err != nil {
		r.Error = fmt.Sprintf("decoding %s: %v", guestEnv, err)
	} else {
		gc.CLI = kernellab.GuestCLI
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(ctx, gc.Deadline)
		b, err := newBench(gc.config)
		if err == nil {
			err = b.run(ctx, r)
		}
		if err != nil {
			r.Error = err.Error()
		}
		cancel()
		stop()
	}
	r.Seconds = time.Since(start).Seconds()
	if err := writeConsole(os.Stdout, r); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if r.Error != "" {
		fmt.Fprintln(os.Stderr, "bench:", r.Error)
		return 1
	}
	return 0
}

func writeConsole(f *os.File, r *Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	enc := base64.StdEncoding.EncodeToString(b)
	w := bufio.NewWriter(f)
	for len(enc) > 0 {
		n := min(len(enc), 96)
		fmt.Fprintf(w, "%s %s\n", markData, enc[:n])
		enc = enc[n:]
	}
	fmt.Fprintf(w, "%s bytes=%d\n", markEnd, len(b))
	return w.Flush()
}

// readConsole finds the guest's result in its console output.
func readConsole(console []byte) (*Result, error) {
	var enc strings.Builder
	want := -1
	sc := bufio.NewScanner(bytes.NewReader(console))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if _, data, ok := strings.Cut(line, markData+" "); ok {
			enc.WriteString(strings.TrimSpace(data))
		} else if _, end, ok := strings.Cut(line, markEnd+" bytes="); ok {
			fmt.Sscanf(end, "%d", &want)
		}
	}
	if want < 0 {
		return nil, errors.New("the guest printed no result")
	}
	b, err := base64.StdEncoding.DecodeString(enc.String())
	if err != nil || len(b) != want {
		return nil, fmt.Errorf("the guest's result is garbled (%d of %d bytes): %v", len(b), want, err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding the guest's result: %w", err)
	}
	return &r, nil
}
