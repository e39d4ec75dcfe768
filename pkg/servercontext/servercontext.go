// Package servercontext reads CloudSigma's server context: the hypervisor
// answers on a serial port inside the guest with the server's own definition
// (uuid, meta, attached drives). The node plugin uses it for its node ID, so
// it needs no API credentials and no guessing from DMI data.
//
// Protocol: write "<\n\n>" for the whole context or "<\nKEY\n>" for one
// value; the reply is one line (JSON, or a bare leaf value) ended by "\n"
// and EOT (0x04). Replies can be garbled early in boot, so every reply is
// validated and the request retried.
package servercontext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// DefaultDevice is the serial port CloudSigma wires the context to.
const DefaultDevice = "/dev/ttyS1"

const (
	eot       = 0x04
	maxReply  = 4 << 20 // a context with many drives and meta is a few KiB
	drainWait = 20 * time.Millisecond
)

// Context is the part of the server definition the driver uses.
type Context struct {
	UUID   string
	Name   string
	Meta   map[string]string
	Drives []Drive
}

// Drive is an attached drive as the hypervisor sees it.
type Drive struct {
	DriveUUID  string
	DevChannel string // "controller:unit"
	Device     string // virtio or ide
	Boot       bool   // boot_order is set: a drive the server boots from
	// Defined: the context carried the drive's definition, so Name and
	// Meta are its own; false when it gave only the drive's URI.
	Defined bool
	Name    string
	Meta    map[string]string
	Size    int64 // bytes, from the definition; 0 when not given
}

// Port is the serial line: an open tty, or a pipe in tests.
type Port interface {
	io.ReadWriteCloser
	SetReadDeadline(t time.Time) error
}

// Client talks to the server context; the zero value uses OpenTTY and the
// default retry policy.
type Client struct {
	Open           func(path string) (Port, error) // nil means OpenTTY
	Attempts       int                             // default 6
	AttemptTimeout time.Duration                   // per reply; default 3s
	Backoff        time.Duration                   // first pause between attempts; default 250ms
}

// ReadServerUUID returns this server's UUID using a default Client.
func ReadServerUUID(ctx context.Context, devicePath string) (string, error) {
	return (&Client{}).ReadServerUUID(ctx, devicePath)
}

// ReadContext returns this server's context using a default Client.
func ReadContext(ctx context.Context, devicePath string) (*Context, error) {
	return (&Client{}).ReadContext(ctx, devicePath)
}

// ReadServerUUID asks for the single "uuid" value.
func (c *Client) ReadServerUUID(ctx context.Context, devicePath string) (string, error) {
	var id string
	err := c.query(ctx, devicePath, "uuid", func(line []byte) (err error) {
		id, err = parseUUIDReply(line)
		return err
	})
	return id, err
}

// ReadContext asks for the whole context.
func (c *Client) ReadContext(ctx context.Context, devicePath string) (*Context, error) {
	var sc *Context
	err := c.query(ctx, devicePath, "", func(line []byte) (err error) {
		sc, err = parseContext(line)
		return err
	})
	return sc, err
}

// errNoReply marks an attempt that got no EOT-terminated reply in time.
var errNoReply = errors.New("no reply")

// query sends one request per attempt until accept takes a reply.
func (c *Client) query(ctx context.Context, devicePath, key string, accept func([]byte) error) error {
	open := c.Open
	if open == nil {
		open = OpenTTY
	}
	port, err := open(devicePath)
	if err != nil {
		return fmt.Errorf("server context: %w", err)
	}
	defer port.Close()

	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 6
	}
	backoff := durationOr(c.Backoff, 250*time.Millisecond)
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("server context on %s: %w (last error: %v)", devicePath, ctx.Err(), last)
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		line, err := c.exchange(ctx, port, key)
		if err == nil {
			if err = accept(line); err == nil {
				return nil
			}
		}
		last = err
	}
	if errors.Is(last, errNoReply) {
		last = fmt.Errorf("%w (is the server context disabled on this server?)", last)
	}
	return fmt.Errorf("server context on %s: %d attempts failed, last: %w", devicePath, attempts, last)
}

// exchange drops stale input (the tail of an earlier garbled reply), sends
// the request and returns the last line before EOT.
func (c *Client) exchange(ctx context.Context, port Port, key string) ([]byte, error) {
	drain(port)
	if _, err := port.Write([]byte("<\n" + key + "\n>")); err != nil {
		return nil, fmt.Errorf("writing request: %w", err)
	}
	deadline := time.Now().Add(durationOr(c.AttemptTimeout, 3*time.Second))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := port.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	var reply []byte
	buf := make([]byte, 4096)
	for {
		n, err := port.Read(buf)
		reply = append(reply, buf[:n]...)
		if i := bytes.IndexByte(reply, eot); i >= 0 {
			return lastLine(reply[:i]), nil
		}
		if len(reply) > maxReply {
			return nil, fmt.Errorf("reply longer than %d bytes without EOT", maxReply)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("%w within the deadline (%d bytes without EOT)", errNoReply, len(reply))
		}
		if err != nil {
			return nil, fmt.Errorf("reading reply: %w", err)
		}
	}
}

// drain discards whatever is already waiting on the line.
func drain(port Port) {
	buf := make([]byte, 4096)
	for {
		if port.SetReadDeadline(time.Now().Add(drainWait)) != nil {
			return
		}
		if n, err := port.Read(buf); err != nil || n == 0 {
			return
		}
	}
}

// lastLine is the last non-empty line: noise before the reply is dropped.
func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := bytes.TrimSpace(lines[i]); len(l) > 0 {
			return l
		}
	}
	return nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
