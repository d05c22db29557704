package main

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/cgrstat/cgrstat/pkg/loader"
)

// perCgroupMaps are the maps with one slot per tracked cgroup. (The tree
// walk's chunks grow with the cgroups walked, not tracked: Whole measures
// them.)
var perCgroupMaps = []string{"stats"}

// footprint loads the best mode once more and reads the size of every
// pinned map from the kernel (memlock in the map's fdinfo).
func (b *bench) footprint(r *Result) (err error) {
	rec, err := loader.Load(b.loadOptions(r.Modes[0]))
	if err != nil {
		return fmt.Errorf("loading cgrstat: %w", err)
	}
	defer func() {
		err = errors.Join(err, unload(b.pinPath))
	}()
	fp := &Footprint{MaxCgroups: rec.MaxCgroups}
	dir := loader.PinDir(b.pinPath)
	for _, name := range loader.MapNames() {
		mm, err := mapMemory(dir.Map(name))
		if err != nil {
			return err
		}
		mm.Name = name
		fp.Maps = append(fp.Maps, mm)
	}
	sort.Slice(fp.Maps, func(i, j int) bool { return fp.Maps[i].Memlock > fp.Maps[j].Memlock })
	fp.perCgroup(r.CPUs)
	r.Footprint = fp
	return nil
}

func mapMemory(path string) (MapMemory, error) {
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return MapMemory{}, fmt.Errorf("opening pinned map %s: %w", path, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return MapMemory{}, fmt.Errorf("map info of %s: %w", path, err)
	}
	memlock, _ := info.Memlock()
	return MapMemory{Type: info.Type.String(), KeySize: info.KeySize, ValueSize: info.ValueSize,
		MaxEntries: info.MaxEntries, Memlock: memlock}, nil
}

// perCgroup divides the per-cgroup maps by their capacity: hash maps are
// preallocated, so this is what every slot costs, used or not.
func (fp *Footprint) perCgroup(cpus int) {
	for _, mm := range fp.Maps {
		if !isPerCgroup(mm.Name) || mm.MaxEntries == 0 {
			continue
		}
		fp.PerCgroupMemlock += float64(mm.Memlock) / float64(mm.MaxEntries)
		v := float64(mm.ValueSize)
		if mm.Type == ebpf.PerCPUHash.String() {
			v *= float64(cpus)
		}
		fp.PerCgroupValues += float64(mm.KeySize) + v
	}
}

func isPerCgroup(name string) bool {
	for _, n := range perCgroupMaps {
		if n == name {
			return true
		}
	}
	return false
}
