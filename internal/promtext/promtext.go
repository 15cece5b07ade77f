// Package promtext reads an application's metrics page — Prometheus's
// text exposition, or expvar's JSON — for the packages that parse one
// (jmx, nodejs, goruntime).
package promtext

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/memdiag/memdiag/internal/input"
)

// Parse reads a text page into its metric families. Prometheus's parser
// panics on some malformed input; a panic becomes an error.
func Parse(r io.Reader) (families map[string]*dto.MetricFamily, err error) {
	defer func() {
		if p := recover(); p != nil {
			families, err = nil, fmt.Errorf("the parser failed on malformed input (%v)", p)
		}
	}()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Bounds on a page: an application's memory metrics are a few KiB, a
// whole exposition rarely a few MiB; the text parser gathers each token
// whole, so a line is bounded too.
const (
	maxPageBytes = 64 << 20
	maxLineBytes = 1 << 20
)

// IsURL reports whether target names an http or https page rather than a
// file.
func IsURL(target string) bool {
	return strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://")
}

// ReadPage fetches (an http or https URL) or reads (a file, - for stdin)
// a text page whole, within maxPageBytes and maxLineBytes, so that one
// reading can be given to every parser that may recognise it. No redirect
// is followed: the page is the application's to serve, and a redirect
// would send the request where the application chose.
func ReadPage(ctx context.Context, target string, timeout time.Duration) ([]byte, error) {
	var r io.Reader
	if IsURL(target) {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", target, err)
		}
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", target, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetching %s: %s (redirects are not followed)", target, resp.Status)
		}
		r = resp.Body
	} else {
		f, err := input.Open(target)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(input.LineLimitReader(input.LimitReader(r, maxPageBytes, target), maxLineBytes, target))
}
