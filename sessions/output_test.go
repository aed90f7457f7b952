package sessions

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestToJSON(t *testing.T) {
	f := func(in any, want string) {
		t.Helper()
		raw, err := msgpack.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := toJSON(raw)
		if err != nil || string(got) != want {
			t.Fatalf("toJSON(%v) = %s, %v; want %s", in, got, err, want)
		}
	}
	f(map[string]any{"status": "ok", "data": map[string]any{"text/plain": "2"}}, `{"data":{"text/plain":"2"},"status":"ok"}`)
	// %json of a dict with int keys, and bytes, still give valid JSON.
	f(map[any]any{int64(1): "a", "b": []byte("bytes")}, `{"1":"a","b":"bytes"}`)
	f([]any{int64(1), 2.5, nil, true}, `[1,2.5,null,true]`)
}
