package main

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc"
)

// metrics: placeholder until pkg/metrics lands.
type metrics struct{}

func newMetrics() *metrics                                     { return &metrics{} }
func (m *metrics) interceptors() []grpc.UnaryServerInterceptor { return nil }
func (m *metrics) httpClient() *http.Client                    { return nil }
func (m *metrics) serve(ctx context.Context, addr string, healthy func(context.Context) error) error {
	return errors.New("metrics not available yet")
}
