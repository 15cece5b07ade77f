package proc

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestIdentityChanged: a pid reused (another start time) and an exec
// (another executable) are each told apart; the same process is not.
func TestIdentityChanged(t *testing.T) {
	was := Identity{Start: "100", ExeDev: 1, ExeIno: 2}
	for _, tc := range []struct {
		now  Identity
		want string
	}{
		{Identity{Start: "100", ExeDev: 1, ExeIno: 2}, ""},
		{Identity{Start: "101", ExeDev: 1, ExeIno: 2}, "exited and its pid was reused"},
		{Identity{Start: "100", ExeDev: 1, ExeIno: 3}, "exec'd another program"},
		{Identity{Start: "100", ExeDev: 9, ExeIno: 2}, "exec'd another program"},
		{Identity{Start: "100", ExeErr: true}, "executable can be read false"},
		{Identity{Start: "100", ExeErr: true, State: "Z"}, ""},
		{Identity{Start: "101", ExeErr: true, State: "Z"}, "pid was reused"},
	} {
		got := was.Changed(7, tc.now)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.now, got, tc.want)
		}
	}
}

// TestReadIdentitySelf: this process's identity is read and stable.
func TestReadIdentitySelf(t *testing.T) {
	a, err := ReadIdentity("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadIdentity("/proc/" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if a.Start == "" || a.ExeIno == 0 || a.Changed(os.Getpid(), b) != "" {
		t.Errorf("%+v vs %+v", a, b)
	}
}
