package redisapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// The Redis serialization protocol (RESP2, and RESP3 after HELLO 3):
// https://redis.io/docs/latest/develop/reference/protocol-spec/. A
// client sends commands as arrays of bulk strings (or, by hand, as an
// inline line of words); the server answers with any type. Every read
// is bounded (Limits): a length over its bound is refused from its
// header, before anything it announces is read.

// Limits bound what a reader accepts.
type Limits struct {
	MaxBulk         int // bytes of one bulk string
	MaxArray        int // elements of one array, map or set
	MaxDepth        int // nesting of aggregates (ReadValue)
	MaxInline       int // bytes of an inline command or a simple line
	MaxCommandBytes int // bytes of all the arguments of one command
}

// ErrProtocol is wrapped by every error about a malformed or
// over-limit frame: the connection cannot be read further.
var ErrProtocol = errors.New("protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Reader reads RESP frames from r within lim.
type Reader struct {
	r   *bufio.Reader
	lim Limits
}

// NewReader reads from r; r's buffer must hold MaxInline bytes.
func NewReader(r *bufio.Reader, lim Limits) *Reader { return &Reader{r: r, lim: lim} }

// SetLimits changes the bounds of the frames read next.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim }

// Buffered is how many bytes were read from the connection and not yet
// parsed: a pipelined client's next commands.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// line reads one CRLF-terminated line of at most MaxInline bytes,
// without its CRLF. The slice is valid until the next read.
func (r *Reader) line() ([]byte, error) { return r.lineEnd(true) }

// lineEnd is line; with crlf false a bare LF ends the line too (an
// inline command typed into nc).
func (r *Reader) lineEnd(crlf bool) ([]byte, error) {
	b, err := r.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(b) > r.lim.MaxInline+2 {
		return nil, protoErr("line too long")
	}
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		if !crlf {
			return b[:len(b)-1], nil
		}
		return nil, protoErr("line not terminated by CRLF")
	}
	return b[:len(b)-2], nil
}

// length parses the length of a header line ("*3", "$5"): -1 (null) up
// to max.
func length(b []byte, max int, what string) (int, error) {
	n, err := strconv.Atoi(string(b))
	switch {
	case err != nil || n < -1 || (len(b) > 1 && b[0] == '0') || (len(b) > 0 && b[0] == '+'):
		return 0, protoErr("invalid %s length %q", what, truncate(b))
	case n > max:
		return 0, protoErr("%s length %d over the limit of %d", what, n, max)
	}
	return n, nil
}

func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// lengthLine reads the rest of a header line and parses its length.
func (r *Reader) lengthLine(max int, what string) (int, error) {
	l, err := r.line()
	if err != nil {
		return 0, err
	}
	return length(l, max, what)
}

// bulk reads the n bytes of a bulk string and its CRLF, into a new slice.
func (r *Reader) bulk(n int) ([]byte, error) {
	b := make([]byte, n+2)
	if _, err := readFull(r.r, b); err != nil {
		return nil, err
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, protoErr("bulk string not terminated by CRLF")
	}
	return b[:n:n], nil
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadCommand reads one command: an array of bulk strings, or an inline
// line of words separated by spaces. An empty inline line is skipped.
// The arguments are new slices the caller may keep.
func (r *Reader) ReadCommand() ([][]byte, error) {
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c != '*' {
			_ = r.r.UnreadByte()
			l, err := r.lineEnd(false)
			if err != nil {
				return nil, err
			}
			args := bytes.Fields(l)
			if len(args) == 0 {
				continue
			}
			if len(args) > r.lim.MaxArray {
				return nil, protoErr("too many arguments")
			}
			out := make([][]byte, len(args))
			for i, a := range args {
				out[i] = bytes.Clone(a)
			}
			return out, nil
		}
		n, err := r.lengthLine(r.lim.MaxArray, "array")
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			continue // Redis ignores an empty or null command array
		}
		args := make([][]byte, n)
		total := 0
		for i := range args {
			c, err := r.r.ReadByte()
			if err != nil {
				return nil, err
			}
			if c != '$' {
				return nil, protoErr("expected '$', got %q", c)
			}
			m, err := r.lengthLine(r.lim.MaxBulk, "bulk")
			if err != nil {
				return nil, err
			}
			if m < 0 {
				return nil, protoErr("null bulk string in a command")
			}
			if total += m; total > r.lim.MaxCommandBytes {
				return nil, protoErr("command over the limit of %d bytes", r.lim.MaxCommandBytes)
			}
			if args[i], err = r.bulk(m); err != nil {
				return nil, err
			}
		}
		return args, nil
	}
}

// Kind is a RESP type, named by its first byte.
type Kind byte

// RESP2 and RESP3 types.
const (
	KindSimple    Kind = '+'
	KindError     Kind = '-'
	KindInt       Kind = ':'
	KindBulk      Kind = '$'
	KindArray     Kind = '*'
	KindNull      Kind = '_'
	KindBool      Kind = '#'
	KindDouble    Kind = ','
	KindBigNumber Kind = '('
	KindBulkError Kind = '!'
	KindVerbatim  Kind = '='
	KindMap       Kind = '%'
	KindSet       Kind = '~'
	KindAttribute Kind = '|'
	KindPush      Kind = '>'
)

