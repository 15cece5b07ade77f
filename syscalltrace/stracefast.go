package syscalltrace

import "strings"

// decodeFast decodes the shapes of the calls a trace is mostly made of —
// mmap, munmap, madvise, mremap and brk with plain numbers and flag words,
// then " = number" and an optional -T " <seconds>" — in one pass, without
// splitting the argument list. It reports false for anything else (quoted
// or nested arguments, -y paths, failed calls, odd spacing), leaving e's
// argument fields in any state: complete's general path decodes those.
// s is the text after the call's '('.
func (d *straceDecoder) decodeFast(e *Event, s string) bool {
	var ok bool
	switch e.Call {
	case CallMmap:
		if e.Addr, s, ok = fastArg(s); !ok {
			return false
		}
		if e.Len, s, ok = fastArg(s); !ok {
			return false
		}
		var prot, flags string
		if prot, s, ok = repeatedWord(s, d.lastProt); !ok {
			return false
		}
		if flags, s, ok = repeatedWord(s, d.lastFlags); !ok {
			return false
		}
		if e.FD, s, ok = fastFD(s); !ok {
			return false
		}
		if e.Offset, s, ok = fastNum(s); !ok || !strings.HasPrefix(s, ")") {
			return false
		}
		e.Prot = d.prot(prot)
		e.Flags, e.FlagsText = d.flags(flags)
	case CallMunmap:
		if e.Addr, s, ok = fastArg(s); !ok {
			return false
		}
		if e.Len, s, ok = fastNum(s); !ok || !strings.HasPrefix(s, ")") {
			return false
		}
	case CallMadvise:
		if e.Addr, s, ok = fastArg(s); !ok {
			return false
		}
		if e.Len, s, ok = fastArg(s); !ok {
			return false
		}
		var advice string
		if advice, s, ok = fastWord(s); !ok || !strings.HasPrefix(s, ")") {
			return false
		}
		e.Advice = d.str(strings.TrimPrefix(advice, "MADV_"))
	case CallMremap:
		if e.Addr, s, ok = fastArg(s); !ok {
			return false
		}
		if e.Len, s, ok = fastArg(s); !ok {
			return false
		}
		if e.NewLen, s, ok = fastArg(s); !ok {
			return false
		}
		var flags string
		if flags, s, ok = fastWord(s); !ok {
			return false
		}
		if strings.HasPrefix(s, ", ") {
			if e.NewAddr, s, ok = fastNum(s[2:]); !ok {
				return false
			}
		}
		if !strings.HasPrefix(s, ")") {
			return false
		}
		e.Flags, e.FlagsText = d.flags(flags)
	case CallBrk:
		if e.Addr, s, ok = fastNum(s); !ok || !strings.HasPrefix(s, ")") {
			return false
		}
	default:
		return false
	}
	return fastResult(e, s[1:])
}

// fastResult reads " = 0x7f…" and an optional " <0.000012>" after the
// arguments' ')'.
func fastResult(e *Event, s string) bool {
	s = skipSpaces(s)
	if !strings.HasPrefix(s, "= ") {
		return false
	}
	var ok bool
	if e.Ret, s, ok = fastNum(s[2:]); !ok {
		return false
	}
	if s == "" {
		return true
	}
	if !strings.HasPrefix(s, " <") || !strings.HasSuffix(s, ">") {
		return false
	}
	e.Duration, ok = parseMicros(s[2 : len(s)-1])
	return ok
}

