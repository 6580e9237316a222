//! Call recording: both parties of a bridged call mixed into one 16 kHz mono WAV
//! under `data_dir/recordings/`, with a JSON sidecar (call id, parties, start,
//! duration), for users with `record_incoming` / `record_outgoing`.
//!
//! The relay hands a copy of each RTP packet it admits to the recording's task
//! ([`Tap`], bounded: a recording that cannot keep up loses packets, never the
//! call). The task decodes each side with the codec its payload type names in
//! that side's SDP, brings it to 16 kHz, and every 20 ms mixes a frame of each
//! side (silence for a side with nothing) into the file.
//!
//! Durability: samples are appended and the WAV header's sizes rewritten every
//! second, so the file is a valid WAV up to the last second written even after a
//! `kill -9`; it is fsynced and its sidecar written (temporary name, fsync,
//! rename) when the call ends. A write error (a full disk) ends the recording,
//! logged once; the call goes on.

use bytes::Bytes;
use pbxkit_rtp::RtpPacket;
use pbxkit_rtp::codec::Codec;
use pbxkit_rtp::resample::Resampler;
use std::collections::{HashMap, VecDeque};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where the relay sends packet copies: (from leg A, datagram).
pub(crate) type Tap = mpsc::Sender<(bool, Bytes)>;

/// Packets waiting for the recording at most.
pub(crate) const TAP_DEPTH: usize = 512;

/// The recording's rate.
const RATE: u32 = 16_000;
/// Samples per 20 ms frame.
const FRAME: usize = RATE as usize / 50;
/// Decoded audio kept per side at most, in frames (jitter beyond is dropped).
const MAX_PENDING: usize = 25;

/// What to record, and where.
#[derive(Debug, Clone)]
pub(crate) struct Recording {
    pub(crate) file: PathBuf,
    /// The sidecar's fields (a JSON object); `duration` is added at the end.
    pub(crate) info: serde_json::Map<String, serde_json::Value>,
}

/// The codecs one side's SDP names, by payload type (static G.711 and G.722,
/// and what its rtpmaps say).
pub(crate) fn codecs_of(sdp: Option<&pbxkit_sip::sdp::Session>) -> HashMap<u8, &'static str> {
    let mut map = HashMap::from([(0, "PCMU"), (8, "PCMA"), (9, "G722")]);
    let audio = sdp.and_then(|s| s.media.iter().find(|m| m.kind.as_str() == "audio"));
    if let Some(m) = audio {
        for pt in m.payload_types() {
            if let Some(r) = m.rtpmap(pt) {
                let name = match r.encoding.to_ascii_lowercase().as_str() {
                    "pcmu" => "PCMU",
                    "pcma" => "PCMA",
                    "g722" => "G722",
                    "opus" => "opus",
                    _ => continue,
                };
                map.insert(pt, name);
            }
        }
    }
    map
}

/// One side of the call: its decoders and what it said, at [`RATE`].
struct Side {
    codecs: HashMap<u8, &'static str>,
    decoders: HashMap<u8, (Box<dyn Codec + Send>, Option<Resampler>)>,
    pending: VecDeque<i16>,
}

impl Side {
    fn new(codecs: HashMap<u8, &'static str>) -> Side {
        Side {
            codecs,
            decoders: HashMap::new(),
            pending: VecDeque::new(),
        }
    }

    fn push(&mut self, datagram: Bytes) {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            return;
        };
        let pt = packet.payload_type().get();
        let Some(name) = self.codecs.get(&pt).copied() else {
            // Telephone events, comfort noise: not audio to record.
            return;
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = self.decoders.entry(pt) {
            let Some(codec) = crate::codecs::codec(name) else {
                return;
            };
            let rate = codec.sample_rate();
            let resampler = (rate != RATE)
                .then(|| Resampler::new(rate, RATE).ok())
                .flatten();
            slot.insert((codec, resampler));
        }
        let Some((codec, resampler)) = self.decoders.get_mut(&pt) else {
            return;
        };
        let mut pcm = Vec::new();
        if codec.decode(packet.payload(), &mut pcm).is_err() {
            return;
        }
        match resampler {
            Some(r) => {
                let mut out = Vec::with_capacity(FRAME);
                r.process(&pcm, &mut out);
                self.pending.extend(out);
            }
            None => self.pending.extend(pcm),
        }
        let max = MAX_PENDING * FRAME;
        if self.pending.len() > max {
            let excess = self.pending.len() - max;
            self.pending.drain(..excess);
        }
    }

