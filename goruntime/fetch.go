package goruntime

import (
	"bytes"
	"context"
	"time"

	"github.com/memdiag/memdiag/internal/promtext"
)

// Fetch reads the page at url — expvar's /debug/vars or a Prometheus
// /metrics with the Go collector — within timeout, following no redirect.
func Fetch(ctx context.Context, url string, timeout time.Duration) (*MemStats, error) {
	page, err := promtext.ReadPage(ctx, url, timeout)
	if err != nil {
		return nil, err
	}
	return Parse(bytes.NewReader(page), url)
}
