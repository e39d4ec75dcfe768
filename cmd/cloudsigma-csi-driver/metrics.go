package main

import (
	"net/http"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/metrics"
)

// apiHTTPClient is the CloudSigma client's transport, instrumented so every
// API call is counted by endpoint and status. The timeout bounds one request;
// waiters poll with their own deadlines.
func apiHTTPClient(m *metrics.Metrics) *http.Client {
	return &http.Client{Transport: m.InstrumentRoundTripper(nil), Timeout: 60 * time.Second}
}
