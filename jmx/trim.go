package jmx

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNoTrimNativeHeap means the JVM does not know System.trim_native_heap,
// which came with JDK 17.0.8.
var ErrNoTrimNativeHeap = errors.New("the JVM has no System.trim_native_heap (JDK 17.0.8 and later)")

// TrimNativeHeap asks JVM pid to give its malloc's free memory back
// (System.trim_native_heap: the JVM calls malloc_trim itself, no ptrace)
// and returns what it said.
func (a Attacher) TrimNativeHeap(ctx context.Context, pid int) (reply string, err error) {
	reply, err = a.Run(ctx, pid, "System.trim_native_heap")
	if err != nil {
		return "", err
	}
	reply = strings.TrimSpace(reply)
	// An older JVM answers, but with jcmd's words for a command it lacks.
	if strings.Contains(reply, "Unknown diagnostic command") || strings.Contains(reply, "not available") {
		return reply, fmt.Errorf("%w: %s", ErrNoTrimNativeHeap, reply)
	}
	return reply, nil
}
