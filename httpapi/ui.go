package httpapi

import (
	"embed"
	"net/http"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// The web console (docs/ARCHITECTURE.md, "The web console"): static files
// embedded in the binary, served without credentials; every piece of
// data on its pages comes from API calls the browser makes with the
// user's token, under the route table's rules like any other client.
//
//go:embed ui/*
var uiFiles embed.FS

// uiCSP allows the console's own files and API calls only: no inline
// script, nothing from elsewhere, no framing.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

func (s *Server) uiIndex(ctx *fasthttp.RequestCtx) { s.uiFile(ctx, "index.html") }

func (s *Server) uiFile(ctx *fasthttp.RequestCtx, name string) {
	ct, known := uiTypes[path.Ext(name)]
	if !known || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		writeError(ctx, http.StatusNotFound, "file_not_found", "no such file in the console")
		return
	}
	b, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		writeError(ctx, http.StatusNotFound, "file_not_found", "no such file in the console")
		return
	}
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	h.SetContentType(ct)
	ctx.SetStatusCode(http.StatusOK)
	if !ctx.IsHead() {
		ctx.SetBody(b)
	}
}
