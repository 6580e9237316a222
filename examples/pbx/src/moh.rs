//! Music-on-hold classes (`[[music_on_hold]]`, Asterisk's musiconhold.conf with
//! `mode=files`): the `.wav` files of a directory, in name order, decoded once at
//! start to 16-bit mono at the rates callers' codecs use (8 kHz for G.711, 16 kHz
//! for G.722; other rates resampled from the 16 kHz copy on first use, with no file
//! read after the start) and played looped to each waiting caller.
//!
//! A class is read whole into memory, so it is bounded: at most [`MAX_FILES`]
//! files of at most [`MAX_FILE_BYTES`] each, and [`MAX_SECONDS`] of music in all.
//! A class that cannot be read (a missing directory, no WAV file, a file that does
//! not decode, too much music) stops the PBX at start with the reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files in a class at most.
pub(crate) const MAX_FILES: usize = 100;
/// Bytes of one file at most.
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Seconds of music in a class at most (about 19 MB of samples at 16 kHz).
pub(crate) const MAX_SECONDS: usize = 600;

/// Why a class could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MohError {
    /// The directory or a file could not be read.
    #[error("music_on_hold {class}: {path}: {source}")]
    Io {
        class: String,
        path: String,
        source: std::io::Error,
    },
    /// A file is not a WAV file the PBX decodes.
    #[error("music_on_hold {class}: {path}: {source}")]
    Wav {
        class: String,
        path: String,
        source: pbxkit_rtp::wav::WavError,
    },
    /// No `.wav` file in the directory.
    #[error("music_on_hold {class}: no .wav file in {path}")]
    Empty { class: String, path: String },
    /// More than the bounds allow.
    #[error("music_on_hold {class}: {what}")]
    TooMuch { class: String, what: String },
}

/// One class's music.
#[derive(Debug)]
pub(crate) struct Music {
    /// The files one after the other, by sample rate (8 and 16 kHz from the start).
    by_rate: Mutex<HashMap<u32, Arc<[i16]>>>,
}

impl Music {
    /// Reads class `name` from `directory`, decoded at 8 and 16 kHz.
    pub(crate) fn load(name: &str, directory: &Path) -> Result<Music, MohError> {
        let io = |path: &Path, source| MohError::Io {
            class: name.to_owned(),
            path: path.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(directory).map_err(|e| io(directory, e))? {
            let path = entry.map_err(|e| io(directory, e))?.path();
            let wav = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            if wav && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(MohError::Empty {
                class: name.to_owned(),
                path: directory.display().to_string(),
            });
        }
        if files.len() > MAX_FILES {
            return Err(MohError::TooMuch {
                class: name.to_owned(),
                what: format!("{} files, at most {MAX_FILES}", files.len()),
            });
        }
        let mut by_rate = HashMap::new();
        for rate in [8000, 16000] {
            by_rate.insert(rate, decode(name, &files, rate)?);
        }
        Ok(Music {
            by_rate: Mutex::new(by_rate),
        })
    }

    /// The music at `rate` Hz (another rate than 8 or 16 kHz is resampled from
    /// the 16 kHz copy on first use, no file read); `None` for a rate the
    /// resampler refuses.
    pub(crate) fn at(&self, rate: u32) -> Option<Arc<[i16]>> {
        let mut cache = self.by_rate.lock().ok()?;
        if let Some(samples) = cache.get(&rate) {
            return Some(samples.clone());
        }
        let wide = cache.get(&16000)?;
        let samples: Arc<[i16]> = pbxkit_rtp::resample::Resampler::convert(16000, rate, wide)
            .ok()?
            .into();
        cache.insert(rate, samples.clone());
        Some(samples)
    }
}

/// Class `class`'s `files` one after the other at `rate` Hz, within the bounds.
fn decode(class: &str, files: &[PathBuf], rate: u32) -> Result<Arc<[i16]>, MohError> {
    let limit = MAX_SECONDS * rate as usize;
    let mut all: Vec<i16> = Vec::new();
    for path in files {
        let io = |source| MohError::Io {
            class: class.to_owned(),
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(MohError::TooMuch {
                class: class.to_owned(),
                what: format!("{}: {size} bytes, at most {MAX_FILE_BYTES}", path.display()),
            });
        }
        let samples =
            pbxkit_rtp::wav::read_mono(std::io::BufReader::new(file), rate).map_err(|source| {
                MohError::Wav {
                    class: class.to_owned(),
                    path: path.display().to_string(),
                    source,
                }
            })?;
        all.extend_from_slice(&samples);
        if all.len() > limit {
            return Err(MohError::TooMuch {
                class: class.to_owned(),
                what: format!("more than {MAX_SECONDS} s of music"),
            });
        }
    }
    Ok(all.into())
}

/// Every configured class, by name.
pub(crate) fn load_all(
    classes: &[crate::config::MusicOnHold],
) -> Result<HashMap<String, Arc<Music>>, MohError> {
    classes
        .iter()
        .map(|c| {
            Ok((
                c.name.clone(),
                Arc::new(Music::load(&c.name, &c.directory)?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pbxkit-moh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn wav(path: &Path, rate: u32, samples: &[i16]) {
        let file = std::fs::File::create(path).unwrap();
        pbxkit_rtp::wav::write_mono(std::io::BufWriter::new(file), rate, samples).unwrap();
    }

    #[test]
    fn a_class_is_its_files_in_name_order_at_each_rate() {
        let d = dir("order");
        wav(&d.join("b.wav"), 8000, &[2000; 800]);
        wav(&d.join("a.WAV"), 8000, &[1000; 800]);
        std::fs::write(d.join("notes.txt"), "not music").unwrap();
        let music = Music::load("jazz", &d).unwrap();
        let at8 = music.at(8000).unwrap();
        assert_eq!(at8.len(), 1600);
        assert_eq!((at8[400], at8[1200]), (1000, 2000), "a.WAV first");
        // 16 kHz: twice the samples, resampled; 48 kHz from that copy (the files
        // are not read again: gone, the class still plays).
        assert_eq!(music.at(16000).unwrap().len(), 3200);
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(music.at(48000).unwrap().len(), 9600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_class_that_cannot_be_read_says_why() {
        let d = dir("bad");
        let err = Music::load("none", &d.join("missing")).unwrap_err();
        assert!(matches!(err, MohError::Io { .. }), "{err}");
        let err = Music::load("empty", &d).unwrap_err();
        assert!(err.to_string().contains("no .wav file"), "{err}");
        std::fs::write(d.join("broken.wav"), b"RIFF garbage").unwrap();
        let err = Music::load("broken", &d).unwrap_err();
        assert!(
            matches!(err, MohError::Wav { .. }) && err.to_string().contains("broken.wav"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
