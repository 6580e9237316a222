//! WAV files (via `hound`): prompts read and converted to the telephony format, PCM
//! written, and a [`Recorder`] that mixes both legs of a call into one file.
//!
//! Prompts are played as 8 kHz 16-bit mono ([`PROMPT_RATE`]); [`read_prompt`] converts
//! any PCM WAV on load: integer samples of 8 to 32 bits or 32-bit float, any number of
//! channels (averaged) and any rate (converted with [`Resampler`], delay removed).
//!
//! The [`Recorder`] is driven by frames: the caller hands it the frame each leg sent
//! during a tick and it appends their saturated sum to the file. While paused it drops
//! frames, so the file holds only the recorded parts, back to back. It writes to any
//! `Write + Seek` (a file, a `Cursor`, `&mut` either) and never reads the clock.
//!
//! ```
//! use pbxkit_rtp::wav::{read_prompt, Recorder};
//! use std::io::Cursor;
//!
//! let mut file = Cursor::new(Vec::new());
//! let mut recorder = Recorder::new(&mut file, 8000)?;
//! recorder.push(&[1000; 160], &[-200; 160])?;
//! recorder.pause();
//! recorder.push(&[5; 160], &[5; 160])?; // not recorded
//! recorder.resume();
//! recorder.push(&[30_000; 160], &[30_000; 160])?; // saturates
//! recorder.finish()?;
//!
//! let samples = read_prompt(Cursor::new(file.into_inner()))?;
//! assert_eq!(samples.len(), 320);
//! assert_eq!((samples[0], samples[319]), (800, i16::MAX));
//! # Ok::<(), pbxkit_rtp::wav::WavError>(())
//! ```

use crate::resample::{ResampleError, Resampler};
use std::io::{Read, Seek, Write};

/// The sample rate of prompts and of [`read_prompt`]'s output, in Hz.
pub const PROMPT_RATE: u32 = 8000;

/// Why a WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file is not a WAV file hound can read, or the reader or writer failed.
    #[error("WAV: {0}")]
    Wav(#[from] hound::Error),
    /// The samples are in a format other than 8–32-bit integer or 32-bit float.
    #[error("unsupported WAV sample format: {bits}-bit {}", if *.float { "float" } else { "integer" })]
    UnsupportedFormat {
        /// Bits per sample.
        bits: u16,
        /// Whether the samples are floating point.
        float: bool,
    },
    /// The file's rate cannot be converted.
    #[error("WAV sample rate: {0}")]
    Rate(#[from] ResampleError),
}

/// Reads a whole WAV file and converts it to [`PROMPT_RATE`] 16-bit mono.
///
/// # Errors
///
/// [`WavError::Wav`] for a malformed file or a failed read,
/// [`WavError::UnsupportedFormat`] for 64-bit or odd float samples, [`WavError::Rate`]
/// for a rate the resampler refuses.
pub fn read_prompt<R: Read>(reader: R) -> Result<Vec<i16>, WavError> {
    read_mono(reader, PROMPT_RATE)
}

/// Reads a whole WAV file and converts it to 16-bit mono at `rate` Hz.
///
/// # Errors
///
/// As [`read_prompt`]; [`WavError::Rate`] also for an unsupported `rate`.
pub fn read_mono<R: Read>(reader: R, rate: u32) -> Result<Vec<i16>, WavError> {
    let mut reader = hound::WavReader::new(reader)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<i32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => reader
            .samples::<i32>()
            .map(|s| {
                s.map(|v| {
                    if bits <= 16 {
                        v << (16 - bits)
                    } else {
                        v >> (bits - 16)
                    }
                })
            })
            .collect::<Result<_, _>>()?,
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .map(|s| {
                // `as` saturates, and maps NaN to 0.
                s.map(|v| (v * 32768.0).round() as i32)
            })
            .collect::<Result<_, _>>()?,
        (format, bits) => {
            return Err(WavError::UnsupportedFormat {
                bits,
                float: format == hound::SampleFormat::Float,
            });
        }
    };
    // Average the channels of each whole frame; the values are in the i16 range except
    // float overshoot, which the clamp saturates.
    let mono: Vec<i16> = samples
        .chunks_exact(channels)
        .map(|frame| {
            let sum: i64 = frame.iter().map(|&v| i64::from(v)).sum();
            (sum / channels as i64).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
        })
        .collect();
    Ok(Resampler::convert(spec.sample_rate, rate, &mono)?)
}

