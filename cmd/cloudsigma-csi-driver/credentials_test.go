package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Secret values the tests write; no error may contain them.
const (
	testUser     = "csi@example.com"
	testPassword = "pw-hunter2-secret"
	testToken    = "tok-4f1c9e-secret"
)

// credentialsDir writes each name=value into a new directory, as a mounted
// Secret would (values end with a newline, as `kubectl create secret
// --from-file` keeps them).
func credentialsDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, value := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func requireNoSecret(t *testing.T, err error) {
	t.Helper()
	for _, secret := range []string{testPassword, testToken} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q reveals a credential", err)
		}
	}
}

func TestCredentialsFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		env                   map[string]string
		user, password, token string
	}{
		{"username and password", map[string]string{"CLOUDSIGMA_USERNAME": testUser, "CLOUDSIGMA_PASSWORD": testPassword}, testUser, testPassword, ""},
		{"token only", map[string]string{"CLOUDSIGMA_TOKEN": testToken}, "", "", testToken},
		// Nothing set is not an error here: the client refuses a config
		// without credentials.
		{"nothing", nil, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"CLOUDSIGMA_USERNAME", "CLOUDSIGMA_PASSWORD", "CLOUDSIGMA_TOKEN"} {
				t.Setenv(k, tc.env[k])
			}
			user, pass, token, err := credentials("")
			if err != nil || user != tc.user || pass != tc.password || token != tc.token {
				t.Fatalf("credentials() = %q, %q, %q, %v; want %q, %q, %q", user, pass, token, err, tc.user, tc.password, tc.token)
			}
		})
	}
}

func TestCredentialsFromDirectory(t *testing.T) {
	// The environment plays no part once a directory is given.
	t.Setenv("CLOUDSIGMA_USERNAME", "env-user")
	t.Setenv("CLOUDSIGMA_PASSWORD", "env-password")
	t.Setenv("CLOUDSIGMA_TOKEN", "env-token")
	for _, tc := range []struct {
		name                  string
		files                 map[string]string
		user, password, token string
	}{
		{"username and password", map[string]string{"username": testUser, "password": testPassword}, testUser, testPassword, ""},
		{"token only", map[string]string{"token": testToken}, "", "", testToken},
		{"all three", map[string]string{"username": testUser, "password": testPassword, "token": testToken}, testUser, testPassword, testToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, pass, token, err := credentials(credentialsDir(t, tc.files))
			if err != nil || user != tc.user || pass != tc.password || token != tc.token {
				t.Fatalf("credentials() = %q, %q, %q, %v; want %q, %q, %q (trimmed)", user, pass, token, err, tc.user, tc.password, tc.token)
			}
		})
	}
}

// A directory without a username or a token is an error naming the
// directory, never the values it does hold.
func TestCredentialsDirectoryErrors(t *testing.T) {
	unreadable := credentialsDir(t, map[string]string{"password": testPassword, "token": testToken})
	if err := os.Mkdir(filepath.Join(unreadable, "username"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		naming    string // the error must contain this
	}{
		{"empty", t.TempDir(), ""},
		{"missing", filepath.Join(t.TempDir(), "absent"), ""},
		{"password only", credentialsDir(t, map[string]string{"password": testPassword}), ""},
		{"blank username", credentialsDir(t, map[string]string{"username": "  ", "password": testPassword}), ""},
		{"username unreadable", unreadable, "username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, pass, token, err := credentials(tc.dir)
			if err == nil {
				t.Fatalf("credentials(%s) = %q, %q, %q, want an error", tc.dir, user, pass, token)
			}
			if !strings.Contains(err.Error(), tc.dir) || !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("error %q does not name %s %s", err, tc.dir, tc.naming)
			}
			requireNoSecret(t, err)
		})
	}
}
