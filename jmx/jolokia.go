package jmx

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/memdiag/memdiag/internal/input"
)

// ErrJolokia means the Jolokia endpoint answered with an error.
var ErrJolokia = errors.New("jolokia error")

// Jolokia reads the memory MBeans of a JVM through a Jolokia endpoint
// (https://jolokia.org/reference/html/protocol.html) in one bulk POST.
type Jolokia struct {
	URL string // e.g. http://host:8778/jolokia/
	// User and Password, for HTTP basic authentication. Read them from the
	// environment or a file (see the command), never from argv alone.
	User, Password string
	// CAFile trusts this PEM bundle for https; Insecure skips verification.
	CAFile   string
	Insecure bool
	Timeout  time.Duration
}

// ErrCredentials means a Jolokia credentials file's first line is not
// USER:PASSWORD.
var ErrCredentials = errors.New("the first line must be USER:PASSWORD")

// LoadCredentials sets User and Password from file, whose first line is
// USER:PASSWORD, or, with no file, from MEMDIAG_JOLOKIA_USER and
// MEMDIAG_JOLOKIA_PASSWORD through getenv (nil: neither): a password
// never has to appear in argv, where ps shows it.
func (j *Jolokia) LoadCredentials(file string, getenv func(string) string) error {
	if file == "" {
		if getenv != nil {
			j.User, j.Password = getenv("MEMDIAG_JOLOKIA_USER"), getenv("MEMDIAG_JOLOKIA_PASSWORD")
		}
		return nil
	}
	f, err := input.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := input.ReadAll(f, 64<<10, file) // one line of USER:PASSWORD
	if err != nil {
		return err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	user, pass, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok {
		return fmt.Errorf("%s: %w", file, ErrCredentials)
	}
	j.User, j.Password = user, pass
	return nil
}

// Bounds on what Read takes in: the answer to its three reads is a few KiB,
// and a CA bundle (all of a distribution's roots) about 200 KiB.
const (
	maxJolokiaBytes = 1 << 20
	maxCABytes      = 4 << 20
)

var jolokiaRequest = []map[string]any{
	{"type": "read", "mbean": "java.lang:type=Memory", "attribute": []string{"HeapMemoryUsage", "NonHeapMemoryUsage"}},
	{"type": "read", "mbean": "java.lang:type=MemoryPool,name=*", "attribute": []string{"Usage", "Type", "Name"}},
	{"type": "read", "mbean": "java.nio:type=BufferPool,name=*", "attribute": []string{"Count", "MemoryUsed", "TotalCapacity", "Name"}},
}

type jolokiaUsage struct {
	Init, Committed, Max, Used int64
}

type jolokiaResponse struct {
	Status    int             `json:"status"`
	Error     string          `json:"error"`
	ErrorType string          `json:"error_type"`
	Value     json.RawMessage `json:"value"`
}

func (j Jolokia) client() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a diagnostic tool talks to the endpoint it is given
	if j.CAFile != "" || j.Insecure {
		cfg := &tls.Config{InsecureSkipVerify: j.Insecure} // #nosec: only with --jolokia-insecure
		if j.CAFile != "" {
			f, err := input.Open(j.CAFile)
			if err != nil {
				return nil, err
			}
			pem, err := input.ReadAll(f, maxCABytes, j.CAFile)
			f.Close()
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", j.CAFile)
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	timeout := j.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// Read fetches heap, non-heap, memory pools and buffer pools.
func (j Jolokia) Read(ctx context.Context) (*JVMMemory, error) {
	c, err := j.client()
	if err != nil {
		return nil, fmt.Errorf("jolokia %s: %w", j.URL, err)
	}
	body, _ := json.Marshal(jolokiaRequest)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("jolokia %s: %w", j.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if j.User != "" {
		req.SetBasicAuth(j.User, j.Password)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jolokia %s: %w", j.URL, err)
	}
	defer resp.Body.Close()
	raw, err := input.ReadAll(resp.Body, maxJolokiaBytes, "jolokia "+j.URL)
	if errors.Is(err, input.ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("jolokia %s: reading the answer: %w", j.URL, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return nil, fmt.Errorf("jolokia %s: HTTP %d: %w: credentials refused (set MEMDIAG_JOLOKIA_USER and MEMDIAG_JOLOKIA_PASSWORD, or --jolokia-credentials FILE)", j.URL, resp.StatusCode, ErrJolokia)
	}
	m, err := ParseJolokia(raw, j.URL)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ParseJolokia reads the answer to the bulk request Jolokia.Read sends: an
// array of {request, value, status} objects.
func ParseJolokia(raw []byte, source string) (*JVMMemory, error) {
	var rs []jolokiaResponse
	if err := json.Unmarshal(raw, &rs); err != nil {
		var one jolokiaResponse
		if json.Unmarshal(raw, &one) == nil && one.Status != 0 {
			rs = []jolokiaResponse{one}
		} else {
			return nil, &ParseError{Name: source, Msg: "the answer is not a Jolokia bulk response: " + err.Error(), Err: ErrMalformed}
		}
	}
	m := &JVMMemory{Sources: []string{"jolokia " + source}}
	src := "jolokia"
	for i, r := range rs {
		if r.Status != 200 {
			if i == 2 && r.Status == 404 {
				continue // an old JVM without java.nio buffer pools
			}
			return nil, fmt.Errorf("jolokia %s: request %d: status %d %s: %w: %s", source, i+1, r.Status, r.ErrorType, ErrJolokia, r.Error)
		}
		switch i {
		case 0:
			var v struct{ HeapMemoryUsage, NonHeapMemoryUsage jolokiaUsage }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				return nil, &ParseError{Name: source, Msg: "java.lang:type=Memory: " + err.Error(), Err: ErrMalformed}
			}
			m.Heap = usageOf(v.HeapMemoryUsage, src)
			m.NonHeap = usageOf(v.NonHeapMemoryUsage, src)
		case 1:
			var pools map[string]struct {
				Usage      *jolokiaUsage
				Type, Name string
			}
			if err := json.Unmarshal(r.Value, &pools); err != nil {
				return nil, &ParseError{Name: source, Msg: "MemoryPool: " + err.Error(), Err: ErrMalformed}
			}
			for _, p := range pools {
				if p.Usage == nil {
					continue
				}
				u := usageOf(*p.Usage, src)
				m.Pools = append(m.Pools, Pool{Name: p.Name, Type: strings.ReplaceAll(strings.ToLower(p.Type), "_", "-"),
					UsedBytes: u.UsedBytes, CommittedBytes: u.CommittedBytes, MaxBytes: u.MaxBytes, Source: src})
			}
		case 2:
			var pools map[string]struct {
				Count, MemoryUsed, TotalCapacity int64
				Name                             string
			}
			if err := json.Unmarshal(r.Value, &pools); err != nil {
				return nil, &ParseError{Name: source, Msg: "BufferPool: " + err.Error(), Err: ErrMalformed}
			}
			for _, p := range pools {
				m.BufferPools = append(m.BufferPools, BufferPool{Name: p.Name, Count: nonNeg(p.Count), UsedBytes: nonNeg(p.MemoryUsed),
					CapacityBytes: nonNeg(p.TotalCapacity), Source: src})
			}
		}
	}
	sortPools(m)
	return m, nil
}

func nonNeg(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

func usageOf(u jolokiaUsage, source string) Usage {
	out := Usage{UsedBytes: nonNeg(u.Used), CommittedBytes: nonNeg(u.Committed), Source: source, Known: true}
	if u.Max >= 0 {
		v := uint64(u.Max)
		out.MaxBytes = &v
	}
	return out
}

// sortPools orders pools heap first, then by name; buffer pools by name.
func sortPools(m *JVMMemory) {
	sort.Slice(m.Pools, func(i, j int) bool {
		if m.Pools[i].Type != m.Pools[j].Type {
			return m.Pools[i].Type == "heap"
		}
		return m.Pools[i].Name < m.Pools[j].Name
	})
	sort.Slice(m.BufferPools, func(i, j int) bool { return m.BufferPools[i].Name < m.BufferPools[j].Name })
}
