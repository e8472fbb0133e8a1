package criucheck

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
)

// StampSuffix names the stamp that the fleet's CRIU build leaves next to
// the binary (test/sim/install-deps.sh): the binary's SHA-256 and the
// patches from packaging/criu it was built with.
const StampSuffix = ".fleet"

// Patches returns the fleet patches the CRIU binary at path was built
// with: none for a stock build, or when the stamp does not match the
// binary (replaced since, by a package or by hand).
func Patches(path string) []string {
	f, err := os.Open(path + StampSuffix)
	if err != nil {
		return nil
	}
	defer f.Close()
	var sum string
	var patches []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 2 && fields[0] == "binary-sha256":
			sum = fields[1]
		case len(fields) == 3 && fields[0] == "patch":
			patches = append(patches, fields[1])
		}
	}
	if sum == "" || sum != fileSHA256(path) {
		return nil
	}
	return patches
}

func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
