//! The media pieces together: the mixer against a naive reference, in-band DTMF
//! detection of generated digits in noise and its silence on other signals, jitter
//! buffer properties under random reordering and loss, and receiver reports built from
//! the statistics.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use bytes::Bytes;
use pbxkit_rtp::dtmf::EventCode;
use pbxkit_rtp::dtmf_detect::{DetectorConfig, DtmfDetector, InbandDtmf};
use pbxkit_rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use pbxkit_rtp::mixer::{Gain, Mixer, MixerConfig, ParticipantId, SampleRate};
use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use pbxkit_rtp::rtcp::{self, RtcpPacket};
use pbxkit_rtp::stats::ReceptionStats;
use pbxkit_rtp::tones::{self, dbm0_to_amplitude};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

#[derive(Debug, Clone)]
struct Member {
    input: Option<Vec<i16>>,
    muted: bool,
    deaf: bool,
    gain_q16: u32,
}

fn member(len: usize) -> impl Strategy<Value = Member> {
    (
        proptest::option::weighted(0.9, proptest::collection::vec(any::<i16>(), len)),
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.2),
        prop_oneof![Just(1u32 << 16), 0u32..(4 << 16)],
    )
        .prop_map(|(input, muted, deaf, gain_q16)| Member {
            input,
            muted,
            deaf,
            gain_q16,
        })
}

fn gained(sample: i16, gain_q16: u32) -> i64 {
    ((i64::from(sample) * i64::from(gain_q16) + (1 << 15)) >> 16)
        .clamp(i64::from(i16::MIN), i64::from(i16::MAX))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn mixer_matches_a_naive_sum(members in proptest::collection::vec(member(160), 1..12)) {
        let mut mixer = Mixer::new(MixerConfig::default());
        for (i, m) in members.iter().enumerate() {
            let id = ParticipantId(i as u64);
            mixer.add(id).unwrap();
            mixer.set_muted(id, m.muted).unwrap();
            mixer.set_deaf(id, m.deaf).unwrap();
            let gain = if m.gain_q16 == 1 << 16 {
                Gain::UNITY
            } else {
                Gain::from_linear(m.gain_q16 as f32 / 65536.0)
            };
            mixer.set_gain(id, gain).unwrap();
            if let Some(input) = &m.input {
                mixer.push_frame(id, input).unwrap();
            }
        }
        mixer.mix();
        for (i, me) in members.iter().enumerate() {
            let out = mixer.output(ParticipantId(i as u64)).unwrap();
            for (n, &got) in out.iter().enumerate() {
                let mut sum = 0i64;
                if !me.deaf {
                    for (j, other) in members.iter().enumerate() {
                        if j == i || other.muted {
                            continue;
                        }
                        if let Some(input) = &other.input {
                            let g = if other.gain_q16 == 1 << 16 {
                                1 << 16
                            } else {
                                Gain::from_linear(other.gain_q16 as f32 / 65536.0).q16()
                            };
                            sum += gained(input[n], g);
                        }
                    }
                }
                let expected = sum.clamp(i64::from(i16::MIN), i64::from(i16::MAX));
                prop_assert_eq!(i64::from(got), expected, "participant {} sample {}", i, n);
            }
        }
    }

    #[test]
    fn jitter_buffer_plays_in_order_at_most_once(
        order in proptest::collection::vec((0u16..5, 0u64..60, proptest::bool::weighted(0.1)), 1..200),
        start in any::<u16>(),
    ) {
        // Packet i is sent at 20 i ms, delayed by a random 0-60 ms, sometimes lost.
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
        let mut arrivals: Vec<(u64, u16)> = order
            .iter()
            .enumerate()
            .filter(|(_, (_, _, lost))| !lost)
            .map(|(i, (_, delay, _))| (20 * i as u64 + delay, i as u16))
            .collect();
        arrivals.sort();
        let mut played = Vec::new();
        let mut next_arrival = 0;
        for tick in 0..(order.len() as u64 + 40) {
            let now_ms = 20 * tick;
            while let Some(&(at, i)) = arrivals.get(next_arrival) {
                if at > now_ms {
                    break;
                }
                let seq = start.wrapping_add(i);
                let packet = RtpPacket::new(
                    PayloadType::PCMA,
                    SeqNo(seq),
                    RtpTimestamp(160 * u32::from(i)),
                    Ssrc(5),
                    Bytes::new(),
                );
                jb.push(packet, t0 + Duration::from_millis(at));
                next_arrival += 1;
            }
            if let Some(p) = jb.pop(t0 + Duration::from_millis(now_ms)) {
                played.push((p.sequence().wrapping_diff(SeqNo(start)), matches!(p, Playout::Packet(_))));
            }
            prop_assert!(jb.len() <= jb.config().max_packets);
        }
        for pair in played.windows(2) {
            prop_assert!(pair[0].0 < pair[1].0, "{:?}", played);
        }
        let s = jb.stats();
        prop_assert_eq!(s.played + s.late + s.duplicates + s.overflow + s.flushed + jb.len() as u64, s.pushed);
        prop_assert_eq!(s.resets, 0);
    }

    #[test]
    fn jitter_fuzz_entry_point_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        pbxkit_rtp::fuzzing::rtp_jitter(&data);
    }
}

