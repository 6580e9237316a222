//! Replays the seed corpora of the crate's fuzz targets (`fuzz/corpus/provisioning_*`)
//! through `pbxkit_provisioning::fuzzing`, so that a seed that panics fails `cargo test`.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

#[test]
fn every_seed_replays_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in pbxkit_provisioning::fuzzing::TARGETS {
        let mut seeds = 0;
        for entry in std::fs::read_dir(corpus.join(name)).unwrap() {
            let path = entry.unwrap().path();
            target(&std::fs::read(&path).unwrap());
            seeds += 1;
        }
        assert!(seeds > 0, "{name} has no seed");
    }
}
