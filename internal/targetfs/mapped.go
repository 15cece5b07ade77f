package targetfs

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// MappedFile names a file a process maps, as /proc/PID/maps gives it.
type MappedFile struct {
	Start, End         uint64
	Path               string
	DevMajor, DevMinor uint32
	Inode              uint64
}

// OpenMapped opens, for reading, the file a process maps: through
// procDir/map_files (the kernel's link to the mapped inode; CAP_SYS_ADMIN),
// or else by its path inside the process's root. The process's user
// controls that path (and may swap in a FIFO, a device or a symlink at any
// moment), so nothing is opened for reading before it is known to be the
// mapped file: the name is first opened O_PATH — no open of a device or a
// FIFO happens, nothing blocks — its descriptor must be a regular file on
// the mapped device with the mapped inode, and only that descriptor is
// reopened, through /proc/self/fd, O_RDONLY|O_NONBLOCK|O_NOCTTY.
func OpenMapped(procDir string, m MappedFile) (*os.File, error) {
	pathFD, err := unix.Open(fmt.Sprintf("%s/map_files/%x-%x", procDir, m.Start, m.End), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		root, rerr := OpenRoot(procDir)
		if rerr != nil {
			return nil, fmt.Errorf("opening %s: %w (map_files: %w)", m.Path, rerr, err)
		}
		defer root.Close()
		f, rerr := OpenIn(root, m.Path, unix.O_PATH)
		if rerr != nil {
			return nil, fmt.Errorf("opening %s: %w (map_files: %w)", m.Path, rerr, err)
		}
		pathFD = int(f.Fd())
		defer f.Close()
	} else {
		defer unix.Close(pathFD)
	}
	var st unix.Stat_t
	if err := unix.Fstat(pathFD, &st); err != nil {
		return nil, fmt.Errorf("fstat %s: %w", m.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != m.Inode || unix.Major(st.Dev) != m.DevMajor || unix.Minor(st.Dev) != m.DevMinor {
		return nil, fmt.Errorf("%s is not the file mapped at %#x (a regular file, device %d:%d inode %d; found mode %#o, device %d:%d inode %d)",
			m.Path, m.Start, m.DevMajor, m.DevMinor, m.Inode, st.Mode, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pathFD), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", m.Path, err)
	}
	return os.NewFile(uintptr(fd), m.Path), nil
}
