//! The fuzz seed corpora of this crate are valid packets: each one parses (so the
//! fuzzer starts from the interesting side of the parser) and round-trips.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_rtp::{RtpPacket, rtcp};
use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut all: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    all.sort();
    assert!(all.len() >= 4, "{}: too few seeds", dir.display());
    all
}

#[test]
fn rtp_seeds_parse() {
    for (path, data) in seeds("rtp_packet") {
        let packet =
            RtpPacket::parse(data.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(RtpPacket::parse(packet.to_bytes()).unwrap(), packet);
        pbxkit_rtp::fuzzing::rtp_packet(&data);
    }
}

#[test]
fn rtcp_seeds_parse() {
    for (path, data) in seeds("rtcp_packet") {
        let packets = rtcp::parse_compound(data.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            rtcp::serialize_compound(&packets).unwrap(),
            data,
            "{}",
            path.display()
        );
        pbxkit_rtp::fuzzing::rtcp_packet(&data);
    }
}

#[test]
fn jitter_seeds_replay() {
    for (path, data) in seeds("rtp_jitter") {
        assert_eq!(
            data.len() % 6,
            0,
            "{}: not whole operations",
            path.display()
        );
        pbxkit_rtp::fuzzing::rtp_jitter(&data);
    }
}

/// The corpus directory and fuzz target file of every registered target of this
/// crate exist, and every `rtp_*`/`rtcp_*` fuzz target is registered (the workspace
/// check in benches/tests/fuzz_corpus.rs does this across crates).
#[test]
fn registered_targets_match_the_fuzz_directory() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let registered: Vec<&str> = pbxkit_rtp::fuzzing::TARGETS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    for name in &registered {
        assert!(
            fuzz.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "{name}"
        );
        assert!(fuzz.join("corpus").join(name).is_dir(), "{name}");
    }
    for entry in std::fs::read_dir(fuzz.join("fuzz_targets")).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        let name = file.trim_end_matches(".rs");
        let ours = name.starts_with("rtp_") || name.starts_with("rtcp_");
        // `rtp_opus` is registered only when libopus is linked.
        let built = cfg!(feature = "opus") || name != "rtp_opus";
        if ours && built {
            assert!(registered.contains(&name), "{name} is not in TARGETS");
        }
    }
}

#[test]
fn g722_seeds_replay() {
    for (_, data) in seeds("rtp_g722") {
        pbxkit_rtp::fuzzing::rtp_g722(&data);
    }
}

#[test]
fn resample_seeds_replay() {
    for (path, data) in seeds("rtp_resample") {
        assert!(data.len() > 2, "{}: no samples", path.display());
        pbxkit_rtp::fuzzing::rtp_resample(&data);
    }
}

/// Every WAV seed but the truncated one is a prompt that reads (so the fuzzer starts
/// from files that get past the header).
#[test]
fn wav_seeds_replay() {
    for (path, data) in seeds("rtp_wav") {
        let read = pbxkit_rtp::wav::read_prompt(std::io::Cursor::new(&data));
        let truncated = path.to_string_lossy().contains("truncated");
        assert_eq!(read.is_ok(), !truncated, "{}: {read:?}", path.display());
        pbxkit_rtp::fuzzing::rtp_wav(&data);
    }
}

/// The Opus seeds are packets that libopus decodes, but for the one that is invalid
/// on purpose.
#[cfg(feature = "opus")]
#[test]
fn opus_seeds_replay() {
    use pbxkit_rtp::codec::Codec;
    for (path, data) in seeds("rtp_opus") {
        let mut opus = pbxkit_rtp::opus::Opus::new(Default::default()).unwrap();
        let decoded = opus.decode(&data, &mut Vec::new());
        let invalid = path.to_string_lossy().contains("invalid");
        assert_eq!(decoded.is_ok(), !invalid, "{}: {decoded:?}", path.display());
        pbxkit_rtp::fuzzing::rtp_opus(&data);
        // Every byte of every seed overwritten, as a first mutation round would.
        for i in 0..data.len() {
            for value in [0x00, 0x7F, 0x80, 0xFF] {
                let mut mutated = data.clone();
                mutated[i] = value;
                pbxkit_rtp::fuzzing::rtp_opus(&mutated);
            }
        }
    }
}
