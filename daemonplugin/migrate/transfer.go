// Package migrate is the agents' half of live migration: the source
// checkpoints a container and streams it (writable layer, named volumes,
// CRIU images) straight to the destination agent, which recreates it and
// restores it; the source removes its copy only once the destination runs.
package migrate

import (
	"hash"
	"hash/crc32"
	"strings"

	"github.com/containerd/errdefs"
)

// newStreamSum is the stream's end-to-end checksum, which the trailer
// carries: CRC-32C, which the CPU computes at memory speed. TLS already
// authenticates every record; the sum catches what the agents themselves
// could get wrong (a short or reordered copy), where SHA-256 took a
// quarter of each side's CPU on the stream's hot path.
func newStreamSum() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }

// The migration stream is a tar: tree.go writes it (writeTree) and
// measures it beforehand (scanTree), extract.go writes it back on the
// destination (extractor). This file holds what both sides agree on.

// errUnsafe marks a stream that is hostile or corrupt: an entry that would
// land outside its directory, or that the sender never makes. The sender's
// fault: invalid argument.
var errUnsafe = errdefs.ErrInvalidArgument.WithMessage("unsafe entry in the stream")

// overlayOpaque marks a directory of an overlay upper layer that hides the
// lower layers' contents; it must travel with the writable layer.
const overlayOpaque = "trusted.overlay.opaque"

// paxXattr prefixes the PAX records that carry extended attributes.
const paxXattr = "SCHILY.xattr."

// xattrCarried says whether the stream carries the extended attribute
// name. Others are dropped by the sender and refused by the receiver: an
// overlay redirect or metacopy, for one, would point into another layer.
func xattrCarried(name string) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability" || name == overlayOpaque
}

// xattrRefusedOnSend names the attributes the sender refuses rather than
// drops: without them the file or directory has other contents.
func xattrRefusedOnSend(name string) bool {
	return name == "trusted.overlay.redirect" || name == "trusted.overlay.metacopy"
}
