package datarules

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestInputForms(t *testing.T) {
	for in, want := range map[string]string{
		`"plain"`: "plain",
		`{"before":"a","hex":"ff00","repeat":"xy","times":3,"after":"b"}`: "a\xff\x00xyxyxyb",
		`{"nest":3}`: "[[[]]]",
	} {
		var got Input
		if err := json.Unmarshal([]byte(in), &got); err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v; want %q", in, got, err, want)
		}
	}
	var bad Input
	if err := json.Unmarshal([]byte(`{"hex":"zz"}`), &bad); err == nil || !strings.Contains(err.Error(), "hex") {
		t.Errorf("bad hex: %v", err)
	}
}
