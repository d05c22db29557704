// Command ociimage writes cgrstat's OCI image (make image): a multi-arch
// image index over dist/cgrstat-linux-{amd64,arm64}, as an OCI layout and an
// OCI archive. See internal/ociimage.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cgrstat/cgrstat/internal/ociimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run() error {
	var arches, dist, dir, archive, version, source string
	var epoch int64
	flag.StringVar(&dist, "dist", "dist", "directory holding cgrstat-linux-<arch>")
	flag.StringVar(&arches, "arch", "amd64,arm64", "architectures (GOARCH), comma separated")
	flag.StringVar(&dir, "layout", "dist/cgrstat-oci", "OCI image layout to write (must not exist)")
	flag.StringVar(&archive, "archive", "dist/cgrstat-oci.tar", "OCI archive to write (empty: none)")
	flag.StringVar(&version, "version", "devel", "version: the image's label and the layout's reference name")
	flag.StringVar(&source, "source", "https://github.com/cgrstat/cgrstat", "repository, for the image's label")
	flag.Int64Var(&epoch, "source-date-epoch", envEpoch(), "creation time, seconds since 1970 (default $SOURCE_DATE_EPOCH or 0)")
	flag.Parse()
	o := ociimage.Options{Binaries: map[string]string{}, Version: version, Created: time.Unix(epoch, 0).UTC(), Source: source}
	for _, a := range strings.Split(arches, ",") {
		o.Binaries[a] = fmt.Sprintf("%s/cgrstat-linux-%s", dist, a)
	}
	d, err := ociimage.Build(o, dir, archive)
	if err != nil {
		return err
	}
	fmt.Printf("%s: oci:%s:%s, index %s\n", dir, dir, ociimage.RefName(version), d)
	if archive != "" {
		fmt.Printf("%s: podman load -i %s, or oci-archive:%s\n", archive, archive, archive)
	}
	return nil
}

func envEpoch() int64 {
	n, _ := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	return n
}
