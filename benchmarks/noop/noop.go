// Package noop is the benchmark's ceiling: a fasthttp server configured
// like srdd's front end whose only route answers a fixed body the size of
// an srdd get response, without doing anything.
package noop

import (
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Path is the no-op route.
const Path = "/noop"

// Body is what the route answers: shaped like GET /v1/rdds/{name}/keys/{key}
// with a 100-byte value.
var Body = []byte(`{"key":"key:00000042","value":"` + string(make100()) + `"}`)

func make100() []byte {
	b := make([]byte, 98)
	for i := range b {
		b[i] = 'v'
	}
	return b
}

// Server returns a fasthttp server with srdd's settings and the no-op route.
func Server() *fasthttp.Server {
	return &fasthttp.Server{
		Name:               "srdd-noop",
		MaxRequestBodySize: 4 << 20,
		ReadTimeout:        5 * time.Minute,
		IdleTimeout:        2 * time.Minute,
		Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) != Path {
				ctx.SetStatusCode(fasthttp.StatusNotFound)
				return
			}
			ctx.Response.Header.SetContentType("application/json")
			ctx.SetBody(Body)
		},
	}
}

// Serve serves the no-op route on ln until it is closed.
func Serve(ln net.Listener) error { return Server().Serve(ln) }
