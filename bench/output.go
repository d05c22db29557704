package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// printResult writes one kernel's tables.
func printResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n== %s: Linux %s, cgroup v%d, %d CPUs, %d MiB, %.0fs ==\n",
		r.Machine, r.Kernel, r.CgroupVersion, r.CPUs, r.MemTotalMiB, r.Seconds)
	for _, t := range r.Trees {
		fmt.Fprintf(w, "tree of %d cgroups: built in %.1fs, %d MiB of memory\n", t.N, t.BuildSeconds, t.MemMiB)
	}
	for _, rf := range r.Refused {
		fmt.Fprintf(w, "flush mode %s refused: %s\n", rf.Mode, rf.Reason)
	}
	for _, section := range []func(io.Writer, *tabwriter.Writer, *Result){printCollectors, printReads, printWhole, printScrapes, printFootprint, printWalkScale} {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		section(w, tw, r)
		tw.Flush()
	}
	if r.Error != "" {
		fmt.Fprintf(w, "ERROR: %s\n", r.Error)
	}
}

func printCollectors(w io.Writer, tw *tabwriter.Writer, r *Result) {
	if len(r.Collectors) == 0 {
		return
	}
	fmt.Fprintln(w, "\ncollectors, ns per reclaim event (begin+end), each set attached alone, plain workload")
	fmt.Fprintln(tw, "mode\tevents\tcgrstat\ttraced (10ms)\tbaseline\tfloor\tvs baseline\ttraced vs baseline\tvs floor\t")
	for _, c := range r.Collectors {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.2fx\t%.2fx\t%.2fx\t\n", c.Mode, c.Cgrstat.End.Runs,
			c.Cgrstat.PerEvent(), c.Traced.PerEvent(), c.Baseline.PerEvent(), c.Floor.PerEvent(),
			c.VsBaseline, c.TracedVsBaseline, c.VsFloor)
	}
	tw.Flush()
	fmt.Fprintf(w, "\neach figure against a plain bpf_stats measurement (attached alone, up to %d events from the attach in each turn), and contended (stress workload)\n", plainEvents)
	fmt.Fprintln(tw, "mode\tset\tfigure\tplain\tfigure/plain\tcontended\tcontended/figure\t")
	for _, c := range r.Collectors {
		for _, set := range []struct {
			name string
			p    Pair
		}{{"cgrstat", c.Cgrstat}, {"baseline", c.Baseline}, {"floor", c.Floor}} {
			ratio := c.VsPlain[set.name]
			check := ""
			if ratio < 0.8 || ratio > 1.2 {
				check = " (over 20%)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.2fx%s\t%.0f\t%.2fx\t\n", c.Mode, set.name, set.p.PerEvent(), c.Plain[set.name].PerEvent(),
				ratio, check, c.Contended[set.name].PerEvent(), c.Contended[set.name].PerEvent()/set.p.PerEvent())
		}
	}
}

func printReads(w io.Writer, tw *tabwriter.Writer, r *Result) {
	if len(r.Reads) == 0 {
		return
	}
	fmt.Fprintln(w, "\nread of the top's stat file, median µs; flush cost")
	fmt.Fprintln(tw, "mode\tN\tafter reclaim\tidle\tflush runs\tns/pair\tdump ns/read\tns/cgroup visited\t")
	for _, rd := range r.Reads {
		runs, pair := "-", "-"
		if rd.Flush != nil {
			runs, pair = fmt.Sprint(rd.Flush.Runs), fmt.Sprintf("%.0f", rd.Flush.PerRun())
		}
		perRead := float64(rd.Dump.NS) / float64(max(rd.Reads, 1))
		perVisit := "-" // only walk mode visits more than the top
		if rd.Visited > 1 {
			perVisit = fmt.Sprintf("%.0f", perRead/float64(rd.Visited))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%s\t%s\t%.0f\t%s\t\n", rd.Mode, rd.N,
			µs(median(rd.AfterReclaimNS)), µs(median(rd.IdleNS)), runs, pair, perRead, perVisit)
	}
}

