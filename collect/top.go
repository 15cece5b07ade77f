package collect

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/memdiag/memdiag/proctop"
	"github.com/memdiag/memdiag/report"
)

// TopRequest is what `memdiag top` reads and lists.
type TopRequest struct {
	Options proctop.Options
	// Limit, Reverse and GroupBy shape the table (report.TopView).
	Limit   int
	Reverse bool
	GroupBy string
	// Interval, when set, reads twice, this far apart, for each process's
	// growth.
	Interval time.Duration
	// User and Name are the filter's user and name as given, for the
	// title ("" when none).
	User, Name string
	// Details says whose user and command line to read.
	Details TopDetails
}

// TopDetails says whose user and command line top reads.
type TopDetails int

// Whose details: the rows a table shows, every process (JSON), or none
// (OpenMetrics, a table of commands).
const (
	DetailsShown TopDetails = iota
	DetailsAll
	DetailsNone
)

// Top reads the host once, or twice Interval apart, and returns the view.
func Top(ctx context.Context, r *TopRequest) (*report.TopView, error) {
	start := time.Now()
	s, err := proctop.Read(r.Options)
	if err != nil {
		return nil, err
	}
	v := &report.TopView{Scan: s, Elapsed: time.Since(start), Limit: r.Limit, GroupBy: r.GroupBy, Reverse: r.Reverse, User: r.User, Name: r.Name}
	if r.Interval > 0 {
		select {
		case <-time.After(r.Interval):
		case <-ctx.Done():
			return nil, errors.New("interrupted before the second reading")
		}
		start = time.Now()
		s2, err := proctop.Read(r.Options)
		if err != nil {
			return nil, err
		}
		v.Growth, v.Scan, v.Elapsed, v.Interval = proctop.Compare(s, s2), s2, time.Since(start), r.Interval
	}
	v.Details = r.readDetails(v.Scan)
	return v, nil
}

// readDetails reads the user and command line of the processes r asks for.
func (r *TopRequest) readDetails(s *proctop.Scan) map[int]proctop.Details {
	ps := s.Processes
	switch {
	case r.Details == DetailsNone:
		return nil
	case r.Details == DetailsShown && r.Limit > 0 && len(ps) > r.Limit:
		if r.Reverse {
			ps = ps[len(ps)-r.Limit:]
		} else {
			ps = ps[:r.Limit]
		}
	}
	return proctop.ReadDetails(r.Options.Proc, ps)
}

// TopTextfile keeps dir/memdiag_top.prom current for node_exporter's
// textfile collector, rewritten every interval until ctx ends.
func TopTextfile(ctx context.Context, o proctop.Options, dir string, interval time.Duration, errOut io.Writer) error {
	return report.KeepTextfile(ctx, dir, "memdiag_top.prom", interval, errOut, func(w io.Writer) error {
		start := time.Now()
		s, err := proctop.Read(o)
		if err != nil {
			return err
		}
		return report.WriteTop(w, report.FormatOpenMetrics, &report.TopView{Scan: s, Elapsed: time.Since(start)}, report.Style{})
	})
}