// Value is one RESP value. Null bulk strings and arrays of RESP2 are
// Null with their Kind ($ or *).
type Value struct {
	Kind  Kind
	Str   []byte  // simple, error, bulk, verbatim, double, big number
	Int   int64   // integer; bool (0 or 1)
	Null  bool    // a null of any kind
	Elems []Value // array, set, push; map and attribute as key, value, ...
}

// ReadValue reads one value of any RESP2 or RESP3 type, its aggregates
// nested at most MaxDepth deep.
func (r *Reader) ReadValue() (Value, error) { return r.value(0) }

func (r *Reader) value(depth int) (Value, error) {
	c, err := r.r.ReadByte()
	if err != nil {
		return Value{}, err
	}
	v := Value{Kind: Kind(c)}
	l, err := r.line()
	if err != nil {
		return Value{}, err
	}
	switch v.Kind {
	case KindSimple, KindError, KindDouble, KindBigNumber:
		v.Str = bytes.Clone(l)
	case KindInt:
		if v.Int, err = strconv.ParseInt(string(l), 10, 64); err != nil {
			return Value{}, protoErr("invalid integer %q", truncate(l))
		}
	case KindNull:
		if len(l) != 0 {
			return Value{}, protoErr("invalid null")
		}
		v.Null = true
	case KindBool:
		switch string(l) {
		case "t":
			v.Int = 1
		case "f":
		default:
			return Value{}, protoErr("invalid boolean %q", truncate(l))
		}
	case KindBulk, KindBulkError, KindVerbatim:
		n, err := length(l, r.lim.MaxBulk, "bulk")
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			v.Null = true
			break
		}
		if v.Str, err = r.bulk(n); err != nil {
			return Value{}, err
		}
	case KindArray, KindSet, KindPush, KindMap, KindAttribute:
		if depth >= r.lim.MaxDepth {
			return Value{}, protoErr("aggregates nested over %d deep", r.lim.MaxDepth)
		}
		n, err := length(l, r.lim.MaxArray, "aggregate")
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			v.Null = true
			break
		}
		if v.Kind == KindMap || v.Kind == KindAttribute {
			if n > r.lim.MaxArray/2 {
				return Value{}, protoErr("map length %d over the limit of %d", n, r.lim.MaxArray/2)
			}
			n *= 2
		}
		v.Elems = make([]Value, 0, min(n, 1024)) // grows as elements arrive
		for range n {
			e, err := r.value(depth + 1)
			if err != nil {
				return Value{}, err
			}
			v.Elems = append(v.Elems, e)
		}
	default:
		return Value{}, protoErr("unknown type byte %q", c)
	}
	return v, nil
}

// Writer writes replies in RESP2, or RESP3 once Proto is 3. Replies go
// to a buffer; the server flushes it once per batch of commands.
type Writer struct {
	w     *bufio.Writer
	Proto int
	num   []byte
}

// NewWriter writes to w in RESP2.
func NewWriter(w *bufio.Writer) *Writer { return &Writer{w: w, Proto: 2} }

// Flush sends what was written.
func (w *Writer) Flush() error { return w.w.Flush() }

func (w *Writer) header(kind Kind, n int64) {
	_ = w.w.WriteByte(byte(kind))
	w.num = strconv.AppendInt(w.num[:0], n, 10)
	_, _ = w.w.Write(w.num)
	_, _ = w.w.WriteString("\r\n")
}

// line writes a simple line, its CR and LF replaced by spaces.
func (w *Writer) line(kind Kind, s string) {
	_ = w.w.WriteByte(byte(kind))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		_ = w.w.WriteByte(c)
	}
	_, _ = w.w.WriteString("\r\n")
}

// Simple writes a simple string (+OK).
func (w *Writer) Simple(s string) { w.line(KindSimple, s) }

// Error writes an error; msg starts with its code (ERR, NOAUTH, ...).
func (w *Writer) Error(msg string) { w.line(KindError, msg) }

// Int writes an integer.
func (w *Writer) Int(n int64) { w.header(KindInt, n) }

// Bulk writes a bulk string.
func (w *Writer) Bulk(b []byte) {
	w.header(KindBulk, int64(len(b)))
	_, _ = w.w.Write(b)
	_, _ = w.w.WriteString("\r\n")
}

// BulkString writes a bulk string.
func (w *Writer) BulkString(s string) {
	w.header(KindBulk, int64(len(s)))
	_, _ = w.w.WriteString(s)
	_, _ = w.w.WriteString("\r\n")
}

// Null writes a null: RESP2's null bulk string, or RESP3's null.
func (w *Writer) Null() {
	if w.Proto >= 3 {
		_, _ = w.w.WriteString("_\r\n")
		return
	}
	_, _ = w.w.WriteString("$-1\r\n")
}

// Array starts an array of n elements.
func (w *Writer) Array(n int) { w.header(KindArray, int64(n)) }

// Map starts a map of n pairs: RESP3's map, RESP2's flat array.
func (w *Writer) Map(n int) {
	if w.Proto >= 3 {
		w.header(KindMap, int64(n))
		return
	}
	w.header(KindArray, int64(2*n))
}

// Verbatim writes text (INFO, CLIENT INFO): RESP3's verbatim string of
// format txt, RESP2's bulk string.
func (w *Writer) Verbatim(s string) {
	if w.Proto < 3 {
		w.BulkString(s)
		return
	}
	w.header(KindVerbatim, int64(len(s)+4))
	_, _ = w.w.WriteString("txt:")
	_, _ = w.w.WriteString(s)
	_, _ = w.w.WriteString("\r\n")
}
