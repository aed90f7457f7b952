package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/srdd/srdd/internal/preflight"
)

// doctorCmd runs srdd server's preflight checks and prints them, one line
// each; it exits 2 if any fails, as srdd server would.
func doctorCmd() *cobra.Command {
	var cfg preflight.Config
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check what srdd server needs (Python with pyspark, Java 17+, writable directories), one line each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Python = defaultPython(cfg.Python)
			checks := preflight.Run(cfg)
			for _, c := range checks {
				fmt.Fprintln(cmd.OutOrStdout(), c.String())
			}
			if err := preflight.Err(checks); err != nil {
				return exitCode(2, fmt.Errorf("%d check(s) failed; srdd server would not start", countFailed(checks)))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Python, "python", "", "as srdd server --python (default: env SRDD_PYTHON, else .venv/bin/python if it exists, else python3)")
	f.StringVar(&cfg.DataDir, "data-dir", "data", "as srdd server --data-dir")
	f.StringVar(&cfg.CheckpointURI, "checkpoint-uri", "", "as srdd server --checkpoint-uri (default DATA-DIR/checkpoints)")
	f.StringArrayVar(&cfg.FileRoots, "file-root", nil, "as srdd server --file-root (default DATA-DIR/files)")
	f.BoolVar(&cfg.MemoryOnly, "memory-only", false, "as srdd server --memory-only (no checkpoint check)")
	return c
}

func countFailed(checks []preflight.Check) int {
	n := 0
	for _, c := range checks {
		if !c.OK {
			n++
		}
	}
	return n
}
