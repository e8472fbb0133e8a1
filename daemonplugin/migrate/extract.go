package migrate

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// extractor writes a received stream into the directories its sections
// name. Nothing is written outside them: every operation goes from a
// directory descriptor, one name at a time, and never follows a symlink.
// The stream may carry no more bytes than its source announced.
type extractor struct {
	// dir maps a section and, for volumes, the volume's name ("rootfs", "";
	// "volumes", NAME; "checkpoint", "") to the directory that receives it.
	dir func(section, name string) (string, error)
	// limit is the size the source announced (what scanTree measured).
	limit int64
	// noChown keeps the extracting user as the owner of everything, for
	// tests that run unprivileged; the agent runs as root and sets the
	// stream's owners.
	noChown bool
	// reserveSection is the section whose directory holds a reserve the
	// first large file is written into (reserve.go); empty for none.
	reserveSection string

	read  int64                   // stream bytes consumed so far
	roots map[string]*sectionRoot // the sections' directories, once opened
	dirs  []dirMeta               // directories whose metadata comes last
	buf   []byte
}

// sectionRoot is a section's directory and what the stream put in it.
type sectionRoot struct {
	fd int
	// open holds descriptors of the directories last walked to, from the
	// root down, for the next entries, which are mostly in the same
	// directory. They stay valid: the extractor never removes or renames a
	// directory.
	open []openDir
	// seen holds the type of every name the stream created, by its path
	// below fd: a stream names nothing twice, and hard links go to the
	// files it made.
	seen map[string]byte
}

type openDir struct {
	name string
	fd   int
}

// dirMeta is a directory whose owner, mode, extended attributes and times
// are set once its contents are in.
type dirMeta struct {
	root  *sectionRoot
	comps []string
	hdr   *tar.Header
}

// streamName is where an entry goes: a section, and the path below the
// section's directory (none for the directory itself).
type streamName struct {
	section, volume string
	comps           []string
}

func (n streamName) rel() string { return strings.Join(n.comps, "/") }

func (x *extractor) extract(r io.Reader) error {
	defer x.close()
	tr := tar.NewReader(countingReader{r, &x.read})
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return x.setDirs()
		}
		if err != nil {
			return fmt.Errorf("reading the stream: %w", err)
		}
		if err := x.entry(tr, hdr); err != nil {
			return fmt.Errorf("%q: %w", hdr.Name, err)
		}
	}
}

func (x *extractor) entry(tr io.Reader, hdr *tar.Header) error {
	// The headers count too: every entry takes at least 512 bytes of the
	// budget, so no flood of empty entries gets through either.
	if err := x.within(0); err != nil {
		return err
	}
	if err := checkHeader(hdr); err != nil {
		return err
	}
	n, err := parseName(hdr.Name, hdr.Typeflag == tar.TypeDir)
	if err != nil {
		return err
	}
	if err := x.checkReserved(n); err != nil {
		return err
	}
	r, err := x.root(n)
	if err != nil {
		return err
	}
	if _, dup := r.seen[n.rel()]; dup {
		return fmt.Errorf("%w: the stream names it twice", errUnsafe)
	}
	r.seen[n.rel()] = hdr.Typeflag
	if len(n.comps) == 0 {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: a section's root must be a directory", errUnsafe)
		}
		x.dirs = append(x.dirs, dirMeta{r, nil, hdr})
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.mkdir(r, n, hdr)
	case tar.TypeReg:
		return x.file(tr, r, n, hdr)
	case tar.TypeSymlink:
		return x.symlink(r, n, hdr)
	case tar.TypeLink:
		return x.link(r, n, hdr)
	default: // FIFOs and whiteouts (checkHeader let nothing else through)
		return x.mknod(r, n, hdr)
	}
}

// within fails if n more bytes would take the stream past its limit.
func (x *extractor) within(n int64) error {
	if x.read > x.limit || n > x.limit-x.read {
		return workloads.Refuse(errdefs.ErrInvalidArgument, "the stream carries more than the %d bytes its source announced", x.limit)
	}
	return nil
}

