package defaults

import "testing"

func TestFields(t *testing.T) {
	type conf struct {
		A int
		B string
		C float64
		d int // unexported: left alone
	}
	c := conf{A: 3, d: 0}
	Fields(&c, conf{A: 1, B: "b", C: 2.5, d: 9})
	if want := (conf{A: 3, B: "b", C: 2.5}); c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestSet(t *testing.T) {
	v, w := 0, 5
	Set(&v, 7)
	Set(&w, 7)
	if v != 7 || w != 5 {
		t.Fatalf("got %d %d, want 7 5", v, w)
	}
}
