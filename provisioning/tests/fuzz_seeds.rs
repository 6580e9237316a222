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

#[test]
fn tftp_packet_seeds_are_registered_and_parse() {
    let (_, target) = pbxkit_provisioning::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == "provisioning_tftp_packet")
        .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/provisioning_tftp_packet");
    let mut seeds = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        // Every seed is a valid packet, so that the target's checks run on it.
        pbxkit_provisioning::tftp::Packet::parse(&bytes).unwrap();
        target(&bytes);
        seeds += 1;
    }
    assert!((3..=6).contains(&seeds), "{seeds} seeds");
}
