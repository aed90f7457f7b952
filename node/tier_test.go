package node

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/srdd/srdd/internal/testutil"
)

// The test tiers (README, "Tests"; docs/ARCHITECTURE.md invariant 8).
// Every test runs on the fast tier's fake interpreter
// (sparkbridge/bridgetest) unless it calls spark(t) first: a test about
// Spark itself (statements, the engine, loads and saves, Livy, batches)
// runs on real PySpark, and `make test-fast` (SRDD_TEST_TIER=fast) skips
// it, so that tier starts no JVM.

// TierEnv selects the tier: "fast" skips the Spark tier.
const tierEnv = testutil.TierEnv

var sparkTests sync.Map // top-level test name -> true

// spark marks t as a test of the Spark tier, or skips it in the fast tier.
func spark(t testing.TB) {
	t.Helper()
	if os.Getenv(tierEnv) == "fast" {
		t.Skip("Spark tier: skipped by SRDD_TEST_TIER=fast (make test-fast)")
	}
	sparkTests.Store(topName(t), true)
}

func isSparkTest(t testing.TB) bool {
	_, ok := sparkTests.Load(topName(t))
	return ok
}

func topName(t testing.TB) string {
	name, _, _ := strings.Cut(t.Name(), "/")
	return name
}
