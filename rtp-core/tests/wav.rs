//! WAV files: prompts in every common format converted to 8 kHz 16-bit mono, writing
//! and reading back, the two-leg [`Recorder`] with pause and resume, and malformed
//! files refused without panics.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_rtp::wav::{PROMPT_RATE, Recorder, WavError, read_mono, read_prompt, write_mono};
use proptest::prelude::*;
use std::f64::consts::PI;
use std::io::Cursor;

/// A WAV file in memory with `channels` copies of a sine of `amplitude` (of full
/// scale) at `freq` Hz, written by hound in the given sample format.
fn wav(rate: u32, channels: u16, bits: u16, float: bool, freq: f64, amplitude: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut file = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut file, spec).unwrap();
    for i in 0..rate / 2 {
        let v = amplitude * (2.0 * PI * freq * f64::from(i) / f64::from(rate)).sin();
        for _ in 0..channels {
            if float {
                w.write_sample(v as f32).unwrap();
            } else {
                let full = f64::from((1u32 << (bits - 1)) - 1);
                w.write_sample((v * full).round() as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
    file.into_inner()
}

/// Amplitude of `freq` in `x` (Goertzel with a Hann window), as a fraction of full scale.
fn tone_amplitude(x: &[i16], rate: u32, freq: f64) -> f64 {
    let n = x.len() as f64;
    let w = 2.0 * PI * freq / f64::from(rate);
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let v = f64::from(s) * (0.5 - 0.5 * (2.0 * PI * i as f64 / n).cos());
        re += v * (w * i as f64).cos();
        im += v * (w * i as f64).sin();
    }
    (re * re + im * im).sqrt() * 4.0 / n / 32767.0
}

#[test]
fn prompts_in_any_format_load_as_8k_mono() {
    for (rate, channels, bits, float) in [
        (8000, 1, 16, false),
        (8000, 1, 8, false),
        (16_000, 1, 16, false),
        (16_000, 2, 24, false),
        (44_100, 2, 16, false),
        (48_000, 1, 32, true),
        (22_050, 1, 32, false),
        (11_025, 2, 8, false),
    ] {
        let file = wav(rate, channels, bits, float, 1000.0, 0.5);
        let pcm = read_prompt(Cursor::new(file)).unwrap();
        let what = format!("{rate} Hz, {channels} ch, {bits}-bit, float {float}");
        assert_eq!(pcm.len(), PROMPT_RATE as usize / 2, "{what}");
        let steady = &pcm[1000..3000];
        let a = tone_amplitude(steady, PROMPT_RATE, 1000.0);
        assert!((a - 0.5).abs() < 0.01, "{what}: amplitude {a}");
    }
}

#[test]
fn high_frequencies_are_filtered_on_load() {
    // 6 kHz cannot exist at 8 kHz: it must not alias to 2 kHz.
    let file = wav(48_000, 1, 16, false, 6000.0, 0.9);
    let pcm = read_prompt(Cursor::new(file)).unwrap();
    let peak = pcm[200..3800]
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap();
    assert!(peak < 10, "peak {peak}");
}

#[test]
fn write_then_read_is_exact() {
    let samples: Vec<i16> = (0..16_000)
        .map(|i| (i * 7919 % 65_536 - 32_768) as i16)
        .collect();
    for rate in [8000, 16_000] {
        let mut file = Cursor::new(Vec::new());
        write_mono(&mut file, rate, &samples).unwrap();
        let bytes = file.into_inner();
        let reader = hound::WavReader::new(Cursor::new(bytes.clone())).unwrap();
        assert_eq!(reader.spec().sample_rate, rate);
        assert_eq!(reader.spec().channels, 1);
        assert_eq!(read_mono(Cursor::new(bytes), rate).unwrap(), samples);
    }
}

#[test]
fn recorder_mixes_pauses_and_resumes() {
    let mut file = Cursor::new(Vec::new());
    let mut rec = Recorder::new(&mut file, 8000).unwrap();
    let a: Vec<i16> = (0..160).map(|i| i * 10).collect();
    let b: Vec<i16> = (0..160).map(|i| -i * 3).collect();
    assert_eq!(rec.push(&a, &b).unwrap(), 160);
    rec.pause();
    assert!(rec.is_paused());
    assert_eq!(rec.push(&[1234; 160], &[1; 160]).unwrap(), 0);
    assert_eq!(rec.push(&[1234; 160], &[]).unwrap(), 0);
    rec.resume();
    // Unequal frames: the shorter leg is padded with silence; sums saturate.
    assert_eq!(rec.push(&[i16::MAX; 100], &[5; 160]).unwrap(), 160);
    assert_eq!(rec.push(&[i16::MIN; 10], &[-1; 10]).unwrap(), 10);
    assert_eq!(rec.recorded_samples(), 330);
    assert_eq!(rec.dropped_samples(), 320);
    assert!(format!("{rec:?}").contains("Recorder"));
    rec.finish().unwrap();

    let got = read_prompt(Cursor::new(file.into_inner())).unwrap();
    let mut expected: Vec<i16> = (0..160).map(|i| i * 7).collect();
    expected.extend([i16::MAX; 100]);
    expected.extend([5; 60]);
    expected.extend([i16::MIN; 10]);
    assert_eq!(got, expected);
}

#[test]
fn wideband_recording_keeps_its_rate() {
    let mut file = Cursor::new(Vec::new());
    let mut rec = Recorder::new(&mut file, 16_000).unwrap();
    for _ in 0..50 {
        rec.push(&[100; 320], &[200; 320]).unwrap();
    }
    rec.finish().unwrap();
    let bytes = file.into_inner();
    assert_eq!(
        hound::WavReader::new(Cursor::new(bytes.clone()))
            .unwrap()
            .spec()
            .sample_rate,
        16_000
    );
    assert_eq!(
        read_mono(Cursor::new(bytes.clone()), 16_000).unwrap(),
        vec![300; 16_000]
    );
    // As a prompt it is converted to 8 kHz.
    assert_eq!(read_prompt(Cursor::new(bytes)).unwrap().len(), 8000);
}

#[test]
fn malformed_files_are_errors() {
    assert!(matches!(
        read_prompt(Cursor::new(b"")),
        Err(WavError::Wav(_))
    ));
    assert!(matches!(
        read_prompt(Cursor::new(b"RIFF\0\0\0\0WAVEfmt ")),
        Err(WavError::Wav(_))
    ));
    // A truncated file: the header promises more than there is.
    let mut file = wav(8000, 1, 16, false, 440.0, 0.5);
    file.truncate(file.len() / 2);
    assert!(matches!(
        read_prompt(Cursor::new(file)),
        Err(WavError::Wav(_))
    ));
    // A rate the resampler refuses (hound accepts it).
    let file = wav(7919, 1, 16, false, 440.0, 0.5);
    assert!(matches!(
        read_prompt(Cursor::new(file)),
        Err(WavError::Rate(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, alone or after a valid header, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..44) {
        let _ = read_prompt(Cursor::new(tail.clone()));
        let mut file = wav(8000, 1, 16, false, 440.0, 0.5);
        file.truncate(cut);
        file.extend(&tail);
        let _ = read_prompt(Cursor::new(file));
    }
}
