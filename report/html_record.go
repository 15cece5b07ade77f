package report

import (
	"io"
	"strconv"

	"github.com/memdiag/memdiag/record"
)

// writeRecordHTML renders a recording's page: its summary and stacks as
// the text has them, under the flame graph of what is outstanding.
func writeRecordHTML(w io.Writer, v *RecordView) error {
	tables := recordTables(v)
	fp := &FlamePage{Title: tables[0].Title, Source: "uprobes on the allocator of " + v.Result.Comm,
		What:   "bytes allocated during the recording and not freed by its end, by the stack that allocated them",
		Stacks: recordStacks(v.Result.Stacks, len(v.Result.Processes) > 1), Tables: tables, Findings: v.Findings}
	return WriteFlamePage(w, fp)
}

// recordStacks are a recording's stacks, outermost caller first; a stack
// that could not be taken is filed under why. With several processes, each
// process is the outermost frame of its stacks.
func recordStacks(ss []record.Stack, byProcess bool) []Stack {
	out := make([]Stack, 0, len(ss))
	for _, s := range ss {
		st := Stack{Bytes: s.OutstandingBytes, Count: int(s.OutstandingCount)}
		if byProcess {
			st.Frames = append(st.Frames, "process "+strconv.Itoa(s.PID))
		}
		for i := len(s.Frames) - 1; i >= 0; i-- {
			st.Frames = append(st.Frames, s.Frames[i].String())
		}
		if len(s.Frames) == 0 {
			st.Frames = append(st.Frames, stackLabel(s))
		}
		out = append(out, st)
	}
	return out
}
