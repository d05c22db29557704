package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// timesFile, in the kernel cache, keeps how long each guest took in the
// last full run on this machine (seconds, by label and subset): the
// schedule's estimates. A narrowed run (-run, -pkgs, -suites, ...) or
// -count above 1 leaves it as it is, as its times say nothing of a full
// run's.
const timesFile = "guest-seconds.json"

func timeKey(g *guest) string { return g.label() + " " + g.subset }

// estimates are the guests' expected times: the last full run's on this
// machine, or staticEstimate's.
func estimates(o options, guests []*guest) map[*guest]float64 {
	prev := map[string]float64{}
	if b, err := os.ReadFile(filepath.Join(o.cache, timesFile)); err == nil {
		_ = json.Unmarshal(b, &prev) // a broken file: the static estimates
	}
	est := map[*guest]float64{}
	for _, g := range guests {
		if s := prev[timeKey(g)]; s > 0 {
			est[g] = s
		} else {
			est[g] = staticEstimate(g)
		}
	}
	return est
}

// saveTimes records the passed guests' times of a full run for the next
// run's schedule.
func saveTimes(o options, guests []*guest) error {
	if partial(o) != "" || o.count != 1 {
		return nil
	}
	p := filepath.Join(o.cache, timesFile)
	times := map[string]float64{}
	if b, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(b, &times)
	}
	for _, g := range guests {
		if g.skip == "" && g.err == nil && g.elapsed > 0 {
			times[timeKey(g)] = float64(g.elapsed.Round(1e9)) / 1e9
		}
	}
	b, err := json.MarshalIndent(times, "", "  ")
	if err != nil {
		return err
	}
	// Written whole, then renamed: runs from other checkouts read it too.
	tmp := p + fmt.Sprintf(".%d", os.Getpid())
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the guests' times: %w", err)
	}
	return os.Rename(tmp, p)
}
