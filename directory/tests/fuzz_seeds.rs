//! Replays the seed corpora of the crate's fuzz targets (`fuzz/corpus/directory_*`)
//! through `pbxkit_directory::fuzzing`, so that a seed that panics fails `cargo test`.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

#[test]
fn every_seed_replays_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in pbxkit_directory::fuzzing::TARGETS {
        let mut seeds = 0;
        for entry in std::fs::read_dir(corpus.join(name)).unwrap() {
            let path = entry.unwrap().path();
            target(&std::fs::read(&path).unwrap());
            seeds += 1;
        }
        assert!(seeds > 0, "{name} has no seed");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn fuzz_targets_hold_on_random_text(text in "[{}a-z= \n,;0-9+()\"éÉüÜÆæßŁłΣσςİ-]{0,200}", first in proptest::prelude::any::<u8>()) {
        pbxkit_directory::fuzzing::directory_format(text.as_bytes());
        let mut csv = vec![first];
        csv.extend_from_slice(text.as_bytes());
        pbxkit_directory::fuzzing::directory_csv(&csv);
    }
}