fn mono_spec(rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Writes `samples` as a 16-bit mono WAV file at `rate` Hz.
///
/// # Errors
///
/// [`WavError::Wav`] if writing fails.
pub fn write_mono<W: Write + Seek>(writer: W, rate: u32, samples: &[i16]) -> Result<(), WavError> {
    let mut wav = hound::WavWriter::new(writer, mono_spec(rate))?;
    let mut frames = wav.get_i16_writer(u32::try_from(samples.len()).unwrap_or(u32::MAX));
    for &s in samples {
        frames.write_sample(s);
    }
    frames.flush()?;
    wav.finalize()?;
    Ok(())
}

/// Records a call: mixes the two legs' frames into one 16-bit mono WAV file, with
/// pause and resume.
///
/// Call [`finish`](Recorder::finish) at the end to write the final lengths into the
/// header; a recorder dropped without it leaves a file whose header hound fixes up on
/// drop, ignoring errors.
pub struct Recorder<W: Write + Seek> {
    wav: hound::WavWriter<W>,
    paused: bool,
    recorded: u64,
    dropped: u64,
    mix: Vec<i16>,
}

impl<W: Write + Seek> std::fmt::Debug for Recorder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("spec", &self.wav.spec())
            .field("paused", &self.paused)
            .field("recorded", &self.recorded)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Seek> Recorder<W> {
    /// Starts a recording at `rate` Hz (the rate of the frames that will be pushed),
    /// writing the WAV header to `writer`.
    ///
    /// # Errors
    ///
    /// [`WavError::Wav`] if writing the header fails.
    pub fn new(writer: W, rate: u32) -> Result<Self, WavError> {
        Ok(Recorder {
            wav: hound::WavWriter::new(writer, mono_spec(rate))?,
            paused: false,
            recorded: 0,
            dropped: 0,
            mix: Vec::new(),
        })
    }

    /// Mixes one tick's frames of the two legs (saturating sum; the shorter frame is
    /// padded with silence) and appends them unless paused. Returns the samples
    /// written (0 while paused).
    ///
    /// # Errors
    ///
    /// [`WavError::Wav`] if writing fails or the file would exceed the 4 GiB that a
    /// WAV header can describe.
    pub fn push(&mut self, leg_a: &[i16], leg_b: &[i16]) -> Result<usize, WavError> {
        let len = leg_a.len().max(leg_b.len());
        if self.paused {
            self.dropped += len as u64;
            return Ok(0);
        }
        self.mix.clear();
        self.mix.extend((0..len).map(|i| {
            let a = leg_a.get(i).copied().unwrap_or(0);
            let b = leg_b.get(i).copied().unwrap_or(0);
            a.saturating_add(b)
        }));
        for &s in &self.mix {
            self.wav.write_sample(s)?;
        }
        self.recorded += len as u64;
        Ok(len)
    }

    /// Stops recording: frames pushed until [`resume`](Recorder::resume) are dropped.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Resumes recording after [`pause`](Recorder::pause).
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Whether the recorder is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Samples written so far.
    pub fn recorded_samples(&self) -> u64 {
        self.recorded
    }

    /// Samples dropped while paused.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped
    }

    /// Completes the file: writes the header's lengths and flushes. To get the writer
    /// back, record into `&mut writer`.
    ///
    /// # Errors
    ///
    /// [`WavError::Wav`] if writing fails.
    pub fn finish(self) -> Result<(), WavError> {
        self.wav.finalize()?;
        Ok(())
    }
}
