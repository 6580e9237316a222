//! Benchmarks for the pbxkit crates live in `benches/` (one file per library crate);
//! this library holds what they share: the sample inputs, so that benches and tests
//! measure the same bytes.
#![forbid(unsafe_code)]
