// Package datarules decodes the cases of kvstore/testdata/data_rules.json,
// the accept/reject vectors that kvstore's validation, the fake interpreter
// (sparkbridge/bridgetest) and the real one all run. Only tests import it.
package datarules

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Case is one accept/reject case: Want is "ok", "invalid" or "too_large".
type Case struct {
	In   Input  `json:"in"`
	Want string `json:"want"`
	Why  string `json:"why"`
}

// Input is a string, or {"before", "hex", "repeat" x "times", "after"}
// concatenated in that order, or {"nest": n}: n arrays deep.
type Input string

// UnmarshalJSON decodes either form of Input.
func (r *Input) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*r = Input(s)
		return nil
	}
	var g struct {
		Before, Hex, Repeat, After string
		Times, Nest                int
	}
	if err := json.Unmarshal(b, &g); err != nil {
		return fmt.Errorf("cannot decode a test input: %w", err)
	}
	raw, err := hex.DecodeString(g.Hex)
	if err != nil {
		return fmt.Errorf("cannot decode hex %q: %w", g.Hex, err)
	}
	*r = Input(g.Before + string(raw) + strings.Repeat(g.Repeat, g.Times) + g.After +
		strings.Repeat("[", g.Nest) + strings.Repeat("]", g.Nest))
	return nil
}
