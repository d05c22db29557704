package kernellab

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// newc mode bits, from cpio(5). Kept here rather than taken from syscall so
// the writer does not depend on the host's notion of file types.
const (
	cpioDir     = 0o040000
	cpioRegular = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

// cpioWriter writes an archive in the "newc" format (magic 070701), the only
// one the kernel's initramfs unpacker reads. Writing it ourselves keeps the
// padding rules in one place: a wrong pad is what makes the kernel report
// "junk at the end of compressed archive".
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{"": true, ".": true}}
}

type cpioHeader struct {
	name         string
	mode         uint32
	size         int64
	rdevMajor    uint32
	rdevMinor    uint32
	numberOfLink uint32
}

// writeHeader writes the 110-byte header and the NUL-terminated name, padded
// so that the data starts on a 4-byte boundary.
func (c *cpioWriter) writeHeader(h cpioHeader) error {
	if c.err != nil {
		return c.err
	}
	if h.size > 0xffffffff {
		return fmt.Errorf("cpio: %s is larger than 4 GiB", h.name)
	}
	nlink := h.numberOfLink
	if nlink == 0 {
		nlink = 1
	}
	name := h.name + "\x00"
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, h.mode, 0, 0, nlink, 0, h.size, 0, 0, h.rdevMajor, h.rdevMinor, len(name), 0)
	c.ino++
	c.write([]byte(hdr + name))
	c.pad(len(hdr) + len(name))
	return c.err
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// clean turns a guest path into the relative form the kernel expects in an
// archive ("bin/busybox", not "/bin/busybox").
func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// mkdirAll writes entries for every missing parent of name, and name itself:
// the kernel does not create parents on its own.
func (c *cpioWriter) mkdirAll(name string) error {
	name = clean(name)
	if c.dirs[name] {
		return c.err
	}
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	c.dirs[name] = true
	return c.writeHeader(cpioHeader{name: name, mode: cpioDir | 0o755, numberOfLink: 2})
}

// file writes a regular file of size bytes read from r.
func (c *cpioWriter) file(name string, mode uint32, size int64, r io.Reader) error {
	name = clean(name)
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := c.writeHeader(cpioHeader{name: name, mode: cpioRegular | mode&0o7777, size: size}); err != nil {
		return err
	}
	n, err := io.Copy(c.w, io.LimitReader(r, size))
	if err != nil {
		c.err = fmt.Errorf("cpio: writing %s: %w", name, err)
		return c.err
	}
	if n != size {
		c.err = fmt.Errorf("cpio: %s: wrote %d bytes, expected %d", name, n, size)
		return c.err
	}
	c.pad(int(size % 4))
	return c.err
}

func (c *cpioWriter) symlink(name, target string) error {
	name = clean(name)
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := c.writeHeader(cpioHeader{name: name, mode: cpioSymlink | 0o777, size: int64(len(target))}); err != nil {
		return err
	}
	c.write([]byte(target))
	c.pad(len(target))
	return c.err
}

func (c *cpioWriter) charDev(name string, mode, major, minor uint32) error {
	name = clean(name)
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	return c.writeHeader(cpioHeader{name: name, mode: cpioCharDev | mode&0o7777, rdevMajor: major, rdevMinor: minor})
}

// close writes the trailer. The caller closes the underlying writer.
func (c *cpioWriter) close() error {
	return c.writeHeader(cpioHeader{name: "TRAILER!!!"})
}