fn detect(samples: &[i16], rate: u32) -> Vec<InbandDtmf> {
    let mut detector = DtmfDetector::new(DetectorConfig {
        sample_rate: rate,
        ..DetectorConfig::default()
    })
    .unwrap();
    for frame in samples.chunks(rate as usize / 50) {
        detector.process(frame);
    }
    std::iter::from_fn(|| detector.poll_event()).collect()
}

fn started(events: &[InbandDtmf]) -> Vec<EventCode> {
    events
        .iter()
        .filter_map(|e| match e {
            InbandDtmf::Started { event, .. } => Some(*event),
            _ => None,
        })
        .collect()
}

fn add_noise(signal: &mut [i16], rng: &mut Rng, level_dbm0: f64) {
    // Uniform noise of RMS a / sqrt 3 for peak a; scale so that the RMS matches a sine
    // at `level_dbm0` (peak / sqrt 2).
    let rms = dbm0_to_amplitude(level_dbm0) / 2f64.sqrt();
    let peak = rms * 3f64.sqrt();
    for s in signal {
        let v = f64::from(*s) + rng.uniform() * peak;
        *s = v.round().clamp(-32768.0, 32767.0) as i16;
    }
}

#[test]
fn every_digit_in_noise_is_detected_exactly_once() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for rate in [8000u32, 16000] {
        let gap = vec![0i16; rate as usize / 10];
        let mut signal = gap.clone();
        let digits: Vec<EventCode> = (0..16).map(EventCode).collect();
        for &digit in &digits {
            signal.extend(tones::dtmf(digit, -20.0, Duration::from_millis(80), rate).unwrap());
            signal.extend(&gap);
        }
        // Noise 25 dB below each tone.
        add_noise(&mut signal, &mut rng, -45.0);
        let events = detect(&signal, rate);
        assert_eq!(started(&events), digits, "{rate} Hz: {events:?}");
        let ended = events
            .iter()
            .filter(|e| matches!(e, InbandDtmf::Ended { .. }))
            .count();
        assert_eq!(ended, 16);
    }
}