// parseMicros reads -T's "0.000012", which strace prints with six fraction
// digits, without a loop over them; other shapes go to parseDecimal, whose
// value it equals (the same exact integer, divided by the same power of ten).
func parseMicros(s string) (float64, bool) {
	n := len(s)
	if n < len("0.000012") || n > len("99999.000012") || s[n-7] != '.' {
		return parseDecimal(s)
	}
	f := s[n-6:]
	u0, u1, u2, u3, u4, u5 := f[0]-'0', f[1]-'0', f[2]-'0', f[3]-'0', f[4]-'0', f[5]-'0'
	if u0 > 9 || u1 > 9 || u2 > 9 || u3 > 9 || u4 > 9 || u5 > 9 {
		return parseDecimal(s)
	}
	var whole uint64
	for i := range n - 7 {
		c := s[i] - '0'
		if c > 9 {
			return parseDecimal(s)
		}
		whole = whole*10 + uint64(c)
	}
	us := ((((uint64(u0)*10+uint64(u1))*10+uint64(u2))*10+uint64(u3))*10+uint64(u4))*10 + uint64(u5)
	return float64(whole*1e6+us) / 1e6, true
}

// wordByte says which bytes make up flag words: letters, digits, '_', '|'.
var wordByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '_' || c == '|' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
	}
	return t
}()

const notHex = 0xff

// hexValue maps a byte to its value as a hex digit, or notHex: a lookup
// instead of three range tests per digit.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = notHex
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = byte(c-'a'+10), byte(c-'a'+10)
	}
	return t
}()

// fastArg reads a number and the ", " after it.
func fastArg(s string) (uint64, string, bool) {
	v, rest, ok := fastNum(s)
	if !ok || !strings.HasPrefix(rest, ", ") {
		return 0, s, false
	}
	return v, rest[2:], true
}

// fastNum reads "NULL", hex "0x…" (at most 16 digits) or decimal (at most
// 19 digits) at the start of s; longer numbers go the general way, which
// says whether they overflow.
func fastNum(s string) (uint64, string, bool) {
	if strings.HasPrefix(s, "NULL") {
		return 0, s[4:], true
	}
	var v uint64
	i := 0
	if strings.HasPrefix(s, "0x") {
		for i = 2; i < len(s); i++ {
			h := hexValue[s[i]]
			if h == notHex {
				return v, s[i:], i > 2 && i <= 18
			}
			v = v<<4 | uint64(h)
		}
		return v, "", i > 2 && i <= 18
	}
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		v = v*10 + uint64(s[i]-'0')
	}
	return v, s[i:], i > 0 && i <= 19
}

// isWord reports whether s is made of flag-word bytes only.
func isWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if !wordByte[s[i]] {
			return false
		}
	}
	return s != ""
}

// fastWord reads a flag word ("PROT_READ|PROT_WRITE", "MADV_DONTNEED") up
// to the ", " or ')' after it; ", " is consumed.
func fastWord(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case wordByte[c]:
		case c == ')' && i > 0:
			return s[:i], s[i:], true
		case c == ',' && i > 0 && strings.HasPrefix(s[i:], ", "):
			return s[:i], s[i+2:], true
		default:
			return "", s, false
		}
	}
	return "", s, false
}

// repeatedWord is fastWord, checking first whether s starts with the word
// the previous call had there: one compare instead of a scan, most of the
// time.
func repeatedWord(s string, last word) (string, string, bool) {
	if n := len(last.key); last.plain && len(s) > n && s[:n] == last.key {
		switch {
		case s[n] == ')':
			return s[:n], s[n:], true
		case s[n] == ',' && strings.HasPrefix(s[n:], ", "):
			return s[:n], s[n+2:], true
		}
	}
	return fastWord(s)
}

// fastFD reads "-1" or a plain descriptor and the ", " after it; -y's
// "3</path>" goes the general way.
func fastFD(s string) (int64, string, bool) {
	if strings.HasPrefix(s, "-1, ") {
		return -1, s[4:], true
	}
	i := 0
	var v int64
	for ; i < len(s) && i < 10 && s[i] >= '0' && s[i] <= '9'; i++ {
		v = v*10 + int64(s[i]-'0')
	}
	if i == 0 || !strings.HasPrefix(s[i:], ", ") {
		return 0, s, false
	}
	return v, s[i+2:], true
}