// checkHeader refuses the entry types and PAX records the sender never
// makes: devices, sparse entries (whose few bytes can declare gigabytes),
// extended attributes outside xattrCarried.
func checkHeader(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar:
		if hdr.Devmajor != 0 || hdr.Devminor != 0 {
			return fmt.Errorf("%w: a device node (%d:%d); only overlay whiteouts (0:0) are carried", errUnsafe, hdr.Devmajor, hdr.Devminor)
		}
	case tar.TypeGNUSparse:
		return fmt.Errorf("%w: a GNU sparse entry; the sender sends files whole", errUnsafe)
	default:
		return fmt.Errorf("%w: entry type %q is not carried", errUnsafe, hdr.Typeflag)
	}
	for _, k := range slices.Sorted(maps.Keys(hdr.PAXRecords)) {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("%w: a sparse entry (%s); the sender sends files whole", errUnsafe, k)
		}
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if !xattrCarried(name) {
			return fmt.Errorf("%w: extended attribute %s is not carried", errUnsafe, name)
		}
		if hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("%w: extended attribute %s on an entry of type %q", errUnsafe, name, hdr.Typeflag)
		}
	}
	// -1 would mean "leave as is" to chown; 2^32-1 is the same.
	if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid >= math.MaxUint32 || hdr.Gid >= math.MaxUint32 {
		return fmt.Errorf("%w: owner %d:%d", errUnsafe, hdr.Uid, hdr.Gid)
	}
	return nil
}

// parseName splits a stream name into its section and the path below it,
// refusing absolute names, empty, "." and ".." components, NUL, and
// unknown sections. Only a directory's name may end in "/".
func parseName(name string, isDir bool) (streamName, error) {
	bad := func(why string) (streamName, error) {
		return streamName{}, fmt.Errorf("%w: %s", errUnsafe, why)
	}
	if isDir {
		name = strings.TrimSuffix(name, "/")
	}
	if strings.HasPrefix(name, "/") {
		return bad("an absolute name")
	}
	if strings.ContainsRune(name, 0) {
		return bad("a NUL in the name")
	}
	comps := strings.Split(name, "/")
	for _, c := range comps {
		if c == "" || c == "." || c == ".." {
			return bad(fmt.Sprintf("a name with a %q component", c))
		}
	}
	n := streamName{section: comps[0]}
	comps = comps[1:]
	switch n.section + "/" {
	case api.SectionRootfs, api.SectionCheckpoint:
	case api.SectionVolumes:
		if len(comps) == 0 {
			return bad("a volume without a name")
		}
		n.volume, comps = comps[0], comps[1:]
	default:
		return bad(fmt.Sprintf("unknown section %q", n.section))
	}
	n.comps = comps
	return n, nil
}

// root opens the directory of n's section the first time it is needed.
func (x *extractor) root(n streamName) (*sectionRoot, error) {
	key := n.section + "/" + n.volume
	if r, ok := x.roots[key]; ok {
		return r, nil
	}
	dir, err := x.dir(n.section, n.volume)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	r := &sectionRoot{fd: fd, seen: map[string]byte{}}
	if x.roots == nil {
		x.roots = map[string]*sectionRoot{}
	}
	x.roots[key] = r
	return r, nil
}

func (x *extractor) close() {
	for _, r := range x.roots {
		r.closeFrom(0)
		unix.Close(r.fd)
	}
	x.roots = nil
}

// walk returns a descriptor of the directory comps below the root, valid
// until the next walk. Each component is opened from its parent with
// O_NOFOLLOW|O_DIRECTORY, so no symlink, whether the stream sent it or the
// target had it, leads anywhere else.
func (r *sectionRoot) walk(comps []string) (int, error) {
	keep := 0
	for keep < len(r.open) && keep < len(comps) && r.open[keep].name == comps[keep] {
		keep++
	}
	r.closeFrom(keep)
	for i := keep; i < len(comps); i++ {
		fd, err := unix.Openat(r.top(), comps[i], unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, walkError(strings.Join(comps[:i+1], "/"), err)
		}
		r.open = append(r.open, openDir{comps[i], fd})
	}
	return r.top(), nil
}

func walkError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%w: %s is a symlink or not a directory", errUnsafe, path)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("directory %s is not in the stream before its contents", path)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// parent walks to the directory of comps and returns it with the last
// component.
func (r *sectionRoot) parent(comps []string) (int, string, error) {
	fd, err := r.walk(comps[:len(comps)-1])
	return fd, comps[len(comps)-1], err
}

