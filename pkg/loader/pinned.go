package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrstat/cgrstat/bpf"
	"github.com/cgrstat/cgrstat/pkg/cgroup"
	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ErrNotLoaded says that the pin path holds no cgrstat load.
var ErrNotLoaded = errors.New("cgrstat is not loaded")

func (l *loaded) pin(dir PinDir, rec *Record) (err error) {
	made, err := missingFrom(dir.Path())
	if err != nil {
		return err
	}
	// Until the record is pinned nothing at the pin path proves it is this
	// load's: a note says what a kill -9 here leaves (see recoverInterrupted).
	done, err := intend(dir, made)
	if err != nil {
		return err
	}
	defer done()
	if err := os.MkdirAll(dir.Path(), 0o700); err != nil {
		return fmt.Errorf("creating pin path: %w", err)
	}
	rec.PinPathMade = made
	var pinned []string
	defer func() {
		if err != nil {
			unpinAll(dir, pinned, made)
		}
	}()
	if err := writeRecord(l.Info, rec); err != nil {
		return err
	}
	pin := func(obj pinner, path string) error {
		if err := pinAt(obj, path); err != nil {
			return err
		}
		pinned = append(pinned, path)
		return nil
	}
	// The record first: once anything is pinned, the pin path is a load that
	// unload can verify and remove, even if this process is killed half way.
	if err := pin(l.Info, dir.Map(bpf.CgrstatMapInfo)); err != nil {
		return err
	}
	for name, m := range l.maps() {
		if name == bpf.CgrstatMapInfo {
			continue
		}
		if err := pin(m, dir.Map(name)); err != nil {
			return err
		}
	}
	for name, p := range l.programs() {
		if err := pin(p, dir.Program(name)); err != nil {
			return err
		}
	}
	for name, lk := range l.links {
		if err := pin(lk, dir.Link(name)); err != nil {
			return err
		}
	}
	return nil
}

// unpinAll removes what a failed pin made, and nothing else.
func unpinAll(dir PinDir, pinned []string, made string) {
	for _, path := range pinned {
		os.Remove(path)
	}
	dir.removeDirs(made)
}

// removeDirs removes the directories a load makes for its objects, then
// the pin path and its ancestors up to made (see Record.PinPathMade), each
// only if empty (rmdir): a directory that holds anything else stays, and
// so do the ones above it.
func (d PinDir) removeDirs(made string) {
	for _, sub := range d.objectDirs() {
		_ = unix.Rmdir(sub)
	}
	path, err := filepath.Abs(d.Path())
	if err != nil || made == "" || !within(path, made) {
		return
	}
	for p := path; ; p = filepath.Dir(p) {
		if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) {
			return
		}
		if p == filepath.Clean(made) || p == "/" {
			return
		}
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// missingFrom returns the outermost directory of path that does not exist
// (path itself, or an ancestor), as an absolute path: what creating path
// makes. Empty when path exists.
func missingFrom(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("pin path %s: %w", path, err)
	}
	made := ""
	for p := abs; p != "/"; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		made = p
	}
	return made, nil
}

// noteKind names the notes (cgroup.Intend) of a load or unload in progress.
const noteKind = "pinpath"

// intend notes that this process loads or unloads at dir, having made (or
// making) the directories up to made.
func intend(dir PinDir, made string) (done func(), err error) {
	abs, err := filepath.Abs(dir.Path())
	if err != nil {
		return nil, err
	}
	return cgroup.Intend(noteKind, abs, made)
}

