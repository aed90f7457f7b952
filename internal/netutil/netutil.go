// Package netutil holds small network helpers shared by the benchmark
// harness, the deploy checks and the tests.
package netutil
