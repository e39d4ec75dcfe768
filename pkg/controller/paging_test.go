package controller

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestReadPage(t *testing.T) {
	for _, tc := range []struct {
		token string
		max   int32
		want  page
		code  codes.Code
	}{
		{"", 0, page{}, codes.OK},
		{"7", 3, page{offset: 7, max: 3}, codes.OK},
		{"x", 0, page{}, codes.Aborted},  // not a token we issued
		{"-1", 0, page{}, codes.Aborted}, // nor this
		{"", -1, page{}, codes.InvalidArgument},
	} {
		got, err := readPage(tc.token, tc.max)
		if status.Code(err) != tc.code || got != tc.want {
			t.Errorf("readPage(%q, %d) = %+v, %v; want %+v, %v", tc.token, tc.max, got, err, tc.want, tc.code)
		}
	}
}

func TestPageWalksAListToItsEnd(t *testing.T) {
	all := []int{0, 1, 2, 3, 4}
	var seen []int
	token := ""
	for range 10 {
		p, err := readPage(token, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.check(len(all), "items"); err != nil {
			t.Fatal(err)
		}
		got := cut(p, all)
		seen = append(seen, got...)
		if token = p.nextToken(len(got), len(all)); token == "" {
			break
		}
	}
	if !slices.Equal(seen, all) {
		t.Fatalf("pages gave %v, want %v", seen, all)
	}
	if err := (page{offset: 5}).check(len(all), "items"); status.Code(err) != codes.Aborted {
		t.Fatalf("a token past the end: %v, want Aborted", err)
	}
	if err := (page{}).check(0, "items"); err != nil {
		t.Fatalf("the start of an empty list: %v", err)
	}
}
