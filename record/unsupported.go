//go:build !(linux && amd64)

package record

import "context"

// Record is built for linux/amd64 only.
func Record(ctx context.Context, o Options) (*Result, error) { return nil, ErrUnsupported }
