//! G.722 against FFmpeg 5.1's `g722` codec: our encoder must produce FFmpeg's
//! bitstream byte for byte and our decoder FFmpeg's PCM sample for sample.
//!
//! The vectors in `tests/data/` were made by `tests/data/make_g722_vectors.py` and:
//!
//! ```text
//! ffmpeg -i chirp16k.wav -ar 16000 -acodec g722 -f g722 chirp16k.g722
//! ffmpeg -f g722 -i chirp16k.g722 -f s16le chirp16k.g722.s16le
//! ffmpeg -f g722 -i random.g722 -f s16le random.g722.s16le
//! ```
//!
//! `chirp16k.wav` is one second at 16 kHz: a 100 Hz → 7.5 kHz chirp at 0.8 of full
//! scale, then a clipped full-scale square wave with a tone on top; `random.g722` is
//! 4000 random bytes, which drive the decoder through extreme states.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_rtp::codec::{Codec, G722};
use pbxkit_rtp::g722::{G722Decoder, G722Encoder};

const INPUT_WAV: &[u8] = include_bytes!("data/chirp16k.wav");
const FFMPEG_BITSTREAM: &[u8] = include_bytes!("data/chirp16k.g722");
const FFMPEG_DECODED: &[u8] = include_bytes!("data/chirp16k.g722.s16le");
const RANDOM_BITSTREAM: &[u8] = include_bytes!("data/random.g722");
const RANDOM_DECODED: &[u8] = include_bytes!("data/random.g722.s16le");

fn le_samples(bytes: &[u8]) -> Vec<i16> {
    assert_eq!(bytes.len() % 2, 0);
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The samples of the canonical 44-byte-header 16-bit mono WAV.
fn input() -> Vec<i16> {
    assert_eq!(&INPUT_WAV[..4], b"RIFF");
    assert_eq!(&INPUT_WAV[36..40], b"data");
    le_samples(&INPUT_WAV[44..])
}

fn first_difference<T: PartialEq + std::fmt::Debug>(ours: &[T], theirs: &[T]) -> String {
    match ours.iter().zip(theirs).position(|(a, b)| a != b) {
        Some(i) => format!("first difference at {i}: {:?} vs {:?}", ours[i], theirs[i]),
        None => format!("lengths {} vs {}", ours.len(), theirs.len()),
    }
}

#[test]
fn encoder_matches_ffmpeg_bit_for_bit() {
    let pcm = input();
    assert_eq!(pcm.len(), 16_000);
    let mut encoder = G722Encoder::new();
    let mut ours = Vec::new();
    encoder.encode(&pcm, &mut ours).unwrap();
    assert!(
        ours == FFMPEG_BITSTREAM,
        "{}",
        first_difference(&ours, FFMPEG_BITSTREAM)
    );
}

#[test]
fn encoder_in_20ms_frames_matches_one_call() {
    let pcm = input();
    let mut codec = G722::new();
    let mut ours = Vec::new();
    for frame in pcm.chunks(320) {
        codec.encode(frame, &mut ours).unwrap();
    }
    assert!(
        ours == FFMPEG_BITSTREAM,
        "{}",
        first_difference(&ours, FFMPEG_BITSTREAM)
    );
}

#[test]
fn decoder_matches_ffmpeg_sample_for_sample() {
    for (bitstream, decoded) in [
        (FFMPEG_BITSTREAM, FFMPEG_DECODED),
        (RANDOM_BITSTREAM, RANDOM_DECODED),
    ] {
        let expected = le_samples(decoded);
        let mut decoder = G722Decoder::new();
        let mut ours = Vec::new();
        for packet in bitstream.chunks(160) {
            decoder.decode(packet, &mut ours);
        }
        assert!(ours == expected, "{}", first_difference(&ours, &expected));
    }
}

/// The round trip through G.722 keeps the chirp: the signal-to-noise ratio of the
/// decoded chirp (aligned by the codec's 22-sample delay: 2 × 11 of the QMFs) is high.
#[test]
fn round_trip_snr() {
    let pcm = input();
    let mut codec = G722::new();
    let mut payload = Vec::new();
    codec.encode(&pcm, &mut payload).unwrap();
    let mut decoded = Vec::new();
    codec.decode(&payload, &mut decoded).unwrap();
    const DELAY: usize = 22;
    let (mut signal, mut noise) = (0f64, 0f64);
    for i in 1000..11_000 {
        let x = f64::from(pcm[i]);
        let y = f64::from(decoded[i + DELAY]);
        signal += x * x;
        noise += (x - y) * (x - y);
    }
    let snr = 10.0 * (signal / noise).log10();
    assert!(snr > 20.0, "SNR {snr:.1} dB");
}

/// The fuzzing entry points of the new modules on the test vectors and some edge cases.
#[test]
fn fuzz_entry_points_accept_the_vectors() {
    for data in [
        FFMPEG_BITSTREAM,
        RANDOM_BITSTREAM,
        INPUT_WAV,
        &[],
        &[0xFF],
        &[1, 2, 3],
    ] {
        pbxkit_rtp::fuzzing::rtp_g722(data);
        pbxkit_rtp::fuzzing::rtp_resample(data);
        pbxkit_rtp::fuzzing::rtp_wav(data);
    }
    for pick in 0..9u8 {
        let mut data = vec![pick, 7];
        data.extend_from_slice(&INPUT_WAV[44..4044]);
        pbxkit_rtp::fuzzing::rtp_resample(&data);
    }
}
