//! A 3-party conference mixed to a WAV file.
//!
//! Three synthetic phones talk in turn, then all at once: Alice (440 Hz, G.711 µ-law),
//! Bob (1000 Hz, G.711 A-law) and Carol (5300 Hz, G.722: only the wideband leg can carry
//! a tone above 4 kHz). Every 20 ms each phone encodes a frame and sends it as an RTP
//! packet; the bridge parses it, decodes it, brings it to 16 kHz and gives it to the
//! conference [`Mixer`], which computes each participant's N-1 mix (everybody but
//! themselves). A fourth participant that never talks hears the full mix, which is
//! written as a 16 kHz WAV file. The example checks, with a Goertzel filter, that no
//! participant hears their own tone while they hear the others'.
//!
//! Run it with `cargo run -p pbxkit-rtp --example mix_to_wav [-- out.wav]`; the file
//! goes to the system temp dir when no path is given.

use std::f64::consts::PI;
use std::fs::File;

use bytes::Bytes;
use pbxkit_rtp::codec::{Codec, G722};
use pbxkit_rtp::g711::Law;
use pbxkit_rtp::mixer::{Mixer, MixerConfig, MixerEvent, ParticipantId, SampleRate};
use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use pbxkit_rtp::resample::Resampler;
use pbxkit_rtp::tones::{Segment, ToneGenerator};
use pbxkit_rtp::wav;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
/// Makes one end of a codec.
type NewCodec = fn() -> Box<dyn Codec>;

/// The bridge mixes at 16 kHz so that the G.722 leg keeps its upper band.
const RATE: SampleRate = SampleRate::Wideband;
/// 4 s of 20 ms ticks: each talker alone for 1 s, then all three for 1 s.
const TICKS: usize = 200;
/// Per-tone level: three of them summed stay well below full scale.
const LEVEL_DBM0: f32 = -13.0;
/// The participant that only listens, to record the whole conference.
const RECORDER: ParticipantId = ParticipantId(0);

/// One phone and the bridge's end of its RTP stream.
struct Talker {
    name: &'static str,
    id: ParticipantId,
    frequency: u16,
    tone: ToneGenerator,
    /// The phone's encoder and the bridge's decoder: separate objects, as G.722 keeps
    /// state in each direction.
    phone: Box<dyn Codec>,
    bridge: Box<dyn Codec>,
    payload_type: PayloadType,
    /// The decoded PCM to the mixer's rate (a pass-through for G.722).
    to_mixer: Resampler,
    ssrc: Ssrc,
    seq: SeqNo,
    timestamp: RtpTimestamp,
    /// Everything this participant heard (its N-1 output).
    heard: Vec<i16>,
}

impl Talker {
    /// Talker `index` (from 0) talks alone in second `index`, and with everybody in
    /// second 3.
    fn new(index: u64, name: &'static str, frequency: u16, codec: NewCodec) -> Result<Talker> {
        let phone = codec();
        let segments = (0..4)
            .map(|second| match second == index || second == 3 {
                true => Segment::single(frequency, 1000),
                false => Segment::silence(1000),
            })
            .collect();
        let tone = ToneGenerator::from_segments(segments, false, phone.sample_rate(), LEVEL_DBM0)?;
        Ok(Talker {
            name,
            id: ParticipantId(index + 1),
            payload_type: phone
                .static_payload_type()
                .ok_or("no static payload type")?,
            frequency,
            tone,
            to_mixer: Resampler::new(phone.sample_rate(), RATE.hz())?,
            phone,
            bridge: codec(),
            ssrc: Ssrc(0x1000 + index as u32),
            seq: SeqNo(1000),
            timestamp: RtpTimestamp(0),
            heard: Vec::new(),
        })
    }

    /// One 20 ms frame through the phone, the wire and the bridge: PCM for the mixer.
    fn next_frame(&mut self) -> Result<Vec<i16>> {
        let mut pcm = vec![0; self.phone.sample_rate() as usize / 50];
        self.tone.fill(&mut pcm);
        let mut payload = Vec::new();
        self.phone.encode(&pcm, &mut payload)?;
        let (pt, seq, ts) = (self.payload_type, self.seq, self.timestamp);
        let wire = RtpPacket::new(pt, seq, ts, self.ssrc, Bytes::from(payload)).to_bytes();
        // The RTP clock is 8 kHz for all three codecs (G.722's too, RFC 3551 §4.5.2).
        self.seq = self.seq.next();
        self.timestamp = self.timestamp.wrapping_add(self.phone.clock_rate() / 50);

        // The bridge side: parse, decode, resample.
        let received = RtpPacket::parse(wire)?;
        let mut decoded = Vec::new();
        self.bridge.decode(received.payload(), &mut decoded)?;
        let mut frame = Vec::new();
        self.to_mixer.process(&decoded, &mut frame);
        Ok(frame)
    }
}

