package cmd

import "github.com/memdiag/memdiag/report"

// watchHTMLView is a watch's samples for its HTML page, times in the
// local zone as the text shows them.
func watchHTMLView(pid int, command string, samples []*watchSample, summary string) *report.WatchView {
	v := &report.WatchView{PID: pid, Command: command, Summary: summary}
	for _, s := range samples {
		ws := report.WatchSample{Time: s.Time.Local(), ElapsedSeconds: s.ElapsedSeconds, RSSBytes: s.RSSBytes}
		for _, c := range s.Categories {
			ws.Categories = append(ws.Categories, report.WatchCategory{Category: c.Category, Bytes: c.Bytes, DeltaBytes: c.DeltaBytes, RateBytesPerMin: c.RateBytesPerMin})
		}
		if s.Lead != nil {
			ws.Lead = "[" + s.Lead.Severity + "] " + s.Lead.ID + ": " + s.Lead.Summary
		}
		v.Samples = append(v.Samples, ws)
	}
	return v
}
