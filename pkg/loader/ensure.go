package loader

import (
	"errors"
	"fmt"
)

// ErrOtherMode: the pin path holds a load in another flush mode than asked for.
var ErrOtherMode = errors.New("loaded in another flush mode")

// Ensure opens the load at opts.PinPath, loading first if nothing is loaded
// there. loaded says whether it did, so that the caller unloads only what it
// loaded. A load in another flush mode than a specific opts.Flush is refused.
func Ensure(opts Options) (p *Pinned, loaded bool, err error) {
	rec, err := Load(opts)
	loaded = err == nil
	if err != nil && !errors.Is(err, ErrLoaded) {
		return nil, false, err
	}
	if !loaded && opts.Flush != Auto && opts.Flush != "" && rec.Flush != opts.Flush {
		return nil, false, fmt.Errorf("%w: at %s with flush mode %s, not %s: unload first, or use another --pin-path",
			ErrOtherMode, opts.PinPath, rec.Flush, opts.Flush)
	}
	p, err = Open(opts.PinPath)
	if err != nil && loaded {
		_, _ = Unload(opts.PinPath)
	}
	return p, loaded, err
}
