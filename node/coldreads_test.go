package node

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
)

// Reads of keys that live only in the compacted base (issue 16: served
// from the interpreter's resident partition indexes): a batch too large
// for the reader thread goes through the cold path and comes back whole
// and in order, with misses, overwrites and deletes made after a first
// read and a compaction in between; and a DataFrame derived from
// states.df in a statement still reads after two more compactions.
func TestColdBatchesAndHeldDataFrameAcrossCompaction(t *testing.T) {
	base, c, ctx := sharedRDD(t, "coldr")
	want := map[string]string{}
	items := map[string]json.RawMessage{}
	for i := 0; i < 1500; i++ {
		k := fmt.Sprintf("c%04d", i)
		want[k] = strconv.Itoa(i)
		items[k] = json.RawMessage(want[k])
	}
	if _, err := c.SetMany(ctx, "coldr", items); err != nil {
		t.Fatal(err)
	}
	textOf(t, run(t, base, 0, "coldr.compact()"))
	check := func(stage string) {
		t.Helper()
		keys := []string{"nope"}
		for i := 0; i < 1500; i++ {
			keys = append(keys, fmt.Sprintf("c%04d", i))
		}
		vals, missing, err := c.GetMany(ctx, "coldr", keys)
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		absent := 0
		for _, k := range keys[1:] {
			w, ok := want[k]
			if !ok {
				absent++
				if _, there := vals[k]; there {
					t.Fatalf("%s: deleted %s = %s", stage, k, vals[k])
				}
				continue
			}
			if string(vals[k]) != w {
				t.Fatalf("%s: %s = %s, want %s", stage, k, vals[k], w)
			}
		}
		if len(missing) != absent+1 {
			t.Fatalf("%s: %d missing, want %d", stage, len(missing), absent+1)
		}
	}
	check("first read")
	// a DataFrame derived in session code, held across compactions
	textOf(t, run(t, base, 0, `held = coldr.df.filter("key < 'c0003'")`))
	for i := 0; i < 1500; i += 7 {
		k := fmt.Sprintf("c%04d", i)
		want[k] = `"v2"`
		if err := c.Set(ctx, "coldr", k, json.RawMessage(want[k])); err != nil {
			t.Fatal(err)
		}
	}
	var doomed []string
	for i := 3; i < 1500; i += 11 {
		k := fmt.Sprintf("c%04d", i)
		if _, ok := want[k]; ok {
			doomed = append(doomed, k)
			delete(want, k)
		}
	}
	if n, err := c.DeleteMany(ctx, "coldr", doomed); err != nil || n != len(doomed) {
		t.Fatalf("delete = %d, %v", n, err)
	}
	check("pending writes")
	textOf(t, run(t, base, 0, "coldr.compact()"))
	check("compacted")
	textOf(t, run(t, base, 0, `coldr.set("c0001", "again"); coldr.compact()`))
	want["c0001"] = `"again"`
	check("compacted twice")
	got := textOf(t, run(t, base, 0, `import gc; gc.collect(); print(sorted((r.key, r.value) for r in held.collect()))`))
	if got != `[('c0000', '0'), ('c0001', '1'), ('c0002', '2')]` {
		t.Fatalf("held DataFrame after two compactions = %s", got)
	}
	if err := c.DropRDD(ctx, "coldr"); err != nil {
		t.Fatal(err)
	}
}
