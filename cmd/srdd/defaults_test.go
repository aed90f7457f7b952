package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/srdd/srdd/internal/testutil"
	"github.com/srdd/srdd/node"
)

// One set of defaults (issue 23): `srdd server` with no flags asks for
// exactly node.DefaultConfig, which takes the other packages' defaults
// from their DefaultConfig; and where the README gives a flag's default,
// it is the flag's.
func TestServerFlagsTakeTheDefaults(t *testing.T) {
	o := &serverOpts{}
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	o.register(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	got, err := o.config(false)
	if err != nil {
		t.Fatal(err)
	}
	want := node.DefaultConfig()
	// What the flags cannot carry or resolve only at run time, and the
	// start-up budget, which has no flag (the node fills it).
	got.SparkConf, got.Version, got.Python, want.Python = nil, "", "", ""
	want.LeaderTimeout = 0
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := 0; i < gv.NumField(); i++ {
		name := gv.Type().Field(i).Name
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); !reflect.DeepEqual(g, w) {
			t.Errorf("Config.%s: the flags give %#v, node.DefaultConfig %#v", name, g, w)
		}
	}
	// The README: "`--flag` ... default VALUE".
	readme, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("`(--[a-z-]+)`[^`.;]{0,60}?default ([0-9][0-9a-z.]*)")
	found := 0
	for _, m := range re.FindAllStringSubmatch(string(readme), -1) {
		f := fs.Lookup(strings.TrimPrefix(m[1], "--"))
		if f == nil {
			continue // another command's flag
		}
		found++
		if f.DefValue != m[2] && strings.TrimSuffix(f.DefValue, "0s") != m[2] {
			t.Errorf("README says %s defaults to %s; the flag's default is %s", m[1], m[2], f.DefValue)
		}
	}
	if found == 0 {
		t.Error("the README gives no flag default in the form checked here (`--flag` ... default VALUE)")
	}
}
