//go:build !linux

package ptracecall

// PickThread returns ErrUnsupported: only Linux is supported.
func PickThread(pid int) (int, error) { return 0, unsupported() }
