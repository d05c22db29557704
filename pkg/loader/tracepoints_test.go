package loader

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

func TestCheckTracepoints(t *testing.T) {
	ulong := &btf.Int{Name: "long unsigned int", Size: 8}
	proto := func(params ...btf.Type) *btf.Typedef {
		fp := &btf.FuncProto{Return: (*btf.Void)(nil), Params: []btf.FuncParam{{Type: &btf.Pointer{Target: (*btf.Void)(nil)}}}}
		for _, p := range params {
			fp.Params = append(fp.Params, btf.FuncParam{Type: p})
		}
		return &btf.Typedef{Type: &btf.Pointer{Target: fp}}
	}
	tests := []struct {
		name string
		end  *btf.Typedef // for both end tracepoints
		want string       // "" for no error
	}{
		{"6.1 to 7.x", proto(ulong), ""},
		{"with a memcg appended", proto(ulong, &btf.Pointer{Target: &btf.Struct{Name: "mem_cgroup"}}), ""},
		{"a memcg first", proto(&btf.Pointer{Target: &btf.Struct{Name: "mem_cgroup"}}, ulong), "not nr_reclaimed"},
		{"an int first", proto(&btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}), "not nr_reclaimed"},
		{"no arguments", proto(), "takes no nr_reclaimed"},
		{"missing", nil, "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := btf.NewBuilder([]btf.Type{ulong}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.end != nil {
				for _, tp := range endTracepoints {
					td := *tt.end
					td.Name = "btf_trace_" + tp
					if _, err := b.Add(&td); err != nil {
						t.Fatal(err)
					}
				}
			}
			raw, err := b.Marshal(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			err = checkTracepoints(spec)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("checkTracepoints: %v, want %q", err, tt.want)
			}
		})
	}
}