#[test]
fn sums_of_other_tones_never_trigger() {
    let rate = 8000;
    let mut rng = Rng(42);
    let tone = |freqs: &[f64], level: f64| -> Vec<i16> {
        let a = dbm0_to_amplitude(level);
        (0..rate as usize)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                let v: f64 = freqs
                    .iter()
                    .map(|f| a * (std::f64::consts::TAU * f * t).sin())
                    .sum();
                v.round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    };
    let cases: &[&[f64]] = &[
        &[1000.0],
        &[697.0],
        &[1336.0],
        &[350.0, 440.0],
        &[440.0, 480.0],
        &[480.0, 620.0],
        &[697.0, 852.0],   // two rows
        &[1209.0, 1477.0], // two columns
        &[697.0, 1000.0],
        &[600.0, 1336.0],
        &[697.0 * 1.05, 1209.0],
        &[941.0, 1633.0 * 0.95],
        &[697.0, 1209.0, 1477.0], // a row and two columns
        &[770.0, 1336.0, 500.0],  // a digit drowned in a third tone
        &[950.0, 1400.0, 1800.0], // special information tone
    ];
    for freqs in cases {
        let mut signal = tone(freqs, -15.0);
        add_noise(&mut signal, &mut rng, -45.0);
        let events = detect(&signal, rate);
        assert!(started(&events).is_empty(), "{freqs:?}: {events:?}");
    }
}

#[test]
fn a_speech_like_signal_never_triggers() {
    // Harmonics of a pitch sweeping 80-400 Hz, with a 1/k spectrum, for 10 s; three
    // formant bumps move along to vary the spectral shape.
    let rate = 8000u32;
    let mut rng = Rng(7);
    let mut phase = 0.0f64;
    let mut signal = Vec::with_capacity(10 * rate as usize);
    for n in 0..(10 * rate as usize) {
        let t = n as f64 / f64::from(rate);
        let f0 = 240.0 + 160.0 * (t * 0.7).sin() * (t * 0.13).cos();
        phase += std::f64::consts::TAU * f0 / f64::from(rate);
        let formants = [
            700.0 + 300.0 * (t * 1.1).sin(),
            1300.0 + 400.0 * (t * 0.9).cos(),
            2500.0,
        ];
        let mut v = 0.0;
        let mut k = 1.0;
        while k * f0 < 3800.0 {
            let f = k * f0;
            let emphasis: f64 = formants
                .iter()
                .map(|fm| (-((f - fm) / 150.0).powi(2)).exp())
                .sum();
            v += (1.0 / k + emphasis) * (k * phase).sin();
            k += 1.0;
        }
        signal.push(v * 2500.0);
    }
    let mut pcm: Vec<i16> = signal
        .iter()
        .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    add_noise(&mut pcm, &mut rng, -50.0);
    let events = detect(&pcm, rate);
    assert!(started(&events).is_empty(), "{events:?}");
}

#[test]
fn wideband_mixer_and_gain_in_db() {
    let mut mixer = Mixer::new(MixerConfig {
        rate: SampleRate::Wideband,
        ..MixerConfig::default()
    });
    let (a, b) = (ParticipantId(10), ParticipantId(20));
    mixer.add(a).unwrap();
    mixer.add(b).unwrap();
    mixer.set_gain(a, Gain::from_db(6.0206)).unwrap();
    mixer.push_frame(a, &[1000; 320]).unwrap();
    mixer.mix();
    assert_eq!(mixer.output(b).unwrap(), &[2000; 320][..]);
    assert_eq!(mixer.output(a).unwrap(), &[0; 320][..]);
}

#[test]
fn receiver_report_from_statistics_serialises() {
    let t0 = Instant::now();
    let mut stats = ReceptionStats::new(8000, 16);
    for ssrc in [1u32, 2] {
        for i in 0..100u16 {
            if i % 10 == 5 {
                continue;
            }
            let at = t0 + Duration::from_millis(20 * u64::from(i) + u64::from(i % 3) * 5);
            stats.update(Ssrc(ssrc), SeqNo(i), RtpTimestamp(160 * u32::from(i)), at);
        }
    }
    let rr = stats.receiver_report(Ssrc(99), t0 + Duration::from_secs(2));
    assert_eq!(rr.reports.len(), 2);
    for block in &rr.reports {
        assert_eq!(block.cumulative_lost.get(), 10);
        assert_eq!(block.extended_highest_seq, 99);
        assert!(block.jitter > 0);
    }
    let packet = RtcpPacket::ReceiverReport(rr);
    let wire = packet.to_bytes().unwrap();
    assert_eq!(rtcp::parse_compound(wire).unwrap(), [packet]);
}
