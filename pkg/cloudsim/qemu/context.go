package qemu

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// ServeContext answers CloudSigma server-context requests on rw, the host
// end of the guest's second serial port (/dev/ttyS1 in the guest), as the
// hypervisor does: "<\n\n>" asks for the whole context, "<\nKEY\n>" for one
// value (KEY may be a path, "meta/ssh_public_key" or "/meta/..."). Each
// reply is one line, JSON or a bare string leaf, then EOT (0x04).
// definition is asked at every request, so the answer follows the server's
// current definition. Bytes outside a request are ignored. It returns when
// rw fails (io.EOF when the guest's QEMU is gone).
func ServeContext(rw io.ReadWriter, definition func() map[string]any) error {
	br := bufio.NewReader(rw)
	for {
		key, err := readRequest(br)
		if err != nil {
			return err
		}
		if _, err := rw.Write(contextReply(definition(), key)); err != nil {
			return err
		}
	}
}

// readRequest reads up to the next "<\nKEY\n>" and returns KEY.
func readRequest(br *bufio.Reader) (string, error) {
	for {
		if _, err := br.ReadBytes('<'); err != nil {
			return "", err
		}
		b, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		if b != '\n' {
			_ = br.UnreadByte() // may be the '<' of the real request
			continue
		}
		var key bytes.Buffer
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return "", err
			}
			key.Write(line)
			if next, err := br.Peek(1); err == nil && next[0] == '>' {
				_, _ = br.ReadByte()
				return strings.TrimSpace(key.String()), nil
			}
		}
	}
}

// contextReply is the value at key, or the whole definition for "".
func contextReply(def map[string]any, key string) []byte {
	var v any = def
	for _, part := range strings.Split(strings.Trim(key, "/"), "/") {
		if part == "" {
			continue
		}
		switch cur := v.(type) {
		case map[string]any:
			v = cur[part]
		case []any:
			v = nil
			if i, ok := index(part, len(cur)); ok {
				v = cur[i]
			}
		default:
			v = nil
		}
	}
	var line []byte
	if s, ok := v.(string); ok && key != "" {
		line = []byte(s) // a leaf string is sent bare
	} else {
		line, _ = json.Marshal(v)
	}
	return append(line, '\n', 0x04)
}

func index(s string, n int) (int, bool) {
	i := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
		if i >= n {
			return 0, false
		}
	}
	return i, s != ""
}
