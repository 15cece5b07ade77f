package goruntime

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Fetch reads the page at url — expvar's /debug/vars or a Prometheus
// /metrics with the Go collector — within timeout.
func Fetch(ctx context.Context, url string, timeout time.Duration) (*MemStats, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	// No redirect is followed: the page is the program's to serve, and a
	// redirect would send root's request where the program chose.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s (redirects are not followed)", url, resp.Status)
	}
	return Parse(resp.Body, url)
}
