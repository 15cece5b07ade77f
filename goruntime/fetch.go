package goruntime

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Fetch reads the expvar page at url, within timeout.
func Fetch(ctx context.Context, url string, timeout time.Duration) (*MemStats, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	return ParseExpvar(resp.Body, url)
}
