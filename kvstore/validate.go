package kvstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"
)

// Sentinel errors; httpapi maps them to status codes.
var (
	ErrInvalid  = errors.New("invalid request")         // 400
	ErrTooLarge = errors.New("request too large")       // 413
	ErrNotFound = errors.New("not found")               // 404
	ErrLost     = errors.New("shared rdd data is lost") // 410
	ErrBusy     = errors.New("shared rdd is busy")      // 409 (a load is running)
	ErrLimit    = errors.New("limit reached")           // 429 (--max-rdds)
)

// Limits bound what a client may send. Zero values mean the defaults.
type Limits struct {
	MaxKeyBytes   int // default 1 KiB
	MaxValueBytes int // default 1 MiB
	MaxBatch      int // keys per batch call; default 10,000
	MaxRDDs       int // shared RDDs held by one node's sessions; default 1000
}

// DefaultLimits are the documented limits (README, "Limits").
func DefaultLimits() Limits {
	return Limits{MaxKeyBytes: 1 << 10, MaxValueBytes: 1 << 20, MaxBatch: 10000, MaxRDDs: 1000}
}

func (l *Limits) fill() {
	d := DefaultLimits()
	if l.MaxKeyBytes == 0 {
		l.MaxKeyBytes = d.MaxKeyBytes
	}
	if l.MaxValueBytes == 0 {
		l.MaxValueBytes = d.MaxValueBytes
	}
	if l.MaxBatch == 0 {
		l.MaxBatch = d.MaxBatch
	}
	if l.MaxRDDs == 0 {
		l.MaxRDDs = d.MaxRDDs
	}
}

// rddNameRE: a shared RDD is bound in its session under its own name, so a
// name must be a Python identifier: ASCII letter first, then letters,
// digits or '_', at most 64 characters.
var rddNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// reservedNames are Python keywords and names the session namespace
// already binds; an RDD under one of them could not be reached from code.
var reservedNames = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true, "assert": true,
	"async": true, "await": true, "break": true, "class": true, "continue": true,
	"def": true, "del": true, "elif": true, "else": true, "except": true, "finally": true,
	"for": true, "from": true, "global": true, "if": true, "import": true, "in": true,
	"is": true, "lambda": true, "nonlocal": true, "not": true, "or": true, "pass": true,
	"raise": true, "return": true, "try": true, "while": true, "with": true, "yield": true,
	"sc": true, "spark": true, "sqlContext": true, "shared_rdds": true,
}

// ValidateName checks a shared RDD name.
func ValidateName(name string) error {
	if !rddNameRE.MatchString(name) {
		return fmt.Errorf("%w: rdd name %q must be 1-64 characters: an ASCII letter, then letters, digits or '_'", ErrInvalid, name)
	}
	if reservedNames[name] {
		return fmt.Errorf("%w: rdd name %q is reserved (Python keyword or a name sessions already bind)", ErrInvalid, name)
	}
	return nil
}

// ValidateKey checks a key: non-empty UTF-8 of at most MaxKeyBytes bytes.
func (l Limits) ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key must not be empty", ErrInvalid)
	case len(key) > l.MaxKeyBytes:
		return fmt.Errorf("%w: key of %d bytes exceeds the limit of %d", ErrTooLarge, len(key), l.MaxKeyBytes)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key must be valid UTF-8", ErrInvalid)
	}
	return nil
}

// ValidateValue checks a value: one JSON document of at most MaxValueBytes.
func (l Limits) ValidateValue(v []byte) error {
	switch {
	case len(v) == 0:
		return fmt.Errorf("%w: value must be a JSON value; the body is empty", ErrInvalid)
	case len(v) > l.MaxValueBytes:
		return fmt.Errorf("%w: value of %d bytes exceeds the limit of %d", ErrTooLarge, len(v), l.MaxValueBytes)
	case !json.Valid(v):
		return fmt.Errorf("%w: value is not valid JSON", ErrInvalid)
	}
	return checkJSONText(v)
}

// MaxValueDepth bounds the nesting of arrays and objects in a value.
const MaxValueDepth = 256

// checkJSONText refuses what is valid JSON text but no valid value for
// the store: nesting deeper than MaxValueDepth, and \u escapes of lone
// UTF-16 surrogates (not Unicode; the interpreter cannot store them).
// v must be valid JSON.
func checkJSONText(v []byte) error {
	depth, inStr := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inStr {
			switch c {
			case '"':
				inStr = false
			case '\\':
				if i+1 < len(v) && v[i+1] == 'u' {
					if r, ok := hex4(v, i+2); ok && r >= 0xD800 && r <= 0xDFFF {
						// A high surrogate must be followed by \u + a low one.
						lo, ok2 := hex4(v, i+8)
						if r > 0xDBFF || i+7 >= len(v) || v[i+6] != '\\' || v[i+7] != 'u' || !ok2 || lo < 0xDC00 || lo > 0xDFFF {
							return fmt.Errorf("%w: value holds a lone UTF-16 surrogate escape, which is not valid Unicode", ErrInvalid)
						}
						i += 6 // skip the low half too
					}
				}
				i++ // the escaped character
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '[', '{':
			depth++
			if depth > MaxValueDepth {
				return fmt.Errorf("%w: value is nested deeper than %d levels", ErrInvalid, MaxValueDepth)
			}
		case ']', '}':
			depth--
		}
	}
	return nil
}

func hex4(v []byte, at int) (rune, bool) {
	if at+4 > len(v) {
		return 0, false
	}
	var r rune
	for _, c := range v[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (l Limits) validateBatch(n int) error {
	if n == 0 {
		return fmt.Errorf("%w: batch is empty", ErrInvalid)
	}
	if n > l.MaxBatch {
		return fmt.Errorf("%w: batch of %d keys exceeds the limit of %d", ErrTooLarge, n, l.MaxBatch)
	}
	return nil
}
