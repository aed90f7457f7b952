package redisapi

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
)

// batchAnswers are batch get answers shaped as httpapi writes them, with
// values and keys that a scanner could mistake for structure.
var batchAnswers = []string{
	`{"values":{},"missing":[]}`,
	`{"values":{},"missing":["a","b"]}`,
	`{"values":{"a":"x"},"missing":[]}`,
	`{"values":{"a":1,"b":-2.5e3,"c":true,"d":null,"e":false},"missing":["f"]}`,
	`{"values":{"a":"x,y}z]","b":"q\"uo\\te\"","c":"\u003c\u0000"},"missing":[]}`,
	`{"values":{"a":{"b":[1,{"c":"}]"}],"d":{}},"e":[[],[[]]]},"missing":[]}`,
	`{"values":{"a\"b":1,"\u003ck\u003e":2,"ünï":3,"a\\b":"\\"},"missing":["\u0026"]}`,
	`{"values":{"dup":1,"dup":2},"missing":[]}`,
}

// TestReadValues: the scanner reads what encoding/json reads, value for
// value, byte for byte.
func TestReadValues(t *testing.T) {
	for _, body := range batchAnswers {
		if !json.Valid([]byte(body)) {
			t.Fatalf("not JSON: %s", body)
		}
		got, ok := readValues([]byte(body), 4)
		if !ok {
			t.Fatalf("%s: not read", body)
		}
		var want struct {
			Values map[string]json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want.Values) {
			t.Fatalf("%s: got %d values, want %d", body, len(got), len(want.Values))
		}
		for k, v := range want.Values {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%s: %q = %s, want %s", body, k, got[k], v)
			}
		}
	}
}

// TestReadValuesOwnsItsBytes: the values survive the call's buffer,
// which the next call reuses.
func TestReadValuesOwnsItsBytes(t *testing.T) {
	body := []byte(`{"values":{"a":"x"},"missing":[]}`)
	got, ok := readValues(body, 1)
	if !ok {
		t.Fatal("not read")
	}
	for i := range body {
		body[i] = '#'
	}
	if string(got["a"]) != `"x"` {
		t.Fatalf("value changed with the buffer: %s", got["a"])
	}
}

// TestReadValuesFallsBack: an answer shaped otherwise is left to the
// decoder, never half read.
func TestReadValuesFallsBack(t *testing.T) {
	for _, body := range []string{
		`{"missing":[],"values":{"a":1}}`, // encoding/json's order
		`{"values":{"a": 1},"missing":[]}`,
		`{"values":{"a":1 },"missing":[]}`,
		`{"values":{"a":},"missing":[]}`,
		`{"values":{"a"},"missing":[]}`,
		`{"values":{"a":"x`,
		`{"values":{"a":"x"`,
		`{"values":{a:1},"missing":[]}`,
		`{"values":{"a":1;"b":2},"missing":[]}`,
		``,
	} {
		if got, ok := readValues([]byte(body), 1); ok {
			t.Fatalf("%s: read as %v", body, got)
		}
	}
}

// TestKeysBody: the batch body is what encoding/json writes for it.
func TestKeysBody(t *testing.T) {
	keys := []string{"plain", `q"uote`, `back\slash`, "tab\t", "ünï", "<&>", "\xff"}
	var got struct{ Keys []string }
	if err := json.Unmarshal(keysBody(keys), &got); err != nil {
		t.Fatal(err)
	}
	enc, _ := json.Marshal(keys)
	var want []string
	if err := json.Unmarshal(enc, &want); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Keys, want) {
		t.Fatalf("keys %q, want %q", got.Keys, want)
	}
	if string(keysBody(nil)) != `{"keys":[]}` {
		t.Fatalf("no keys: %s", keysBody(nil))
	}
}

// FuzzReadValues: no input makes the scanner panic, and what it reads of
// valid JSON is valid JSON.
func FuzzReadValues(f *testing.F) {
	for _, b := range batchAnswers {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := readValues(body, 1)
		if !ok || !json.Valid(body) {
			return
		}
		for k, v := range got {
			if !json.Valid(v) {
				t.Fatalf("%q read as %q from %q", k, v, body)
			}
		}
	})
}

// TestDedupe: repeats go, order stays, on both sides of the map's bound.
func TestDedupe(t *testing.T) {
	for _, n := range []int{0, 5, 32, 33, 100} {
		var keys, want []string
		for i := range n {
			keys = append(keys, strconv.Itoa(i%7), strconv.Itoa(i))
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				want = append(want, k)
			}
		}
		if got := dedupe(keys); !slices.Equal(got, want) && len(want) > 0 {
			t.Fatalf("%d keys: %q, want %q", len(keys), got, want)
		}
	}
}
