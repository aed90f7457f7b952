package cluster

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestJoinAnswer checks how a joining node reads a member's answer: 200
// joins, 403 not_admitted and 5xx are worth asking again (an admin may
// admit it in a moment; an election may end), any other 4xx is final.
func TestJoinAnswer(t *testing.T) {
	f := func(status int, body string, ok, final bool) {
		t.Helper()
		err := joinAnswer("m1", &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))})
		_, isFinal := err.(*permanentErr)
		if (err == nil) != ok || isFinal != final {
			t.Errorf("%d %s: err %v (final %v), want ok %v, final %v", status, body, err, isFinal, ok, final)
		}
	}
	f(200, `{"joined":"n2"}`, true, false)
	f(403, `{"error":{"code":"not_admitted","message":"x"}}`, false, false)
	f(503, `{"error":{"code":"no_leader","message":"x"}}`, false, false)
	f(403, `{"error":{"code":"plaintext_cluster","message":"x"}}`, false, true)
	f(403, `{"error":{"code":"forbidden","message":"x"}}`, false, true)
	f(409, `{"error":{"code":"address_in_use","message":"x"}}`, false, true)
	f(400, `not json`, false, true)
}

func TestHostPortOf(t *testing.T) {
	for in, want := range map[string]string{"https://a:1/": "a:1", "a:1": "a:1", "http://[::1]:2": "[::1]:2"} {
		if got := hostPortOf(in); got != want {
			t.Errorf("hostPortOf(%q) = %q, want %q", in, got, want)
		}
	}
}
