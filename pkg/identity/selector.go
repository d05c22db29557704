package identity

import (
	"fmt"
	"strings"
)

// Keys are what a selector can test, in the order the help lists them.
var Keys = []string{"kind", "pod", "qos", "container", "runtime", "unit", "user"}

// Selector picks cgroups by identity: every term must hold.
type Selector []term

type term struct{ key, value string }

// IsSelector says whether s is meant as a selector, "KEY=VALUE[,...]"
// with a known key, rather than a regular expression on paths (which
// never needs "kind=" and the like).
func IsSelector(s string) bool {
	key, _, ok := strings.Cut(s, "=")
	return ok && known(key)
}

func known(key string) bool {
	for _, k := range Keys {
		if k == key {
			return true
		}
	}
	return false
}

// ParseSelector parses "KEY=VALUE[,KEY=VALUE...]". pod and container
// match a prefix of the ID, as a short name shows it ("pod=0b3c9a5e"); a
// pod UID may be written with underscores, as systemd slice names have
// it, and a container as kube-state-metrics writes it
// ("containerd://<id>"). Other keys match exactly.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	for _, t := range strings.Split(s, ",") {
		key, value, ok := strings.Cut(t, "=")
		if !ok || !known(key) {
			return nil, fmt.Errorf("%q: want KEY=VALUE with KEY one of %s", t, strings.Join(Keys, ", "))
		}
		if value == "" {
			return nil, fmt.Errorf("%q: empty value", t)
		}
		switch key {
		case "pod":
			value = strings.ReplaceAll(value, "_", "-")
		case "container":
			if _, id, ok := strings.Cut(value, "://"); ok {
				value = id
			}
		case "qos":
			value = strings.ToLower(value)
		}
		sel = append(sel, term{key, value})
	}
	return sel, nil
}

// Match says whether the identity id (ok false: none) passes every term.
func (s Selector) Match(id Identity, ok bool) bool {
	if !ok {
		return len(s) == 0
	}
	for _, t := range s {
		var hit bool
		switch t.key {
		case "kind":
			hit = string(id.Kind) == t.value
		case "pod":
			hit = id.PodUID != "" && strings.HasPrefix(id.PodUID, t.value)
		case "qos":
			hit = id.QoS == t.value
		case "container":
			hit = id.ContainerID != "" && strings.HasPrefix(id.ContainerID, t.value)
		case "runtime":
			hit = string(id.Runtime) == t.value
		case "unit":
			hit = id.Unit == t.value
		case "user":
			hit = id.User == t.value
		}
		if !hit {
			return false
		}
	}
	return true
}
