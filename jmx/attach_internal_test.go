package jmx

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/targetfs"
)

// TestRequestBoundsReply: a listener that streams without end drove
// memdiag to 1.29 GB; the reply is now cut at its bound with an error.
func TestRequestBoundsReply(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		req := "1\x00jcmd\x00VM.version\x00\x00\x00"
		if _, err := io.ReadFull(server, make([]byte, len(req))); err != nil {
			return
		}
		chunk := []byte("0\n" + strings.Repeat("x", 64<<10-2))
		for {
			if _, err := server.Write(chunk); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := request(ctx, client, "VM.version")
	if !errors.Is(err, ErrAttach) || !errors.Is(err, targetfs.ErrTooLarge) {
		t.Errorf("got %v, want ErrAttach wrapping ErrTooLarge", err)
	}
}
