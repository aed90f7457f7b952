package cluster

import (
	"errors"
	"strings"
	"testing"
)

// checker is the f of a name test: f(s, ok) fails the test unless
// valid(s) accepts s exactly when ok. what names the check in messages.
func checker(t *testing.T, what string, valid func(string) error) func(string, bool) {
	return func(s string, ok bool) {
		t.Helper()
		if err := valid(s); (err == nil) != ok {
			t.Errorf("%s(%q) = %v, want ok=%v", what, s, err, ok)
		}
	}
}

func TestValidRDDName(t *testing.T) {
	f := checker(t, "ValidRDDName", ValidRDDName)
	f("states", true)
	f("a", true)
	f("A_1", true)
	f("a"+strings.Repeat("b", 63), true)
	f("a"+strings.Repeat("b", 64), false)
	f("", false)
	f("..", false)
	f(".", false)
	f("a/b", false)
	f("1a", false)
	f("_a", false)
	f("a-b", false)
	f("a\x00", false)
	f("é", false)
	f("spark", false)
	f("class", false)
}

func TestValidSessionName(t *testing.T) {
	f := checker(t, "ValidSessionName", ValidSessionName)
	f("s", true)
	f("shared-1.a_b", true)
	f("1a", true)
	f(strings.Repeat("a", 128), true)
	f(strings.Repeat("a", 129), false)
	f("", false)
	f("..", false)
	f("-a", false)
	f("a/b", false)
	f("42", false)
	f("-42", false)
}

func TestCheckpointPath(t *testing.T) {
	f := checker(t, "checkpointPath for rdd states: path", func(path string) error { return checkpointPath("states", path) })
	// What kvstore writes: CHECKPOINT-URI/NAME/%020d-MS.
	f("/data/checkpoints/states/00000000000000000099-1700000000000", true)
	f("/states/x", true)
	f("/data//ck/states/x", true)
	f("file:///data/ck/states/x", true)
	f("hdfs://nn:8020/ck/states/x", true)
	f("s3a://bucket/states/x", true)
	f("s3a://bucket/a/./states/x", true)
	f("", false)
	f("states/x", false)
	f("ck/states/x", false)
	f("file:ck/states/x", false)
	f("s3a://bucket", false)
	f("/ck/other/x", false)
	f("/ck/states", false)
	f("/ck/states/", false)
	f("/ck/states/.", false)
	f("/ck/states/..", false)
	f("/ck/../states/x", false)
	f("/ck/%2E%2e/states/x", false)
	f("hdfs://nn/../states/x", false)
	f("/ck/states/x\x00", false)
	f("/attacker/states/../../etc/x", false)
}

// TestApplyRefusesEntriesBreakingTheRules covers the rules an entry must
// meet when applied, beyond its shape: names by the API's rules, and a
// checkpoint neither past its own entry nor outside its rdd's directory.
// Each is refused with ErrInvalidCommand and changes nothing.
func TestApplyRefusesEntriesBreakingTheRules(t *testing.T) {
	s := durableState(t)
	f := func(index uint64, typ CommandType, body any) {
		t.Helper()
		before := s.clone()
		if _, err := s.apply(Command{Type: typ, Body: body}, index); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s %+v at %d: err = %v, want ErrInvalidCommand", typ, body, index, err)
		}
		if !equalStates(t, before, s) {
			t.Errorf("%s %+v: a refused entry changed the state", typ, body)
		}
	}
	f(10, CmdCreateRDD, &CreateRDD{Name: "..", SessionID: 0, Mode: ModeDurable})
	f(10, CmdCreateRDD, &CreateRDD{Name: "a/b", SessionID: 0, Mode: ModeMemory})
	f(10, CmdCreateRDD, &CreateRDD{Name: "sc", SessionID: 0, Mode: ModeMemory})
	f(10, CmdCreateRDD, &CreateRDD{Name: "x", SessionID: 0, Mode: "forever"})
	f(10, CmdCreateSession, &CreateSession{Name: "../x", Kind: "pyspark", Node: "n1"})
	f(10, CmdCreateSession, &CreateSession{Name: "7", Kind: "pyspark", Node: "n1"})
	f(10, CmdWrite, &Write{RDD: "d", Session: 0, Delete: true, Keys: []string{"a"}, Values: [][]byte{[]byte("1")}, Groups: []int{1}})
	// The forged checkpoint of issue 14: index 10^9 and an attacker's path.
	f(100, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 1_000_000_000, Path: "/c/d/x"})
	f(100, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 101, Path: "/c/d/x"})
	f(100, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 50, Path: "/tmp/attacker.parquet"})
	f(100, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 50, Path: "/c/other/x"})
	f(100, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 50, Path: "/c/d/../../x"})
	f(100, CmdCheckpoint, &Checkpoint{RDD: "d", Index: 50, Path: "c/d/x"})
	// The same entries, within the rules, are applied.
	if _, err := s.apply(Command{Type: CmdCheckpoint, Body: &Checkpoint{RDD: "d", Index: 100, Path: "/c/d/x"}}, 100); err != nil {
		t.Fatalf("checkpoint at its own index: %v", err)
	}
	if _, err := s.apply(Command{Type: CmdCreateSession, Body: &CreateSession{Name: "s-1.a", Kind: "pyspark"}}, 101); err != nil {
		t.Fatalf("valid session name: %v", err)
	}
	if _, err := s.apply(Command{Type: CmdCreateRDD, Body: &CreateRDD{Name: "ok_1", SessionID: 0, Mode: ModeMemory}}, 102); err != nil {
		t.Fatalf("valid rdd name: %v", err)
	}
}
