package cluster

import (
	"encoding/hex"
	"reflect"
	"testing"
)

// goldenCommands are one entry of every command type and the bytes the
// encoding has always written for it. The bytes are the on-disk format:
// a change here means logs already written no longer decode.
var goldenCommands = []struct {
	cmd Command
	hex string
}{
	{Command{CmdRegisterNode, &RegisterNode{ID: "n1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8998", Readmit: true}},
		"010184a26964a26e31a9726166745f61646472ae3132372e302e302e313a37303030a9687474705f61646472ae3132372e302e302e313a38393938a7726561646d6974c3"},
	{Command{CmdCreateSession, &CreateSession{Name: "s", Kind: "pyspark", Node: "n1", CreatedAt: 1700000000000, Conf: map[string]string{"spark.x": "1"}}},
		"010285a46e616d65a173a46b696e64a77079737061726ba46e6f6465a26e31aa637265617465645f6174d30000018bcfe56800a4636f6e6681a7737061726b2e78a131"},
	// Since issue 13: the principal ("owner") and the session's ACLs (absent above).
	{Command{CmdCreateSession, &CreateSession{Name: "s", Kind: "pyspark", Node: "n1", CreatedAt: 1700000000000,
		Principal: "ana", ViewUsers: []string{"bo"}, ModifyUsers: []string{"cy"}}},
		"010288a46e616d65a173a46b696e64a77079737061726ba46e6f6465a26e31aa637265617465645f6174d30000018bcfe56800a4636f6e66c0a56f776e6572a3616e61aa766965775f757365727391a2626fac6d6f646966795f757365727391a26379"},
	{Command{CmdSetSessionStatus, &SetSessionStatus{ID: 3, Status: SessionDead, Reason: "gone"}},
		"010383a26964d30000000000000003a6737461747573a464656164a6726561736f6ea4676f6e65"},
	{Command{CmdDeleteSession, &DeleteSession{ID: 3}},
		"010481a26964d30000000000000003"},
	{Command{CmdCreateRDD, &CreateRDD{Name: "states", SessionID: 3, Mode: ModeDurable, CreatedAt: 1700000000001}},
		"010584a46e616d65a6737461746573aa73657373696f6e5f6964d30000000000000003a46d6f6465a764757261626c65aa637265617465645f6174d30000018bcfe56801"},
	{Command{CmdDropRDD, &DropRDD{Name: "states"}},
		"010681a46e616d65a6737461746573"},
	{Command{CmdSetNodeStatus, &SetNodeStatus{ID: "n2", Status: NodeDown, At: 1700000000002}},
		"010783a26964a26e32a6737461747573a4646f776ea26174d30000018bcfe56802"},
	{Command{CmdRemoveNode, &RemoveNode{ID: "n2"}},
		"010881a26964a26e32"},
	{Command{CmdWrite, &Write{RDD: "states", Session: 3, Keys: []string{"a", "b"}, Values: [][]byte{[]byte("1"), []byte(`"x"`)},
		Groups: []int{1, 1}, Idem: []string{"k", ""}, Hashes: []uint64{42, 0}}},
		"010987a3726464a6737461746573a773657373696f6ed30000000000000003a46b65797392a161a162a676616c75657392c40131c403227822a667726f757073920101a46964656d92a16ba0a668617368657392cf000000000000002acf0000000000000000"},
	{Command{CmdWrite, &Write{RDD: "states", Session: 3, Delete: true, Keys: []string{"a"}, Groups: []int{1}}},
		"010985a3726464a6737461746573a773657373696f6ed30000000000000003a364656cc3a46b65797391a161a667726f7570739101"},
	{Command{CmdCheckpoint, &Checkpoint{RDD: "states", Session: 3, Incarnation: 7, Index: 99, Path: "/ck/states/99", Rows: 2, At: 1700000000003}},
		"010a87a3726464a6737461746573a773657373696f6ed30000000000000003a3696e63cf0000000000000007a5696e646578cf0000000000000063a470617468ad2f636b2f7374617465732f3939a4726f7773d30000000000000002a26174d30000018bcfe56803"},
	{Command{CmdMoveRDD, &MoveRDD{RDD: "states", From: 3, To: 4}},
		"010b83a3726464a6737461746573a466726f6dd30000000000000003a2746fd30000000000000004"},
	// Since issue 15: Livy batches.
	{Command{CmdCreateBatch, &CreateBatch{Name: "etl", Node: "n1", CreatedAt: 1700000000004, ProxyUser: "bo", Principal: "ana",
		ViewUsers: []string{"cy"}, ModifyUsers: []string{"di"}}}, "010c87a46e616d65a365746ca46e6f6465a26e31aa637265617465645f6174d30000018bcfe56804aa70726f78795f75736572a2626fa56f776e6572a3616e61aa766965775f757365727391a26379ac6d6f646966795f757365727391a26469"},
	{Command{CmdSetBatchState, &SetBatchState{ID: 3, State: BatchRunning, Reason: "", AppID: "local-1", SparkUIURL: "http://127.0.0.1:4040", At: 1700000000005}},
		"010d85a26964d30000000000000003a57374617465a772756e6e696e67a66170705f6964a76c6f63616c2d31a8737061726b5f7569b5687474703a2f2f3132372e302e302e313a34303430a26174d30000018bcfe56805"},
	// Since issue 21: admission.
	{Command{CmdAdmitNode, &AdmitNode{ID: "n2", Voter: true, By: "admin", At: 1700000000006}}, "010e84a26964a26e32a5766f746572c3a26279a561646d696ea26174d30000018bcfe56806"},
	{Command{CmdAddCopy, &AddCopy{RDD: "states", Node: "n2", Session: 4}}, "010f83a3726464a6737461746573a46e6f6465a26e32a773657373696f6ed30000000000000004"},
	{Command{CmdAddCopy, &AddCopy{RDD: "states", Node: "n3", Session: 5, Shared: true}}, "010f84a3726464a6737461746573a46e6f6465a26e33a773657373696f6ed30000000000000005a6736861726564c3"},
	// Since issue 24: the copies wanted (absent above: 1).
	{Command{CmdCreateRDD, &CreateRDD{Name: "states", SessionID: 3, Mode: ModeDurable, CreatedAt: 1700000000001, Replicas: 2}},
		"010585a46e616d65a6737461746573aa73657373696f6e5f6964d30000000000000003a46d6f6465a764757261626c65aa637265617465645f6174d30000018bcfe56801a87265706c6963617302"},
}

// TestEncodingIsStable checks that every command type encodes to the
// same bytes as before, and that those bytes decode to the same command.
func TestEncodingIsStable(t *testing.T) {
	for _, g := range goldenCommands {
		b, err := Encode(g.cmd)
		if err != nil {
			t.Fatalf("encode %s: %v", g.cmd.Type, err)
		}
		if got := hex.EncodeToString(b); got != g.hex {
			t.Errorf("%s encodes to\n%s, want\n%s", g.cmd.Type, got, g.hex)
		}
		want, _ := hex.DecodeString(g.hex)
		d, err := Decode(want)
		if err != nil {
			t.Fatalf("decode %s: %v", g.cmd.Type, err)
		}
		if !reflect.DeepEqual(d, g.cmd) {
			t.Errorf("%s decodes to %+v, want %+v", g.cmd.Type, d.Body, g.cmd.Body)
		}
	}
}
