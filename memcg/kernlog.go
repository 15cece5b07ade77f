package memcg

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// logFormat is how a kernel log was saved, told by its first record: each
// format marks where a kernel record starts, and a line that does not
// carry the mark is the continuation of a message with a newline in it
// (text a user put in a kernel message, such as a rejected mount option)
// and never a record of its own.
type logFormat int

const (
	formatUnknown     logFormat = iota
	formatKmsg                  // /dev/kmsg: "pri,seq,usec,flags;message", escaped
	formatDmesg                 // dmesg, dmesg -r: "[  ts] message", "<pri>[  ts] message"
	formatDmesgX                // dmesg -x: "kern  :err   : [  ts] message"
	formatJournal               // journalctl -k: "Dec 03 11:00:00 host kernel: message"
	formatKernLog               // syslog's kern.log: "Dec  3 11:00:00 host kernel: [  ts] message"
	formatJournalMono           // journalctl -k -o short-monotonic: "[  ts] host kernel: message"
	formatDmesgT                // dmesg -T: "[Tue Dec  3 11:00:00 2024] message"
	formatDmesgISO              // dmesg --time-format iso: "2024-12-03T11:00:00,123456+01:00 message"
	formatBare                  // dmesg -t: no prefix at all; shapes are all there is
)

// Compiled on first use, not at start: every run of memdiag would pay for
// them, and most never read this format.
var (
	kmsgPrefix   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\d+),\d+,(\d+),[^;]*;`) })
	dmesgPrefix  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?:<(\d+)>)?\[ *(\d+\.\d+)\] ?`) })
	dmesgXPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-z0-9]+) *:([a-z]+) *: \[ *(\d+\.\d+)\] ?`) })
	monoPrefix   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\[ *(\d+\.\d+)\] \S+ kernel: `) })
	// journalctl (with or without --no-hostname) and syslog's kern.log,
	// which keeps the kernel's own timestamp after "kernel: ".
	journalPrefix = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT[0-9:.,+-]+) (?:\S+ )?kernel: (?:\[ *(\d+\.\d+)\] )?`)
	})
	dmesgTPrefix = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4})\] ?`)
	})
	dmesgISOPrefix = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[,.]\d+[+-]\d\d:?\d\d) `)
	})
)

// kernelLine is one record of a kernel log, its prefix taken off.
type kernelLine struct {
	ts string // seconds since boot, as printed; "" where the format has none
	// clock is the wall-clock time journalctl printed; "" in other formats.
	clock string
	text  string // the message, from its first byte
}

// splitRecord reads raw as a record of format f. ok is false for a line
// that is not a kernel record: a continuation line, /dev/kmsg's dictionary
// lines (" SUBSYSTEM=…"), and messages of another facility than the
// kernel's (0) — what a user writes to /dev/kmsg, or journald's own lines.
func splitRecord(f logFormat, raw string) (l kernelLine, ok bool) {
	switch f {
	case formatKmsg:
		m := kmsgPrefix().FindStringSubmatch(raw)
		if m == nil || !kernelFacility(m[1]) {
			return l, false
		}
		us, _ := strconv.ParseUint(m[2], 10, 64)
		return kernelLine{ts: strconv.FormatUint(us/1e6, 10) + "." + pad6(us%1e6), text: raw[len(m[0]):]}, true
	case formatDmesg:
		m := dmesgPrefix().FindStringSubmatch(raw)
		if m == nil || (m[1] != "" && !kernelFacility(m[1])) {
			return l, false
		}
		return kernelLine{ts: m[2], text: raw[len(m[0]):]}, true
	case formatDmesgX:
		m := dmesgXPrefix().FindStringSubmatch(raw)
		if m == nil || m[1] != "kern" {
			return l, false
		}
		return kernelLine{ts: m[3], text: raw[len(m[0]):]}, true
	case formatJournal, formatKernLog:
		m := journalPrefix().FindStringSubmatch(raw)
		// In a syslog file anyone can write a line as "kernel" (logger -t
		// kernel); the kernel's own carry its timestamp.
		if m == nil || f == formatKernLog && m[2] == "" {
			return l, false
		}
		return kernelLine{clock: m[1], ts: m[2], text: raw[len(m[0]):]}, true
	case formatDmesgT, formatDmesgISO:
		re := dmesgTPrefix()
		if f == formatDmesgISO {
			re = dmesgISOPrefix()
		}
		m := re.FindStringSubmatch(raw)
		if m == nil {
			return l, false
		}
		return kernelLine{clock: m[1], text: raw[len(m[0]):]}, true
	case formatJournalMono:
		m := monoPrefix().FindStringSubmatch(raw)
		if m == nil {
			return l, false
		}
		return kernelLine{ts: m[1], text: raw[len(m[0]):]}, true
	case formatBare:
		return kernelLine{text: raw}, true
	}
	return l, false
}

// sniffFormat tells the format from the first line.
func sniffFormat(raw string) logFormat {
	switch {
	case kmsgPrefix().MatchString(raw):
		return formatKmsg
	case monoPrefix().MatchString(raw):
		return formatJournalMono
	case dmesgPrefix().MatchString(raw):
		return formatDmesg
	case dmesgXPrefix().MatchString(raw):
		return formatDmesgX
	case journalPrefix().MatchString(raw):
		if journalPrefix().FindStringSubmatch(raw)[2] != "" {
			return formatKernLog
		}
		return formatJournal
	case dmesgTPrefix().MatchString(raw):
		return formatDmesgT
	case dmesgISOPrefix().MatchString(raw):
		return formatDmesgISO
	}
	return formatBare
}

// kernelFacility: a syslog priority of facility 0, LOG_KERN.
func kernelFacility(pri string) bool {
	n, err := strconv.ParseUint(pri, 10, 32)
	return err == nil && n>>3 == 0
}

func pad6(n uint64) string {
	s := strconv.FormatUint(n, 10)
	return strings.Repeat("0", 6-len(s)) + s
}
