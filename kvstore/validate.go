package kvstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/srdd/srdd/cluster"
	"github.com/srdd/srdd/internal/defaults"
)

// Sentinel errors; httpapi maps them to status codes.
var (
	ErrInvalid  = errors.New("invalid request")         // 400
	ErrTooLarge = errors.New("request too large")       // 413
	ErrNotFound = errors.New("not found")               // 404
	ErrLost     = errors.New("shared rdd data is lost") // 410
	ErrBusy     = errors.New("shared rdd is busy")      // 409 (a load is running)
	// ErrNameTaken: session code already has a variable of the RDD's
	// name; binding the RDD would overwrite it (409).
	ErrNameTaken = errors.New("name taken in the session")
	ErrLimit     = errors.New("limit reached") // 429 (--max-rdds)
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

// Rules is the data specification in the form the node hands to every
// interpreter at start-up (sparkbridge.Config.DataRules, as JSON): session
// code that writes a memory-mode RDD is held to the same limits as REST
// clients, and the interpreter keeps no limits of its own. The shared
// test vectors (testdata/data_rules.json) hold the default Rules.
type Rules struct {
	MaxKeyBytes   int      `json:"max_key_bytes"`
	MaxValueBytes int      `json:"max_value_bytes"`
	MaxValueDepth int      `json:"max_value_depth"`
	MaxBatch      int      `json:"max_batch"`
	NamePattern   string   `json:"name_pattern"` // a whole name must match
	ReservedNames []string `json:"reserved_names"`
}

// Rules returns the specification of these limits (zero fields filled).
func (l Limits) Rules() Rules {
	l.fill()
	return Rules{
		MaxKeyBytes: l.MaxKeyBytes, MaxValueBytes: l.MaxValueBytes, MaxValueDepth: MaxValueDepth,
		MaxBatch: l.MaxBatch, NamePattern: cluster.RDDNamePattern, ReservedNames: cluster.ReservedRDDNames(),
	}
}

// RulesJSON returns Rules as JSON, for sparkbridge.Config.DataRules.
func (l Limits) RulesJSON() string {
	b, err := json.Marshal(l.Rules())
	if err != nil {
		panic(fmt.Sprintf("cannot encode data rules: %v", err)) // plain ints and strings
	}
	return string(b)
}

func (l *Limits) fill() {
	defaults.Fields(l, DefaultLimits())
}

// ValidateName checks a shared RDD name by the registry's rule
// (cluster.ValidRDDName), which the registry applies again to every entry.
func ValidateName(name string) error {
	if err := cluster.ValidRDDName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
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

// ValidateValue checks a value: one JSON document of UTF-8 text, at most
// MaxValueBytes, that the interpreter can hold (see checkJSONText). Every
// value a durable RDD logs passes here first, so the log holds only
// values that kv.apply accepts on every replay.
func (l Limits) ValidateValue(v []byte) error {
	switch {
	case len(v) == 0:
		return fmt.Errorf("%w: value must be a JSON value; the body is empty", ErrInvalid)
	case len(v) > l.MaxValueBytes:
		return fmt.Errorf("%w: value of %d bytes exceeds the limit of %d", ErrTooLarge, len(v), l.MaxValueBytes)
	case !json.Valid(v):
		return fmt.Errorf("%w: value is not valid JSON", ErrInvalid)
	case !utf8.Valid(v):
		return fmt.Errorf("%w: value must be valid UTF-8", ErrInvalid)
	}
	return checkJSONText(v)
}

// MaxValueDepth bounds the nesting of arrays and objects in a value.
const MaxValueDepth = 256

// checkJSONText refuses what is valid JSON text but no valid value for
// the store: nesting deeper than MaxValueDepth, \u escapes of lone
// UTF-16 surrogates (not Unicode; the interpreter cannot store them), and
// numbers that overflow a float64 (1e400: the interpreter holds numbers
// as Python floats, or ints that fit one). v must be valid JSON.
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
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			end := numberEnd(v, i)
			if err := checkNumber(v[i:end]); err != nil {
				return err
			}
			i = end - 1
		}
	}
	return nil
}

// numberEnd returns the end of the JSON number that starts at v[at].
func numberEnd(v []byte, at int) int {
	for at < len(v) {
		switch v[at] {
		case '-', '+', '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			at++
		default:
			return at
		}
	}
	return at
}

// checkNumber refuses a JSON number whose magnitude rounds past the
// largest float64. Only a number with an exponent or with more than 308
// characters can: parsing the rest would cost the hot path for nothing.
func checkNumber(num []byte) error {
	if len(num) <= 308 && !bytes.ContainsAny(num, "eE") {
		return nil
	}
	// ParseFloat reports ErrRange only for overflow; an underflow (1e-400)
	// is 0, as in the interpreter.
	if _, err := strconv.ParseFloat(string(num), 64); errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%w: number %.40s does not fit a 64-bit float", ErrInvalid, num)
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
