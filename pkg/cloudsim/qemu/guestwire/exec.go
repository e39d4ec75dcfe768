package guestwire

import (
	"encoding/json"
	"io"
)

// Request is what an exec stream carries to the guest: one command, run
// directly (no shell unless argv names one).
type Request struct {
	Argv      []string `json:"argv"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"` // 0 = the agent's default
}

// Reply is the answer on the same stream, after which the agent closes it.
type Reply struct {
	Code   int    `json:"code"` // exit status; -1 when it did not run or was killed
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Error  string `json:"error,omitempty"` // why it did not run or did not finish
}

// MaxOutput bounds what the agent returns of stdout and of stderr.
const MaxOutput = 1 << 20

// WriteMessage writes one JSON message.
func WriteMessage(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// ReadMessage reads one JSON message.
func ReadMessage(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
