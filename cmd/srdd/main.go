// Command srdd runs an srdd node (srdd server) and talks to one
// (srdd rdd ls, srdd get, srdd set, ...).
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/srdd/srdd/node"
	"github.com/srdd/srdd/sparkbridge/bridgetest"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// testFakeInterpreterEnv=1 (undocumented, tests only) makes `srdd
// server` run every session on the fast test tier's fake interpreter.
const testFakeInterpreterEnv = "SRDD_TEST_FAKE_INTERPRETER"

func main() {
	// A session's interpreter on a server started with
	// testFakeInterpreterEnv: this process is then the fake.
	bridgetest.MaybeRun()
	root := &cobra.Command{
		Use:           "srdd",
		Short:         "Spark as a shared, replicated, in-memory key/value service",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(serverCmd())
	root.AddCommand(clusterCmd())
	root.AddCommand(readyCmd())
	root.AddCommand(authCmd())
	root.AddCommand(certCmd())
	root.AddCommand(doctorCmd())
	addClientCmds(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "srdd:", err)
		if errors.Is(err, node.ErrConfig) {
			os.Exit(2) // refused before it started: a flag or file to fix
		}
		os.Exit(1)
	}
}
