package sparkbridge

import (
	_ "embed"
	"strings"
)

//go:embed python/requirements.txt
var requirements string

// PinnedPySpark returns the pyspark version pinned in the interpreter's
// requirements.txt (what the Dockerfile and `make venv` install), or "".
func PinnedPySpark() string {
	for _, line := range strings.Split(requirements, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "pyspark=="); ok {
			return v
		}
	}
	return ""
}