func (r *sectionRoot) top() int {
	if len(r.open) == 0 {
		return r.fd
	}
	return r.open[len(r.open)-1].fd
}

func (r *sectionRoot) closeFrom(i int) {
	for _, d := range r.open[i:] {
		unix.Close(d.fd)
	}
	r.open = r.open[:i]
}

// mkdir makes a directory, or keeps the one the target has; its metadata
// comes in setDirs.
func (x *extractor) mkdir(r *sectionRoot, n streamName, hdr *tar.Header) error {
	dir, leaf, err := r.parent(n.comps)
	if err != nil {
		return err
	}
	err = unix.Mkdirat(dir, leaf, 0o700)
	if errors.Is(err, unix.EEXIST) {
		err = replaceWithDir(dir, leaf)
	}
	if err != nil {
		return err
	}
	x.dirs = append(x.dirs, dirMeta{r, n.comps, hdr})
	return nil
}

// replaceWithDir keeps the directory at leaf, or replaces what the target
// has there (a symlink, say) with a new directory.
func replaceWithDir(dir int, leaf string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, leaf, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err := unix.Unlinkat(dir, leaf, 0); err != nil {
		return err
	}
	return unix.Mkdirat(dir, leaf, 0o700)
}

// clearName removes what the target has at leaf (a symlink, say) for a new
// entry: the new file is a new inode, so nothing is written through an
// old link. A directory stays, and the entry fails.
func clearName(dir int, leaf string) error {
	err := unix.Unlinkat(dir, leaf, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EISDIR):
		return fmt.Errorf("the target has a directory there")
	}
	return err
}

// file writes a regular file, with holes where its blocks are zeros.
func (x *extractor) file(tr io.Reader, r *sectionRoot, n streamName, hdr *tar.Header) error {
	if err := x.within(hdr.Size); err != nil {
		return err
	}
	dir, leaf, err := r.parent(n.comps)
	if err != nil {
		return err
	}
	if err := clearName(dir, leaf); err != nil {
		return err
	}
	fd, err := x.reserveFor(r, n, dir, leaf, hdr.Size)
	if err == nil && fd < 0 {
		fd, err = unix.Openat(dir, leaf, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	}
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), leaf)
	defer f.Close()
	if err := x.copyHoles(f, tr, hdr.Size); err != nil {
		return err
	}
	if err := x.setMeta(fd, hdr); err != nil {
		return err
	}
	return f.Close()
}

// holeBlock is the granularity at which the receiver makes holes: the
// sender sends sparse files whole, and an aligned block of zeros is
// skipped rather than written.
const holeBlock = 4096

var zeros [holeBlock]byte

// copyHoles copies size bytes from r into the new, empty file f.
func (x *extractor) copyHoles(f *os.File, r io.Reader, size int64) error {
	if x.buf == nil {
		x.buf = make([]byte, 256<<10) // a multiple of holeBlock
	}
	for off := int64(0); off < size; {
		chunk := x.buf[:min(int64(len(x.buf)), size-off)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return err
		}
		if err := writeData(f, chunk, off); err != nil {
			return err
		}
		off += int64(len(chunk))
	}
	// A hole at the end has no write that extends the file.
	return f.Truncate(size)
}

// writeData writes chunk at off in f but for its blocks of zeros.
func writeData(f *os.File, chunk []byte, off int64) error {
	start := 0 // where the data not yet written begins
	for i := 0; i < len(chunk); i += holeBlock {
		b := chunk[i:min(i+holeBlock, len(chunk))]
		if !bytes.Equal(b, zeros[:len(b)]) {
			continue
		}
		if _, err := f.WriteAt(chunk[start:i], off+int64(start)); err != nil {
			return err
		}
		start = i + len(b)
	}
	_, err := f.WriteAt(chunk[start:], off+int64(start))
	return err
}

func (x *extractor) symlink(r *sectionRoot, n streamName, hdr *tar.Header) error {
	dir, leaf, err := r.parent(n.comps)
	if err != nil {
		return err
	}
	if err := clearName(dir, leaf); err != nil {
		return err
	}
	if err := unix.Symlinkat(hdr.Linkname, dir, leaf); err != nil {
		return err
	}
	return x.setMetaAt(dir, leaf, hdr)
}

