package migrate

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// writeTree writes the tree at root into tw, each name under prefix (a
// section such as "rootfs/" or "volumes/NAME/"), root itself as prefix.
// It carries contents, modes with their setuid/setgid/sticky bits, numeric
// owners, times, symlinks, hard links (within the tree), FIFOs, overlay
// whiteouts and the extended attributes xattrCarried names; it skips
// sockets and refuses devices. The tree must not change meanwhile (the
// container is frozen).
func writeTree(tw *tar.Writer, prefix, root string) error {
	return walkTree(prefix, root, func(hdr *tar.Header, content *os.File) error {
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if content == nil {
			return nil
		}
		if _, err := io.CopyN(tw, content, hdr.Size); err != nil {
			if err == io.EOF {
				return fmt.Errorf("the file shrank while being sent")
			}
			return err
		}
		return nil
	})
}

// treeStats is what a tree costs in the stream.
type treeStats struct {
	// Bytes is an upper bound of the stream bytes of the tree: what the
	// source announces, and the most the destination accepts.
	Bytes int64
	// Entries is the number of tar entries.
	Entries int64
}

// scanTree measures the tree writeTree would write, without writing it,
// and refuses what the stream cannot carry, naming the file. The source
// runs it before the freeze to fail early; the size it announces (the sum
// over its sections, which the extractor takes as its limit) must come
// from trees that no longer change: the frozen container's, and the CRIU
// images once dumped.
func scanTree(prefix, root string) (treeStats, error) {
	var s treeStats
	err := walkTree(prefix, root, func(hdr *tar.Header, _ *os.File) error {
		s.Entries++
		s.Bytes += entryBound(hdr)
		return nil
	})
	return s, err
}

const blockSize = 512

func padded(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// entryBound is an upper bound of the stream bytes of one entry: its
// header block, a PAX header block, the PAX records (path, linkpath,
// mtime, atime, uid, gid, size: each under 64 bytes beyond the names;
// xattrs) and the contents, each padded to whole blocks.
func entryBound(hdr *tar.Header) int64 {
	records := int64(7*64 + len(hdr.Name) + len(hdr.Linkname))
	for k, v := range hdr.PAXRecords {
		records += int64(len(k)+len(v)) + 16 // "%d %s=%s\n"
	}
	n := 2*blockSize + padded(records)
	if hdr.Typeflag == tar.TypeReg {
		n += padded(hdr.Size)
	}
	return n
}

// walkTree calls visit with the header of root and of everything below it,
// parents first and names sorted; content is the open file of a regular
// entry and nil otherwise. The walk goes from directory descriptors and
// never follows a symlink, so a tree that changes meanwhile cannot make it
// read outside root.
func walkTree(prefix, root string, visit func(hdr *tar.Header, content *os.File) error) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", root, err)
	}
	d := os.NewFile(uintptr(fd), root)
	defer d.Close()
	w := &treeWalker{visit: visit, links: map[inode]string{}}
	return w.dir(d, prefix)
}

type inode struct{ dev, ino uint64 }

type treeWalker struct {
	visit func(hdr *tar.Header, content *os.File) error
	// links maps the inodes of regular files with several names to the
	// first name sent: later names go as hard links to it.
	links map[inode]string
}

// dir visits the open directory d, named name in the stream, and its
// contents.
func (w *treeWalker) dir(d *os.File, name string) error {
	hdr, err := fdHeader(d, name, tar.TypeDir, unix.S_IFDIR)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := w.visit(hdr, nil); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	slices.Sort(names)
	for _, child := range names {
		if err := w.child(int(d.Fd()), child, name+child); err != nil {
			return err
		}
	}
	return nil
}

