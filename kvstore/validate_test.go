package kvstore

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	f := func(name string, want error) {
		t.Helper()
		if err := ValidateName(name); !errors.Is(err, want) {
			t.Fatalf("ValidateName(%q) = %v, want %v", name, err, want)
		}
	}
	f("states", nil)
	f("S_2", nil)
	f(strings.Repeat("a", 64), nil)
	f(strings.Repeat("a", 65), ErrInvalid)
	f("", ErrInvalid)
	f("_private", ErrInvalid)
	f("9lives", ErrInvalid)
	f("has-dash", ErrInvalid)
	f("dot.name", ErrInvalid)
	f(`x"); import os; ("`, ErrInvalid)
	f("naïve", ErrInvalid)
	f("lambda", ErrInvalid)
	f("None", ErrInvalid)
	f("spark", ErrInvalid)
	f("shared_rdds", ErrInvalid)
}

func TestValidateKeyAndValue(t *testing.T) {
	l := DefaultLimits()
	k := func(key string, want error) {
		t.Helper()
		if err := l.ValidateKey(key); !errors.Is(err, want) {
			t.Fatalf("ValidateKey(%q) = %v, want %v", key, err, want)
		}
	}
	k("ak", nil)
	k(`x"); os.system("id"); ("`, nil) // hostile keys are fine: they are data
	k(strings.Repeat("k", 1024), nil)
	k(strings.Repeat("k", 1025), ErrTooLarge)
	k("", ErrInvalid)
	k("\xff\xfe", ErrInvalid)

	v := func(val string, want error) {
		t.Helper()
		if err := l.ValidateValue([]byte(val)); !errors.Is(err, want) {
			t.Fatalf("ValidateValue(%.40q) = %v, want %v", val, err, want)
		}
	}
	v(`"Alaska"`, nil)
	v(`{"a":[1,2,null,true]}`, nil)
	v(`0`, nil)
	v(``, ErrInvalid)
	v(`{"a":`, ErrInvalid)
	v(`'single'`, ErrInvalid)
	v(`1 2`, ErrInvalid)
	// Valid JSON text, but no value the store can hold.
	v(`"\ud800"`, ErrInvalid)
	v(`{"\udfff":1}`, ErrInvalid)
	v(`"\ud800\u0041"`, ErrInvalid)
	v(`"\ud83d\ude00 and \u00e9 and \\ud800"`, nil) // a pair, a BMP escape, an escaped backslash
	v(strings.Repeat("[", MaxValueDepth)+strings.Repeat("]", MaxValueDepth), nil)
	v(strings.Repeat("[", MaxValueDepth+1)+strings.Repeat("]", MaxValueDepth+1), ErrInvalid)
	v(`"[[[[ in a string are not nesting"`, nil)
	v(`"`+strings.Repeat("v", 1<<20)+`"`, ErrTooLarge)

	b := func(n int, want error) {
		t.Helper()
		if err := l.validateBatch(n); !errors.Is(err, want) {
			t.Fatalf("validateBatch(%d) = %v, want %v", n, err, want)
		}
	}
	b(1, nil)
	b(10000, nil)
	b(0, ErrInvalid)
	b(10001, ErrTooLarge)
}
