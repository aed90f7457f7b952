package redisapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

var testLimits = Limits{MaxBulk: 64, MaxArray: 8, MaxDepth: 3, MaxInline: 64, MaxCommandBytes: 128}

func reader(s string) *Reader {
	return NewReader(bufio.NewReaderSize(strings.NewReader(s), 256), testLimits)
}

func TestReadCommand(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		args, err := reader(in).ReadCommand()
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		var got []string
		for _, a := range args {
			got = append(got, string(a))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("%q: got %q, want %q", in, got, want)
		}
	}
	f("*2\r\n$3\r\nGET\r\n$9\r\nstates:ak\r\n", "GET", "states:ak")
	f("*1\r\n$0\r\n\r\n", "")
	f("*0\r\n*1\r\n$4\r\nPING\r\n", "PING")                   // an empty array is skipped
	f("PING\r\n", "PING")                                     // inline
	f("\r\n  set  a:b   c \n", "set", "a:b", "c")             // inline, a bare LF, an empty line first
	f("*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n", "SET", "a\r\nb") // binary-safe
}

func TestReadCommandRefuses(t *testing.T) {
	f := func(in string) {
		t.Helper()
		_, err := reader(in).ReadCommand()
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("%q: got %v, want a protocol error", in, err)
		}
	}
	f("*9\r\n")                                                                                           // array over MaxArray
	f("*1\r\n$65\r\n")                                                                                    // bulk over MaxBulk, refused from its header
	f("*1\r\n$99999999999999999999\r\n")                                                                  // a length that does not fit
	f("*1\r\n$-1\r\n")                                                                                    // a null argument
	f("*1\r\n$-2\r\n")                                                                                    // a negative length
	f("*1\r\n$01\r\na\r\n")                                                                               // a leading zero
	f("*1\r\n:1\r\n")                                                                                     // not a bulk string
	f("*1\r\n$3\r\nabcd\r\n")                                                                             // wrong length
	f("*x\r\n")                                                                                           // not a number
	f("*1\n$1\na\n")                                                                                      // LF only in a multibulk
	f(strings.Repeat("a", 100) + "\r\n")                                                                  // inline over MaxInline
	f("*3\r\n$64\r\n" + strings.Repeat("a", 64) + "\r\n$64\r\n" + strings.Repeat("a", 64) + "\r\n$1\r\n") // over MaxCommandBytes
}

func TestReadCommandTruncated(t *testing.T) {
	full := "*2\r\n$3\r\nGET\r\n$9\r\nstates:ak\r\n"
	for i := 1; i < len(full); i++ {
		if _, err := reader(full[:i]).ReadCommand(); err == nil {
			t.Fatalf("%q: no error", full[:i])
		} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
			t.Fatalf("%q: %v", full[:i], err)
		}
	}
}

func TestReadValue(t *testing.T) {
	in := "%2\r\n+server\r\n$4\r\nsrdd\r\n+proto\r\n:3\r\n" + "*2\r\n_\r\n#t\r\n" + "$-1\r\n" + "-ERR x\r\n" + "=8\r\ntxt:abcd\r\n"
	r := reader(in)
	v, err := r.ReadValue()
	if err != nil || v.Kind != KindMap || len(v.Elems) != 4 || string(v.Elems[1].Str) != "srdd" || v.Elems[3].Int != 3 {
		t.Fatalf("map: %+v %v", v, err)
	}
	if v, err = r.ReadValue(); err != nil || len(v.Elems) != 2 || !v.Elems[0].Null || v.Elems[1].Int != 1 {
		t.Fatalf("array: %+v %v", v, err)
	}
	if v, err = r.ReadValue(); err != nil || !v.Null {
		t.Fatalf("null bulk: %+v %v", v, err)
	}
	if v, err = r.ReadValue(); err != nil || v.Kind != KindError || string(v.Str) != "ERR x" {
		t.Fatalf("error: %+v %v", v, err)
	}
	if v, err = r.ReadValue(); err != nil || string(v.Str) != "txt:abcd" {
		t.Fatalf("verbatim: %+v %v", v, err)
	}
	// Nesting is bounded.
	if _, err := reader("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n").ReadValue(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("deep nesting: %v", err)
	}
	if _, err := reader("%5\r\n").ReadValue(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("long map: %v", err)
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := NewWriter(bw)
	w.Simple("OK")
	w.Error("ERR a\r\nb")
	w.Int(-5)
	w.Bulk([]byte("a\r\nb"))
	w.Null()
	w.Map(1)
	w.BulkString("k")
	w.Verbatim("v")
	w.Proto = 3
	w.Null()
	w.Map(1)
	w.BulkString("k")
	w.Verbatim("v")
	_ = w.Flush()
	want := "+OK\r\n-ERR a  b\r\n:-5\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n_\r\n%1\r\n$1\r\nk\r\n=5\r\ntxt:v\r\n"
	if buf.String() != want {
		t.Fatalf("got %q\nwant %q", buf.String(), want)
	}
	// What the writer writes, the reader reads back.
	r := NewReader(bufio.NewReader(&buf), Limits{MaxBulk: 10, MaxArray: 10, MaxDepth: 2, MaxInline: 64, MaxCommandBytes: 64})
	for range 8 {
		if _, err := r.ReadValue(); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzRESP feeds arbitrary bytes to both readers: they must never panic,
// never return an argument or value over the limits, and always either
// parse or report an error.
func FuzzRESP(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$9\r\nstates:ak\r\n",
		"*3\r\n$3\r\nSET\r\n$9\r\nstates:hi\r\n$5\r\nHawai\r\n",
		"PING\r\n",
		"*1\r\n$-1\r\n",
		"*-1\r\n",
		"%1\r\n+a\r\n*2\r\n:1\r\n#f\r\n",
		"*1\r\n*1\r\n*1\r\n*1\r\n_\r\n",
		"$99999999999999\r\n",
		"=6\r\ntxt:ab\r\n",
		">2\r\n+message\r\n,3.14\r\n",
		"|1\r\n+a\r\n(123\r\n",
		"!3\r\nERR\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 256), testLimits)
		for range 16 {
			args, err := r.ReadCommand()
			if err != nil {
				break
			}
			total := 0
			for _, a := range args {
				total += len(a)
			}
			if len(args) == 0 || len(args) > testLimits.MaxArray || total > max(testLimits.MaxCommandBytes, testLimits.MaxInline) {
				t.Fatalf("command over the limits: %d args, %d bytes", len(args), total)
			}
		}
		r = NewReader(bufio.NewReaderSize(bytes.NewReader(in), 256), testLimits)
		for range 16 {
			v, err := r.ReadValue()
			if err != nil {
				break
			}
			if depth(v) > testLimits.MaxDepth {
				t.Fatalf("value nested %d deep", depth(v))
			}
		}
	})
}

func depth(v Value) int {
	d := 0
	for _, e := range v.Elems {
		d = max(d, 1+depth(e))
	}
	if len(v.Elems) > 0 || v.Kind == KindArray || v.Kind == KindMap || v.Kind == KindSet || v.Kind == KindPush || v.Kind == KindAttribute {
		return d
	}
	return 0
}