/// The level of `frequency` in `x`, in dB relative to a full-scale sine (Goertzel).
fn level_db(x: &[i16], frequency: u16) -> f64 {
    let coeff = 2.0 * (2.0 * PI * f64::from(frequency) / f64::from(RATE.hz())).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        (s2, s1) = (s1, s);
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A full-scale sine gives |X| = 32767 N / 2.
    let full = f64::from(i16::MAX) * x.len() as f64 / 2.0;
    10.0 * (power / (full * full)).max(1e-15).log10()
}

fn main() -> Result<()> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => path.into(),
        None => std::env::temp_dir().join("pbxkit-mix.wav"),
    };
    run(path)
}

fn run(path: std::path::PathBuf) -> Result<()> {
    let phones: [(&str, u16, NewCodec); 3] = [
        ("Alice", 440, || Box::new(Law::Ulaw)),
        ("Bob", 1000, || Box::new(Law::Alaw)),
        ("Carol", 5300, || Box::new(G722::new())),
    ];
    let mut talkers = Vec::new();
    for (index, (name, frequency, codec)) in (0..).zip(phones) {
        talkers.push(Talker::new(index, name, frequency, codec)?);
    }
    let mut mixer = Mixer::new(MixerConfig {
        rate: RATE,
        ..MixerConfig::default()
    });
    mixer.add(RECORDER)?;
    for t in &talkers {
        mixer.add(t.id)?;
    }

    let mut recording = Vec::with_capacity(TICKS * RATE.frame_len());
    for tick in 0..TICKS {
        for t in &mut talkers {
            mixer.push_frame(t.id, &t.next_frame()?)?;
        }
        mixer.mix();
        for t in &mut talkers {
            t.heard
                .extend_from_slice(mixer.output(t.id).ok_or("participant left")?);
        }
        recording.extend_from_slice(mixer.output(RECORDER).ok_or("recorder left")?);
        // The mixer's voice activity detection, as a bridge would show it.
        while let Some(event) = mixer.poll_event() {
            let (id, what) = match event {
                MixerEvent::Talking(id) => (id, "talking"),
                MixerEvent::StoppedTalking(id) => (id, "stopped (after the hangover)"),
                _ => continue,
            };
            let name = talkers.iter().find(|t| t.id == id).map_or("?", |t| t.name);
            println!("{:5.2} s  {name} {what}", tick as f64 * 0.02);
        }
    }

    wav::write_mono(File::create(&path)?, RATE.hz(), &recording)?;
    // Read it back: the file holds the whole conference.
    let written = wav::read_mono(File::open(&path)?, RATE.hz())?;
    assert_eq!(written.len(), TICKS * RATE.frame_len());
    let seconds = written.len() as f64 / f64::from(RATE.hz());
    println!("wrote {} ({seconds:.2} s, 16 kHz mono)", path.display());

    // In the last second everybody talks: skip its first 100 ms (the resampler's delay
    // and the tone onsets), then measure each tone in what each participant heard.
    let skip = (TICKS - 45) * RATE.frame_len();
    let header: String = talkers
        .iter()
        .map(|t| format!("{:>9}", format!("{} Hz", t.frequency)))
        .collect();
    println!("\n{:<24}{header}", "last second, dBFS");
    let listeners = talkers
        .iter()
        .map(|t| (t.name, Some(t.id), &t.heard))
        .chain([("the recording", None, &recording)]);
    for (name, me, heard) in listeners {
        let levels: Vec<(bool, f64)> = talkers
            .iter()
            .map(|o| (Some(o.id) == me, level_db(&heard[skip..], o.frequency)))
            .collect();
        let row: String = levels.iter().map(|(_, l)| format!("{l:9.1}")).collect();
        println!("{:<24}{row}", format!("  {name} hears"));
        // Nobody hears their own tone; everybody hears all the others.
        let wrong = |&(own, level): &(bool, f64)| if own { level > -60.0 } else { level < -30.0 };
        if levels.iter().any(wrong) {
            return Err(format!("{name}: not an N-1 mix").into());
        }
    }
    println!("\nN-1 checked: nobody hears themselves, everybody hears the others");
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<()> {
    let path = std::env::temp_dir().join(format!("pbxkit-mix-test-{}.wav", std::process::id()));
    let result = run(path.clone());
    let _ = std::fs::remove_file(path);
    result
}
