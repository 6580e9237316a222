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