// link makes a hard link to a file the stream carried earlier in the same
// section (the sender names the first name of an inode there).
func (x *extractor) link(r *sectionRoot, n streamName, hdr *tar.Header) error {
	target, err := parseName(hdr.Linkname, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if target.section != n.section || target.volume != n.volume {
		return fmt.Errorf("%w: hard link to %q, in another section", errUnsafe, hdr.Linkname)
	}
	if t := r.seen[target.rel()]; t != tar.TypeReg && t != tar.TypeLink {
		return fmt.Errorf("%w: hard link to %q, which is not a file the stream carried before", errUnsafe, hdr.Linkname)
	}
	tdir, tleaf, err := r.parent(target.comps)
	if err != nil {
		return err
	}
	// The next walk closes tdir: keep a descriptor of our own.
	tdir, err = unix.FcntlInt(uintptr(tdir), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(tdir)
	dir, leaf, err := r.parent(n.comps)
	if err != nil {
		return err
	}
	if err := clearName(dir, leaf); err != nil {
		return err
	}
	// No AT_SYMLINK_FOLLOW: the link is to the name's own inode.
	return unix.Linkat(tdir, tleaf, dir, leaf, 0)
}

// mknod makes a FIFO or an overlay whiteout (a 0:0 character device).
func (x *extractor) mknod(r *sectionRoot, n streamName, hdr *tar.Header) error {
	dir, leaf, err := r.parent(n.comps)
	if err != nil {
		return err
	}
	if err := clearName(dir, leaf); err != nil {
		return err
	}
	typ := uint32(unix.S_IFIFO)
	if hdr.Typeflag == tar.TypeChar {
		typ = unix.S_IFCHR
	}
	if err := unix.Mknodat(dir, leaf, typ|0o600, 0); err != nil {
		return err
	}
	return x.setMetaAt(dir, leaf, hdr)
}

// setDirs gives the directories their metadata now that their contents
// are in: a read-only directory could not have received them, and each
// entry made in a directory changes its times. Deepest first, so that no
// directory is closed to an unprivileged walk before those below it are
// done.
func (x *extractor) setDirs() error {
	slices.SortStableFunc(x.dirs, func(a, b dirMeta) int { return len(b.comps) - len(a.comps) })
	for _, d := range x.dirs {
		if err := x.setDir(d); err != nil {
			return fmt.Errorf("%q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

func (x *extractor) setDir(d dirMeta) error {
	if len(d.comps) == 0 {
		return x.setMeta(d.root.fd, d.hdr)
	}
	dir, leaf, err := d.root.parent(d.comps)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(dir, leaf, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return x.setMeta(fd, d.hdr)
}

// setMeta gives the open file or directory fd the entry's owner, mode,
// extended attributes and times, in this order: chown clears the setuid
// and setgid bits and file capabilities, and the times go last because
// the rest changes them.
func (x *extractor) setMeta(fd int, hdr *tar.Header) error {
	if !x.noChown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	// After creation, so that the umask plays no part.
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(hdr.PAXRecords)) {
		if name, ok := strings.CutPrefix(k, paxXattr); ok {
			if err := unix.Fsetxattr(fd, name, []byte(hdr.PAXRecords[k]), 0); err != nil {
				return fmt.Errorf("setting %s: %w", name, err)
			}
		}
	}
	return futimens(fd, times(hdr))
}

// setMetaAt is setMeta for an entry that cannot be opened (a symlink, a
// FIFO, a whiteout), by name in dir without following a symlink.
func (x *extractor) setMetaAt(dir int, leaf string, hdr *tar.Header) error {
	if !x.noChown {
		if err := unix.Fchownat(dir, leaf, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if hdr.Typeflag != tar.TypeSymlink { // a symlink's mode means nothing
		if err := chmodAt(dir, leaf, uint32(hdr.Mode&0o7777)); err != nil {
			return err
		}
	}
	ts := times(hdr)
	return unix.UtimesNanoAt(dir, leaf, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// times is the entry's access and modification times, for utimensat.
func times(hdr *tar.Header) *[2]unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return &[2]unix.Timespec{
		{Sec: at.Unix(), Nsec: int64(at.Nanosecond())},
		{Sec: hdr.ModTime.Unix(), Nsec: int64(hdr.ModTime.Nanosecond())},
	}
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}
