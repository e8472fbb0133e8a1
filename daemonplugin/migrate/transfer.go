// Package migrate is the agents' half of live migration: the source
// checkpoints a container and streams it (writable layer, named volumes,
// CRIU images) straight to the destination agent, which recreates it and
// restores it; the source removes its copy only once the destination runs.
package migrate

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// overlayOpaque marks a directory of an overlay upper layer that hides the
// lower layers' contents; it must travel with the writable layer.
const overlayOpaque = "trusted.overlay.opaque"

// writeTree writes the tree at root into tw, each name under prefix.
func writeTree(tw *tar.Writer, prefix, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err // the root itself: the receiver has it
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = prefix + filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
			if v, err := getxattr(p, overlayOpaque); err == nil {
				hdr.PAXRecords = map[string]string{"SCHILY.xattr." + overlayOpaque: v}
			}
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// errUnsafe is a stream entry that would land outside its directory.
var errUnsafe = errors.New("unsafe path in the stream")

// safeJoin joins rel under root, refusing absolute paths, "." and ".."
// components, and any existing parent that is a symlink (which could lead
// outside root).
func safeJoin(root, rel string) (string, error) {
	rel = strings.TrimSuffix(rel, "/")
	if rel == "" || strings.HasPrefix(rel, "/") || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("%w: %q", errUnsafe, rel)
	}
	parts := strings.Split(rel, "/")
	p := root
	for i, part := range parts {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("%w: %q", errUnsafe, rel)
		}
		p = filepath.Join(p, part)
		if i < len(parts)-1 {
			if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
				return "", fmt.Errorf("%w: %q goes through a symlink", errUnsafe, rel)
			}
		}
	}
	return p, nil
}

// extractor writes a received stream into the directories its sections
// name. Nothing is written outside them and the total is bounded.
type extractor struct {
	// dir maps a section and its first name component ("rootfs", "" or
	// "volumes", NAME) to the directory that receives it.
	dir   func(section, name string) (string, error)
	limit int64
	total int64
}

func (x *extractor) extract(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := x.entry(tr, hdr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	section, rest, ok := strings.Cut(hdr.Name, "/")
	if !ok {
		return errUnsafe
	}
	name := ""
	if section+"/" == "volumes/" {
		if name, rest, ok = strings.Cut(rest, "/"); !ok {
			return errUnsafe
		}
	}
	root, err := x.dir(section, name)
	if err != nil {
		return err
	}
	if rest == "" {
		return nil // the section's root itself
	}
	p, err := safeJoin(root, rest)
	if err != nil {
		return err
	}
	mode := os.FileMode(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		if v, ok := hdr.PAXRecords["SCHILY.xattr."+overlayOpaque]; ok {
			if err := unix.Lsetxattr(p, overlayOpaque, []byte(v), 0); err != nil {
				return err
			}
		}
	case tar.TypeReg:
		x.total += hdr.Size
		if x.total > x.limit {
			return fmt.Errorf("the stream is larger than the %d bytes allowed", x.limit)
		}
		_ = os.Remove(p)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL|unix.O_NOFOLLOW, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, io.LimitReader(tr, hdr.Size)); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		_ = os.Remove(p)
		if err := os.Symlink(hdr.Linkname, p); err != nil {
			return err
		}
	case tar.TypeChar:
		// Only overlay whiteouts (0/0 devices): a deleted file of the layer.
		if hdr.Devmajor != 0 || hdr.Devminor != 0 {
			return fmt.Errorf("%w: device %d:%d", errUnsafe, hdr.Devmajor, hdr.Devminor)
		}
		_ = os.Remove(p)
		if err := unix.Mknod(p, unix.S_IFCHR|uint32(mode), 0); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: entry type %q", errUnsafe, hdr.Typeflag)
	}
	if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		_ = os.Chtimes(p, hdr.ModTime, hdr.ModTime)
	}
	return nil
}
