package kernellab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// aptSource is one entry of an apt sources file, in either format.
type aptSource struct {
	Types      []string
	URIs       []string
	Suites     []string
	Components []string
	SignedBy   string
}

// parseDeb822Sources parses the stanzas of a .sources file, sources.list(5)
// "DEB822-STYLE FORMAT". Disabled stanzas are dropped.
func parseDeb822Sources(r io.Reader) ([]aptSource, error) {
	var out []aptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && !strings.EqualFold(fields["enabled"], "no") {
			out = append(out, aptSource{
				Types:      strings.Fields(fields["types"]),
				URIs:       strings.Fields(fields["uris"]),
				Suites:     strings.Fields(fields["suites"]),
				Components: strings.Fields(fields["components"]),
				SignedBy:   strings.TrimSpace(fields["signed-by"]),
			})
		}
		fields = map[string]string{}
		last = ""
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			// Comments do not end a stanza.
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			// A continuation line; Signed-By may hold an inline key.
			if last != "" {
				fields[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("malformed line %q", line)
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out, sc.Err()
}

// parseOneLineSources parses the classic "deb [options] uri suite
// component..." format.
func parseOneLineSources(r io.Reader) ([]aptSource, error) {
	var out []aptSource
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		s, err := parseOneLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseOneLine(line string) (aptSource, error) {
	typ, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	s := aptSource{Types: []string{typ}}
	if strings.HasPrefix(rest, "[") {
		opts, after, ok := strings.Cut(rest[1:], "]")
		if !ok {
			return s, fmt.Errorf("unterminated options in %q", line)
		}
		for _, o := range strings.Fields(opts) {
			if k, v, ok := strings.Cut(o, "="); ok && k == "signed-by" {
				s.SignedBy = v
			}
		}
		rest = after
	}
	f := strings.Fields(rest)
	if len(f) < 2 {
		return s, fmt.Errorf("malformed source line %q", line)
	}
	s.URIs, s.Suites, s.Components = f[:1], f[1:2], f[2:]
	return s, nil
}

// debianMirror picks the URI of the main Debian archive: a binary ("deb")
// source with the main component whose suites are not the security ones,
// which live in a separate archive without kernels of other suites.
func debianMirror(sources []aptSource) (string, error) {
	for _, s := range sources {
		if !slices.Contains(s.Types, "deb") || !slices.Contains(s.Components, "main") {
			continue
		}
		if slices.ContainsFunc(s.Suites, isSecuritySuite) {
			continue
		}
		for _, u := range s.URIs {
			if !strings.Contains(u, "security") {
				return strings.TrimRight(u, "/"), nil
			}
		}
	}
	return "", errors.New("no Debian archive (deb, main, not security) in the apt sources")
}

func isSecuritySuite(s string) bool {
	return strings.HasSuffix(s, "-security") || strings.HasSuffix(s, "/updates")
}

// SystemMirror returns the Debian archive URI configured for apt on this
// machine, so the kernel lab uses the same mirror (or proxy) as apt does.
// root is prepended to the apt paths; pass "/" outside tests.
func SystemMirror(root string) (string, error) {
	var all []aptSource
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	more, err := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d/*"))
	if err != nil {
		return "", err
	}
	files = append(files, more...)
	for _, f := range files {
		s, err := readSources(f)
		if err != nil {
			return "", fmt.Errorf("reading apt sources %s: %w", f, err)
		}
		all = append(all, s...)
	}
	return debianMirror(all)
}

func readSources(path string) ([]aptSource, error) {
	var parse func(io.Reader) ([]aptSource, error)
	switch {
	case strings.HasSuffix(path, ".sources"):
		parse = parseDeb822Sources
	case strings.HasSuffix(path, ".list"):
		parse = parseOneLineSources
	default:
		return nil, nil // apt ignores other names too
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parse(f)
}
