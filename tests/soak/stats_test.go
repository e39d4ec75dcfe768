package soak_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// opStats are the figures of one operation type.
type opStats struct {
	runs, ok, skipped, wrong, stuck int
	refused                         map[codes.Code]int // correct refusals
}

// stats are the run's figures; every method is safe for concurrent use.
type stats struct {
	mu      sync.Mutex
	ops     map[string]*opStats
	retries map[codes.Code]int

	// Invariant violations, described.
	wrong      []string // an answer the model says is wrong
	stuck      []string // an operation that did not converge
	duplicates []string // two volumes (or snapshots) for one name
	mismatches []string // the cloud's state differs from what the answers said
	leaks      []string // objects left after the cleanup
}

func newStats() *stats {
	return &stats{ops: map[string]*opStats{}, retries: map[codes.Code]int{}}
}

func (s *stats) op(name string) *opStats {
	o := s.ops[name]
	if o == nil {
		o = &opStats{refused: map[codes.Code]int{}}
		s.ops[name] = o
	}
	return o
}

func (s *stats) run(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.op(op).runs++
}

func (s *stats) skip(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.op(op).skipped++
}

func (s *stats) retry(code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries[code]++
}

// outcome records a final answer: OK, a correct refusal, or a wrong one.
func (s *stats) outcome(op string, code codes.Code, right bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.op(op)
	switch {
	case !right:
		o.wrong++
		s.wrong = append(s.wrong, fmt.Sprintf("%s: %s", op, why))
	case code == codes.OK:
		o.ok++
	default:
		o.refused[code]++
	}
}

func (s *stats) notConverged(op, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.op(op).stuck++
	s.stuck = append(s.stuck, fmt.Sprintf("%s: %s", op, why))
}

func (s *stats) violation(list *[]string, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*list = append(*list, fmt.Sprintf(format, args...))
}

// figures is everything the run prints.
type figures struct {
	seed                 uint64
	workers, ops         int
	duration             time.Duration
	restarts, kills      int
	failed, lost, slowed int // injected faults
	apiCalls, callLog    int
	deletesAttached      []string
	deletesWithSnapshots []string
}

func codeList(m map[codes.Code]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, c := range slices.SortedFunc(maps.Keys(m), func(a, b codes.Code) int { return int(a) - int(b) }) {
		parts = append(parts, fmt.Sprintf("%s=%d", c, m[c]))
	}
	return strings.Join(parts, " ")
}

// lines renders the figures, one line each.
func (s *stats) lines(f figures) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{
		fmt.Sprintf("soak: seed=%d workers=%d operations=%d duration=%s", f.seed, f.workers, f.ops, f.duration.Round(100*time.Millisecond)),
		fmt.Sprintf("soak: %-16s %5s %5s %5s %5s %5s  %s", "operation", "runs", "ok", "skip", "wrong", "stuck", "correct refusals"),
	}
	refused := map[codes.Code]int{}
	for _, name := range slices.Sorted(maps.Keys(s.ops)) {
		o := s.ops[name]
		out = append(out, fmt.Sprintf("soak: %-16s %5d %5d %5d %5d %5d  %s", name, o.runs, o.ok, o.skipped, o.wrong, o.stuck, codeList(o.refused)))
		for c, n := range o.refused {
			refused[c] += n
		}
	}
	out = append(out,
		fmt.Sprintf("soak: refusals by code: %s", codeList(refused)),
		fmt.Sprintf("soak: retries by code: %s", codeList(s.retries)),
		fmt.Sprintf("soak: injected faults: %d failed calls, %d lost answers, %d delayed calls", f.failed, f.lost, f.slowed),
		fmt.Sprintf("soak: driver restarts: %d (%d killed, %d graceful)", f.restarts, f.kills, f.restarts-f.kills),
		fmt.Sprintf("soak: API calls: %d (call log %d)", f.apiCalls, f.callLog),
		fmt.Sprintf("soak: invariants: %d leaks, %d duplicates, %d deletes while attached, %d drives deleted with snapshots, %d not converged, %d wrong answers, %d state mismatches",
			len(s.leaks), len(s.duplicates), len(f.deletesAttached), len(f.deletesWithSnapshots), len(s.stuck), len(s.wrong), len(s.mismatches)),
	)
	return out
}

// failures lists every violation, at most a few of each kind.
func (s *stats) failures(f figures) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range []struct {
		what string
		list []string
	}{
		{"leaked object", s.leaks}, {"duplicate", s.duplicates}, {"drive deleted while attached", f.deletesAttached},
		{"drive deleted with its snapshots", f.deletesWithSnapshots}, {"operation did not converge", s.stuck},
		{"wrong answer", s.wrong}, {"state mismatch", s.mismatches},
	} {
		for i, v := range k.list {
			if i == 10 {
				out = append(out, fmt.Sprintf("%s: ... and %d more", k.what, len(k.list)-i))
				break
			}
			out = append(out, k.what+": "+v)
		}
	}
	return out
}
