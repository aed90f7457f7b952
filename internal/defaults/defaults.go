// Package defaults fills a configuration's zero fields from its
// package's DefaultConfig, the one place each default lives (the CLI's
// flags take theirs from the same functions).
package defaults

// Set sets *v to d when *v is the zero value.
func Set[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
