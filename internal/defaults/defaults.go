// Package defaults fills a configuration's zero fields from its
// package's DefaultConfig, the one place each default lives (the CLI's
// flags take theirs from the same functions).
package defaults

import "reflect"

// Set sets *v to d when *v is the zero value.
func Set[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Fields sets each zero field of the struct *v to the same field of d:
// for a configuration all of whose fields have a default.
func Fields[T any](v *T, d T) {
	dst, src := reflect.ValueOf(v).Elem(), reflect.ValueOf(d)
	for i := 0; i < dst.NumField(); i++ {
		if f := dst.Field(i); f.CanSet() && f.IsZero() {
			f.Set(src.Field(i))
		}
	}
}
