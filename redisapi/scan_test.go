package redisapi

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/srdd/srdd/auth"
	"github.com/valyala/fasthttp"
)

// scanAPI answers every scan with one key and a next page.
type scanAPI struct{}

func (scanAPI) Local(ctx *fasthttp.RequestCtx, _ *auth.Principal) {
	ctx.SetStatusCode(200)
	ctx.SetBodyString(`{"items":[{"key":"k","value":1}],"cursor":"next"}`)
}

// scanCursor sends SCAN cursor MATCH r:* on c and returns the next
// cursor, or the error line.
func scanCursor(t *testing.T, c io.Writer, r interface{ ReadString(byte) (string, error) }, cursor string) string {
	t.Helper()
	_, _ = fmt.Fprintf(c, "SCAN %s MATCH r:*\r\n", cursor)
	line, _ := r.ReadString('\n')
	if strings.HasPrefix(line, "-") {
		return strings.TrimSpace(line)
	}
	_, _ = r.ReadString('\n') // $n
	next, _ := r.ReadString('\n')
	for range 3 { // *1, $3, r:k
		_, _ = r.ReadString('\n')
	}
	return strings.TrimSpace(next)
}

// TestScanCursorsPerCaller: one caller opening more cursors than the
// node keeps does not push out another caller's cursor, nor can a
// caller continue another's.
func TestScanCursorsPerCaller(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.json")
	var f auth.File
	toks := map[string]string{}
	for _, name := range []string{"ana", "bob"} {
		tok, _ := auth.NewToken()
		toks[name] = tok
		if err := f.AddUser(name, []string{"read:*"}, tok, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := auth.WriteFile(users, &f); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(users, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := serve(t, Config{API: scanAPI{}, Auth: a})
	login := func(name string) (io.Writer, interface{ ReadString(byte) (string, error) }) {
		c, r := dial(t, addr)
		_, _ = io.WriteString(c, "AUTH "+toks[name]+"\r\n")
		if line, _ := r.ReadString('\n'); line != "+OK\r\n" {
			t.Fatalf("AUTH %s: %q", name, line)
		}
		return c, r
	}
	ac, ar := login("ana")
	anas := scanCursor(t, ac, ar, "0")
	bc, br := login("bob")
	for range maxCursors + 100 {
		if next := scanCursor(t, bc, br, "0"); strings.HasPrefix(next, "-") {
			t.Fatalf("bob's SCAN: %s", next)
		}
	}
	if got := scanCursor(t, bc, br, anas); !strings.HasPrefix(got, "-ERR invalid cursor") {
		t.Fatalf("bob continued ana's cursor: %q", got)
	}
	if got := scanCursor(t, ac, ar, anas); strings.HasPrefix(got, "-") {
		t.Fatalf("ana's cursor after bob opened %d: %s", maxCursors+100, got)
	}
}

// TestCursorTableBounds: a caller keeps at most perCaller cursors, the
// table max in all, and past max the caller holding the most loses its
// oldest.
func TestCursorTableBounds(t *testing.T) {
	var tb cursorTable
	tb.init()
	tb.max, tb.perCaller = 6, 4
	st := cursorState{rdd: "r"}
	a1 := tb.put("a", st)
	var bs []uint64
	for range 5 {
		bs = append(bs, tb.put("b", st))
	}
	if _, ok := tb.get("b", bs[0]); ok {
		t.Fatal("b holds more than perCaller cursors")
	}
	if _, ok := tb.get("b", bs[1]); !ok {
		t.Fatal("b lost more than its oldest")
	}
	c1 := tb.put("c", st) // total 6: a 1, b 4, c 1
	tb.put("c", st)       // over max: b, the largest, loses its oldest
	if _, ok := tb.get("b", bs[1]); ok {
		t.Fatal("past max, the largest caller kept its oldest cursor")
	}
	for _, x := range []struct {
		caller string
		id     uint64
	}{{"a", a1}, {"c", c1}, {"b", bs[4]}} {
		if _, ok := tb.get(x.caller, x.id); !ok {
			t.Fatalf("%s lost cursor %d", x.caller, x.id)
		}
	}
	if _, ok := tb.get("a", c1); ok {
		t.Fatal("a found c's cursor")
	}
	if tb.total != 6 {
		t.Fatalf("total %d, want 6", tb.total)
	}
}
