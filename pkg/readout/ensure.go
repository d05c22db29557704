package readout

import (
	"errors"
	"fmt"

	"github.com/cgrstat/cgrstat/pkg/loader"
)

// ErrOtherMode: the pin path holds a load in another flush mode than asked for.
var ErrOtherMode = errors.New("loaded in another flush mode")

// Ensure opens the load at opts.PinPath, loading first if nothing is loaded
// there. loaded says whether it did, so that the caller unloads only what it
// loaded. A load in another flush mode than a specific opts.Flush is refused.
func Ensure(opts loader.Options) (h *Handle, loaded bool, err error) {
	rec, err := loader.Load(opts)
	loaded = err == nil
	// Other options than the load's: the mode is said below; a size asked
	// for (MaxCgroups) is refused as Load refuses it.
	var differs *loader.DiffersError
	if errors.As(err, &differs) && (opts.MaxCgroups == 0 || opts.MaxCgroups == differs.Loaded.MaxCgroups) {
		rec, err = differs.Loaded, loader.ErrLoaded
	}
	if err != nil && !errors.Is(err, loader.ErrLoaded) {
		return nil, false, err
	}
	if !loaded && opts.Flush != loader.Auto && opts.Flush != "" && rec.Flush != opts.Flush {
		return nil, false, fmt.Errorf("%w: at %s with flush mode %s, not %s: unload first, or use another --pin-path",
			ErrOtherMode, opts.PinPath, rec.Flush, opts.Flush)
	}
	h, err = Open(opts.PinPath)
	if err != nil && loaded {
		_, _ = loader.Unload(opts.PinPath)
	}
	return h, loaded, err
}
