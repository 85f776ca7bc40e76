// Package bench holds benchmarks that need dependencies the services must
// not carry, such as River for the queue comparison. It is its own module so
// those dependencies stay out of every shipped binary.
package bench
