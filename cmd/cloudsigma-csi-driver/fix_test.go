package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

// A wrong password is told apart from an outage, with where the credentials
// come from, and without the password.
func TestCheckAPINamesRejectedCredentials(t *testing.T) {
	sim, err := cloudsim.New(cloudsim.Config{Username: "u@example.com", Password: "right"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	client := func(password string) *cloudsigma.Client {
		c, err := cloudsigma.New(cloudsigma.Config{APIURL: srv.URL + "/api/2.0/", Username: "u@example.com", Password: password, AllowInsecureHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	err = checkAPI(client("hunter2"), "/etc/cloudsigma/credentials")(context.Background())
	if err == nil || !strings.Contains(err.Error(), "rejected the credentials") || !strings.Contains(err.Error(), "/etc/cloudsigma/credentials") {
		t.Fatalf("check with a wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if err := checkAPI(client("right"), "")(context.Background()); err != nil {
		t.Fatalf("check with the right password: %v", err)
	}
}