// recoverInterrupted removes what a load or unload at d that was killed
// before it finished left: the empty directories it made, as its note says.
// Without such a note an empty pin path may be the user's, and stays. While
// a load is at d its record says what unload removes: the note is dropped.
func (d PinDir) recoverInterrupted() error {
	notes, err := cgroup.InterruptedNotes(noteKind)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(d.Path())
	if err != nil {
		return err
	}
	for _, n := range notes {
		if len(n.Lines) != 2 {
			n.Drop() // names nothing: nothing to recover
			continue
		}
		if n.Lines[0] != abs {
			// Another pin path's. Once neither it nor the directory the
			// killed process made exists, the note has nothing left to
			// prove and would stay in /run forever.
			if !exists(n.Lines[0]) && (n.Lines[1] == "" || !exists(n.Lines[1])) {
				n.Drop()
			}
			continue
		}
		if _, err := os.Lstat(d.Path()); errors.Is(err, fs.ErrNotExist) || d.isSkeleton() {
			d.removeDirs(n.Lines[1])
		}
		n.Drop()
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

type pinner interface{ Pin(string) error }

func pinAt(obj pinner, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := obj.Pin(path); err != nil {
		return fmt.Errorf("pinning %s: %w", path, err)
	}
	return nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when the pin path needs it there.
func ensureBPFFS(dir PinDir) error {
	if isBPFFS(existingParent(dir.Path())) {
		return nil
	}
	const std = "/sys/fs/bpf"
	if !strings.HasPrefix(filepath.Clean(dir.Path())+"/", std+"/") {
		return fmt.Errorf("pin path %s: %w", dir, ErrNotBPFFS)
	}
	if err := unix.Mount("bpf", std, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("pin path %s: mounting bpffs at %s: %v: %w", dir, std, err, ErrNotBPFFS)
	}
	return nil
}

func existingParent(path string) string {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == "/" {
			return p
		}
	}
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

// ForeignError says that a pin path holds something this cgrstat did not
// make, or made with another layout; cgrstat leaves it alone.
type ForeignError struct {
	Path string
	Why  string
}

func (e *ForeignError) Error() string {
	return fmt.Sprintf("pin path %s was not made by this cgrstat (%s); cgrstat leaves it alone: give the --pin-path of a cgrstat load", e.Path, e.Why)
}

// Record reads what the load in d recorded, after verifying that d holds a
// cgrstat load (see verify). It returns ErrNotLoaded when nothing is loaded
// there, a *ForeignError when d holds something else, and an error wrapping
// ErrBadPinPath when d cannot be a pin path at all.
func (d PinDir) Record() (*Record, error) { return d.verify() }

// ReadRecord reads what the load at pinPath recorded (see PinDir.Record).
func ReadRecord(pinPath string) (*Record, error) { return PinDir(pinPath).Record() }

// Unload removes every pin of the load at pinPath, stat files too, and
// waits until the kernel has freed the programs it recorded. It removes
// only what a load pins (PinDir's layout): anything else in the pin path
// stays, and so does the pin path then.
func Unload(pinPath string) (*Record, error) {
	dir := PinDir(pinPath)
	rec, err := dir.Record()
	// Loaded or not: a load or unload here that was killed after the
	// record was pinned (or before it was removed) left a note the record
	// makes redundant, which recovery drops; it stayed in /run forever when
	// only an unload of nothing looked at it (TestKernelKillLoadUnload).
	if errors.Is(err, ErrNotLoaded) || err == nil {
		if rerr := dir.recoverInterrupted(); rerr != nil {
			return nil, rerr
		}
	}
	if err != nil {
		return nil, err
	}
	done, err := intend(dir, rec.PinPathMade)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := dir.RemoveStatFiles(); err != nil {
		return nil, err
	}
	if err := removeObjects(dir, rec.PinPathMade); err != nil {
		return nil, err
	}
	return rec, WaitFreed(rec.ProgramIDs)
}

// RemoveStatFiles removes every stat file and the directories they leave
// empty; anything else below StatFiles stays.
func (dir PinDir) RemoveStatFiles() error {
	top := dir.StatFiles()
	var dirs []string
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist) && path == top:
			return fs.SkipAll
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, path)
		case d.Name() == StatFileName:
			return os.Remove(path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing stat files: %w", err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // children first; only if empty
	}
	return nil
}

// removeObjects unpins the maps, programs and links a load pins, the load
// record last (so that a kill half way leaves a load unload can verify),
// then the directories that held them, and the pin path and its ancestors
// up to made, each only if empty.
func removeObjects(dir PinDir, made string) error {
	var record string
	for _, d := range dir.objectDirs() {
		entries, err := os.ReadDir(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing pins: %w", err)
		}
		for _, e := range entries {
			path := filepath.Join(d, e.Name())
			switch {
			case !loadPins[e.Name()]:
				continue
			case path == dir.Map(bpf.CgrstatMapInfo):
				record = path
				continue
			}
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("removing pins: %w", err)
			}
		}
	}
	if record != "" {
		if err := os.Remove(record); err != nil {
			return fmt.Errorf("removing pins: %w", err)
		}
	}
	dir.removeDirs(made)
	return nil
}

// loadPins are the names a load pins in its maps, progs and links directories.
var loadPins = func() map[string]bool {
	names := map[string]bool{}
	var o objects
	for name := range o.maps() {
		names[name] = true
	}
	for name := range o.programs() {
		names[name] = true
	}
	for _, name := range []string{bpf.CgrstatProgVmscanStart, bpf.CgrstatProgVmscanEnd, bpf.CgrstatProgDirectStart,
		bpf.CgrstatProgDirectEnd, bpf.CgrstatProgOnRmdir, bpf.CgrstatProgOnRelease,
		bpf.CgrstatProgFlushFentry, bpf.CgrstatProgFlushKprobe,
		bpf.CgrstatProgOomVictim, bpf.CgrstatProgOomVictimPid, bpf.CgrstatProgOomSignal,
		bpf.CgrstatProgOverHighEnter, bpf.CgrstatProgOverHighExit} {
		names[name] = true
	}
	return names
}()

// freeWithin is how long WaitFreed waits. A link's last reference is
// dropped in a kworker and a trampoline's after an RCU tasks grace period:
// milliseconds on a host, but more than 5 s in the kernel lab's emulated
// arm64 guests while a writer kept a CPU busy and the host was loaded
// (6.12 and 7.3, CI).
const freeWithin = 30 * time.Second

// WaitFreed waits until the kernel has freed the programs, at most
// freeWithin. It polls because programs are freed asynchronously.
func WaitFreed(ids []ebpf.ProgramID) error {
	deadline := time.Now().Add(freeWithin)
	for _, id := range ids {
		for {
			gone, err := freed(id)
			if err != nil {
				return err
			}
			if gone {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("program %d is still loaded: something else holds a reference to it", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// freed reports whether the kernel has freed program id.
func freed(id ebpf.ProgramID) (bool, error) {
	p, err := ebpf.NewProgramFromID(id)
	switch {
	case err == nil:
		p.Close()
		return false, nil
	case errors.Is(err, unix.ENOENT):
		return true, nil
	case errors.Is(err, unix.EPERM):
		// Looking a program up by id needs CAP_SYS_ADMIN, which a hardened
		// service lacks. The pins are gone; the kernel frees the programs
		// when their last reference goes.
		return true, nil
	}
	return false, fmt.Errorf("checking that program %d was freed: %w", id, err)
}