func printWhole(w io.Writer, tw *tabwriter.Writer, r *Result) {
	if len(r.Whole) == 0 {
		return
	}
	fmt.Fprintln(w, "\nwhole tree, median ms")
	fmt.Fprintln(tw, "mode\tN\tread --all (CLI)\tin-process\tmemory.stat walk\twalk/CLI\tCLI max RSS MiB\tread CGROUP (CLI)\twalk chunks KiB\t")
	for _, wh := range r.Whole {
		cli := median(wh.CLINS)
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.2fx\t%.1f\t%.1f\t%.0f\t\n", wh.Mode, wh.N, ms(cli), ms(median(wh.InProcessNS)),
			ms(median(wh.WalkNS)), float64(median(wh.WalkNS))/float64(max(cli, 1)), float64(wh.MaxRSSKiB)/1024,
			ms(median(wh.ReadOneNS)), float64(wh.WalkMemlock)/1024)
	}
}

func printScrapes(w io.Writer, tw *tabwriter.Writer, r *Result) {
	if len(r.Scrapes) == 0 {
		return
	}
	fmt.Fprintln(w, "\nserve: a scrape of every cgroup against an in-process read --all, median ms")
	fmt.Fprintln(tw, "mode\tN\tscrape\tread --all\tscrape/read\tbody MiB\tscrapes\tRSS after MiB\tpeak RSS MiB\t")
	for _, s := range r.Scrapes {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.2fx\t%.1f\t%d\t%.1f\t%.1f\t\n", s.Mode, s.N, ms(median(s.ScrapeNS)),
			ms(median(s.InProcessNS)), s.Ratio(), float64(s.BodyBytes)/(1<<20), s.Scrapes,
			float64(s.RSSAfterKiB)/1024, float64(s.MaxRSSKiB)/1024)
	}
	tw.Flush()
	for _, s := range r.Scrapes {
		if len(s.CompareNS) > 0 {
			fmt.Fprintf(w, "%s %d: the -compare serve's scrape %.1f ms, %.2fx the read (this one's %.2fx), same %d turns\n", s.Mode, s.N,
				ms(median(s.CompareNS)), float64(median(s.CompareNS))/float64(max(median(s.InProcessNS), 1)), s.Ratio(), len(s.CompareNS))
		}
	}
}

func printFootprint(w io.Writer, tw *tabwriter.Writer, r *Result) {
	fp := r.Footprint
	if fp == nil {
		return
	}
	fmt.Fprintf(w, "\nmaps (memlock from fdinfo), max_cgroups %d\n", fp.MaxCgroups)
	fmt.Fprintln(tw, "map\ttype\tkey\tvalue\tentries\tmemlock KiB\t\t")
	for _, m := range fp.Maps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.1f\t\t\n", m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, float64(m.Memlock)/1024)
	}
	tw.Flush()
	fmt.Fprintf(w, "bytes per cgroup slot: %.0f (memlock), %.0f (keys+values x CPUs)\n",
		fp.PerCgroupMemlock, fp.PerCgroupValues)
}

func µs(ns int64) float64 { return float64(ns) / 1e3 }
func ms(ns int64) float64 { return float64(ns) / 1e6 }

func printWalkScale(w io.Writer, tw *tabwriter.Writer, r *Result) {
	if len(r.WalkScale) == 0 {
		return
	}
	fmt.Fprintln(w, "\nwalk-mode read of the top, every cgroup with history, new data in 1% (median)")
	fmt.Fprintln(tw, "cpus\tN\tnew\tread\tempty walk\tread/empty\tdump ns/run\tentries\tstats memlock\tall maps memlock\tcomputed used\t")
	for _, ws := range r.WalkScale {
		rd, em := median(ws.ReadNS), median(ws.EmptyNS)
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.2f ms\t%.2f ms\t%.2fx\t%.0f\t%d\t%d\t%d\t%d\t\n", ws.CPUs, ws.N, ws.NewPerRead,
			float64(rd)/1e6, float64(em)/1e6, float64(rd)/float64(max(em, 1)), ws.Dump.PerRun(), ws.Entries, ws.StatsMemlock, ws.MapsMemlock, ws.Computed.Used)
	}
}
