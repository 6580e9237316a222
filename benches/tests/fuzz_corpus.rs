//! Replays every fuzz seed under `fuzz/corpus/<target>/` through the function its fuzz
//! target calls, on the stable toolchain, and checks that targets, corpora and the
//! crates' `fuzzing::TARGETS` lists agree.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeSet;
use std::path::Path;

type Target = (&'static str, fn(&[u8]));

fn targets() -> Vec<Target> {
    let mut all: Vec<Target> = Vec::new();
    all.extend(pbxkit_sip::fuzzing::TARGETS.iter().copied());
    all.extend(pbxkit_dialplan::fuzzing::TARGETS.iter().copied());
    all.extend(pbxkit_rtp::fuzzing::TARGETS.iter().copied());
    all.extend(pbxkit_acd::fuzzing::TARGETS.iter().copied());
    all.extend(pbxkit_directory::fuzzing::TARGETS.iter().copied());
    all.extend(pbxkit_provisioning::fuzzing::TARGETS.iter().copied());
    all
}

fn fuzz_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn names_in(dir: &Path, strip_rs: bool) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if strip_rs {
                name.trim_end_matches(".rs").to_owned()
            } else {
                name
            }
        })
        .collect()
}

/// Targets that exist only with a crate feature (fuzz/Cargo.toml turns it on): they
/// are registered when this test is built with the feature too.
const FEATURE_GATED: &[&str] = &["rtp_opus"];

#[test]
fn every_fuzz_target_is_registered_and_has_seeds() {
    let registered: BTreeSet<String> = targets().iter().map(|(n, _)| n.to_string()).collect();
    let on_disk = |dir: &str, strip_rs: bool| -> BTreeSet<String> {
        names_in(&fuzz_dir().join(dir), strip_rs)
            .into_iter()
            .filter(|n| registered.contains(n) || !FEATURE_GATED.contains(&n.as_str()))
            .collect()
    };
    assert_eq!(on_disk("fuzz_targets", true), registered);
    assert_eq!(on_disk("corpus", false), registered);
}

#[test]
fn seed_corpora_replay_without_panic() {
    let mut replayed = 0;
    for (name, target) in targets() {
        let dir = fuzz_dir().join("corpus").join(name);
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            // A local fuzzing run may be rewriting its corpus beside the seeds.
            let data = match std::fs::read(&path) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name}: {} panics", path.display());
            seeds += 1;
        }
        assert!(seeds > 0, "no seed for {name}");
        replayed += seeds;
    }
    println!("replayed {replayed} seeds");
}