// child visits the entry base of the directory dirfd, named name in the
// stream.
func (w *treeWalker) child(dirfd int, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since the directory was read
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return w.subdir(dirfd, base, name) // names its own errors
	case unix.S_IFREG:
		err = w.file(dirfd, base, name, &st)
	case unix.S_IFLNK:
		err = w.symlink(dirfd, base, name, &st)
	case unix.S_IFIFO:
		err = w.visit(statHeader(name, tar.TypeFifo, &st), nil)
	case unix.S_IFSOCK:
		return nil // a socket is not a file: CRIU binds it again on restore
	case unix.S_IFCHR, unix.S_IFBLK:
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			// An overlay whiteout: the layer deleted this name.
			err = w.visit(statHeader(name, tar.TypeChar, &st), nil)
			break
		}
		return fmt.Errorf("%s is a device node (%d:%d); a migration cannot carry devices: remove it, or have the container create it when it starts",
			name, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (w *treeWalker) subdir(dirfd int, base, name string) error {
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	return w.dir(d, name+"/")
}

func (w *treeWalker) file(dirfd int, base, name string, st *unix.Stat_t) error {
	id := inode{st.Dev, st.Ino}
	if first, ok := w.links[id]; ok {
		hdr := statHeader(name, tar.TypeLink, st)
		hdr.Linkname = first
		return w.visit(hdr, nil)
	}
	// O_NONBLOCK: should a FIFO have taken the file's place, opening it
	// must not wait for a writer (fdHeader then refuses it).
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	hdr, err := fdHeader(f, name, tar.TypeReg, unix.S_IFREG)
	if err != nil {
		return err
	}
	if st.Nlink > 1 {
		w.links[id] = name
	}
	return w.visit(hdr, f)
}

func (w *treeWalker) symlink(dirfd int, base, name string, st *unix.Stat_t) error {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, base, buf)
	if err != nil {
		return err
	}
	hdr := statHeader(name, tar.TypeSymlink, st)
	hdr.Linkname = string(buf[:n])
	return w.visit(hdr, nil)
}

// fdHeader is the header of the open f, which must be of type ifmt, with
// its size and extended attributes: what the descriptor shows is what is
// sent, whatever the name pointed to when it was listed.
func fdHeader(f *os.File, name string, typ byte, ifmt uint32) (*tar.Header, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != ifmt {
		return nil, fmt.Errorf("it changed while being read")
	}
	hdr := statHeader(name, typ, &st)
	if typ == tar.TypeReg {
		hdr.Size = st.Size
	}
	xattrs, err := readXattrs(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+k] = v
	}
	return hdr, nil
}

// statHeader is the header of a stream entry with st's metadata: numeric
// owners and all 12 mode bits; PAX keeps the times to the nanosecond.
func statHeader(name string, typ byte, st *unix.Stat_t) *tar.Header {
	return &tar.Header{
		Format:     tar.FormatPAX,
		Typeflag:   typ,
		Name:       name,
		Mode:       int64(st.Mode & 0o7777),
		Uid:        int(st.Uid),
		Gid:        int(st.Gid),
		ModTime:    time.Unix(st.Mtim.Unix()),
		AccessTime: time.Unix(st.Atim.Unix()),
	}
}

// readXattrs reads the extended attributes of fd that the stream carries.
func readXattrs(fd int) (map[string]string, error) {
	list, err := xattrRead(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil // the file system has none
	}
	if err != nil {
		return nil, fmt.Errorf("listing extended attributes: %w", err)
	}
	var out map[string]string
	for _, name := range splitNul(list) {
		if xattrRefusedOnSend(name) {
			return nil, fmt.Errorf("it has %s: its contents are in another overlay layer, which the stream does not carry (mount overlay with redirect_dir=off,metacopy=off)", name)
		}
		if !xattrCarried(name) {
			continue
		}
		v, err := xattrRead(func(b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(v)
	}
	return out, nil
}

// xattrRead calls get, which fills a buffer as getxattr(2) and
// listxattr(2) do, with a buffer as large as needed.
func xattrRead(get func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := get(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil // with no buffer, get would only measure again
		}
		buf := make([]byte, n)
		n, err = get(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // it grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		b = b[min(i+1, len(b)):]
	}
	return out
}