    /// The next frame, or as much as there is (silence after).
    fn frame_into(&mut self, mix: &mut [i16]) {
        let n = self.pending.len().min(mix.len());
        for (out, s) in mix.iter_mut().zip(self.pending.drain(..n)) {
            *out = out.saturating_add(s);
        }
    }
}

/// A WAV file being written: header sizes rewritten as it grows.
struct Wav {
    file: std::fs::File,
    samples: u64,
}

impl Wav {
    fn create(path: &std::path::Path) -> std::io::Result<Wav> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::File::create(path)?;
        file.write_all(&header(0))?;
        Ok(Wav { file, samples: 0 })
    }

    /// Appends `pcm` and makes the header say so.
    fn append(&mut self, pcm: &[i16]) -> std::io::Result<()> {
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.file.seek(SeekFrom::End(0))?;
        self.file.write_all(&bytes)?;
        self.samples += pcm.len() as u64;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&header(self.samples))?;
        Ok(())
    }

    fn finish(self) -> std::io::Result<u64> {
        self.file.sync_all()?;
        Ok(self.samples)
    }
}

/// The 44-byte header of a 16-bit mono PCM WAV at [`RATE`] holding `samples`.
fn header(samples: u64) -> [u8; 44] {
    // A WAV holds at most 4 GiB; a recording longer than that keeps the maximum
    // (and the RIFF size below cannot overflow).
    let data = u32::try_from(samples.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .min(u32::MAX - 36);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// Records until the tap closes (the call ended, or recording was stopped).
pub(crate) async fn run(
    mut packets: mpsc::Receiver<(bool, Bytes)>,
    sides: [HashMap<u8, &'static str>; 2],
    recording: Recording,
) {
    let [a, b] = sides;
    let mut sides = [Side::new(a), Side::new(b)];
    let path = recording.file.clone();
    let created = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || Wav::create(&path)).await
    };
    let mut wav = match created {
        Ok(Ok(wav)) => Some(wav),
        Ok(Err(e)) => {
            tracing::error!(file = %path.display(), error = %e, "cannot record the call");
            None
        }
        Err(_) => None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mixed: Vec<i16> = Vec::with_capacity(RATE as usize);
    let mut total: u64 = 0;
    let started = std::time::SystemTime::now();
    loop {
        tokio::select! {
            got = packets.recv() => match got {
                Some((from_a, datagram)) => sides[usize::from(!from_a)].push(datagram),
                None => break,
            },
            _ = tick.tick() => {
                let mut frame = [0i16; FRAME];
                for side in &mut sides {
                    side.frame_into(&mut frame);
                }
                mixed.extend_from_slice(&frame);
                if mixed.len() >= RATE as usize {
                    total += mixed.len() as u64;
                    wav = write(wav, std::mem::take(&mut mixed), &path).await;
                }
            }
        }
    }
    total += mixed.len() as u64;
    wav = write(wav, mixed, &path).await;
    let Some(wav) = wav else {
        return;
    };
    let mut info = recording.info;
    let duration = total as f64 / f64::from(RATE);
    info.insert(
        "duration".into(),
        serde_json::json!((duration * 100.0).round() / 100.0),
    );
    let started = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    info.entry("start").or_insert(serde_json::json!(started));
    let sidecar = path.with_extension("json");
    let done = tokio::task::spawn_blocking(move || {
        wav.finish()?;
        let json = serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?;
        let tmp = sidecar.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &sidecar)
    })
    .await;
    if !matches!(done, Ok(Ok(()))) {
        tracing::error!(file = %path.display(), "recording not finished cleanly");
    }
}

/// Appends `pcm` off the runtime's threads; a failure ends the recording
/// (`None`), logged once.
async fn write(wav: Option<Wav>, pcm: Vec<i16>, path: &std::path::Path) -> Option<Wav> {
    let mut wav = wav?;
    let result = tokio::task::spawn_blocking(move || {
        let r = wav.append(&pcm);
        (wav, r)
    })
    .await;
    match result {
        Ok((wav, Ok(()))) => Some(wav),
        Ok((_, Err(e))) => {
            tracing::error!(file = %path.display(), error = %e, "recording stopped: write failed");
            None
        }
        Err(_) => None,
    }
}

/// A recording's file name from `template` (`{srcnum}`, `{dstnum}`, `{timestamp}`,
/// `{callid}`), the values kept to `[A-Za-z0-9._+-]` so that nobody's number or
/// Call-ID makes a path, then `.wav`.
pub(crate) fn file_name(
    template: &str,
    srcnum: &str,
    dstnum: &str,
    timestamp: u64,
    callid: &str,
) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name = template
        .replace("{srcnum}", &safe(srcnum))
        .replace("{dstnum}", &safe(dstnum))
        .replace("{timestamp}", &timestamp.to_string())
        .replace("{callid}", &safe(callid));
    let name = safe(&name).trim_start_matches('.').to_owned();
    format!("{name}.wav")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_template_and_make_no_path() {
        assert_eq!(
            file_name(
                "user-{srcnum}-{dstnum}-{timestamp}",
                "1000",
                "1001",
                1_700_000_000,
                "x"
            ),
            "user-1000-1001-1700000000.wav"
        );
        assert_eq!(
            file_name("{callid}", "1", "2", 3, "../../etc/passwd"),
            "_.._etc_passwd.wav"
        );
        assert_eq!(file_name("a/{srcnum}", "+33 1", "2", 3, "x"), "a_+33_1.wav");
    }

    #[test]
    fn the_header_says_how_much_there_is() {
        let dir = std::env::temp_dir().join(format!("pbxkit-rec-{}", std::process::id()));
        let path = dir.join("r.wav");
        let mut wav = Wav::create(&path).unwrap();
        wav.append(&[1000; 16000]).unwrap();
        // Readable as it is, before the end (as after a kill -9).
        let read = pbxkit_rtp::wav::read_mono(std::fs::File::open(&path).unwrap(), 16000).unwrap();
        assert_eq!(read.len(), 16000);
        wav.append(&[-5; 320]).unwrap();
        assert_eq!(wav.finish().unwrap(), 16320);
        let read = pbxkit_rtp::wav::read_mono(std::fs::File::open(&path).unwrap(), 16000).unwrap();
        assert_eq!((read.len(), read[0], read[16319]), (16320, 1000, -5));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_side_is_decoded_with_the_codec_its_sdp_names() {
        let sdp = pbxkit_sip::sdp::Session::parse(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP 96 0 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n",
        )
        .unwrap();
        let codecs = codecs_of(Some(&sdp));
        assert_eq!(codecs.get(&96), Some(&"opus"));
        assert_eq!(codecs.get(&0), Some(&"PCMU"));
        assert_eq!(codecs.get(&101), None);
        let mut side = Side::new(codecs);
        // µ-law 0x80 is loud: 20 ms at 8 kHz, about a frame at 16 kHz once
        // resampled (less the filter's delay).
        let p = RtpPacket::new(
            pbxkit_rtp::PayloadType::PCMU,
            pbxkit_rtp::SeqNo(1),
            pbxkit_rtp::RtpTimestamp(0),
            pbxkit_rtp::Ssrc(1),
            Bytes::from(vec![0x80; 160]),
        );
        side.push(p.to_bytes());
        assert!(side.pending.len() >= FRAME - 40, "{}", side.pending.len());
        let mut mix = [0i16; FRAME];
        side.frame_into(&mut mix);
        assert!(mix[FRAME / 2].unsigned_abs() > 10_000);
    }
}
