package main

import (
	"strings"
	"testing"
)

func TestTopologyLocation(t *testing.T) {
	for _, tc := range []struct {
		name, location, apiURL, want string
	}{
		{"explicit", "fra", "", "fra"},
		{"explicit wins over the API host", "fra", "https://zrh.cloudsigma.com/api/2.0/", "fra"},
		{"from the API host", "", "https://zrh.cloudsigma.com/api/2.0/", "zrh"},
		{"from the API host with userinfo", "", "https://u:" + testPassword + "@sjc.cloudsigma.com/api/2.0/", "sjc"},
		{"simulator", "", "http://127.0.0.1:8080/api/2.0/", "local"},
		{"another host", "", "https://api.example.net/api/2.0/", "local"},
		{"cloudsigma.com only as a prefix", "", "https://zrh.cloudsigma.com.example.net/api/2.0/", "local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := topologyLocation(config{location: tc.location, apiURL: tc.apiURL})
			if err != nil || got != tc.want {
				t.Fatalf("topologyLocation(--location=%q --api-url=%q) = %q, %v; want %q", tc.location, tc.apiURL, got, err, tc.want)
			}
		})
	}
}

func TestTopologyLocationErrors(t *testing.T) {
	_, err := topologyLocation(config{})
	if err == nil || !strings.Contains(err.Error(), "--api-url") || !strings.Contains(err.Error(), "--location") {
		t.Errorf("neither flag: %v, want an error naming --api-url and --location", err)
	}
	// url.Parse quotes the whole URL in its errors; a password in it must
	// not reach the log.
	_, err = topologyLocation(config{apiURL: "https://u:" + testPassword + "@zrh.cloudsigma.com:port/api/2.0/"})
	if err == nil || !strings.Contains(err.Error(), "--api-url") {
		t.Fatalf("invalid URL: %v, want an error naming --api-url", err)
	}
	requireNoSecret(t, err)
}
