//! `pbxkit-rtp`: RTP parsing and serialisation side by side with webrtc-rs `rtp`,
//! G.711 and G.722 encoding and decoding of 20 ms frames, the resampler, the conference
//! mixer, the jitter buffer and one tick of a conference room.
#![allow(clippy::unwrap_used, reason = "the samples are known to parse")]

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pbxkit_rtp::g711::Law;
use std::hint::black_box;
use webrtc_util::marshal::{Marshal, Unmarshal};

/// A 20 ms PCMU packet: 12-byte header, 160 payload bytes.
fn pcmu() -> Bytes {
    let mut p = vec![
        0x80, 0x00, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef,
    ];
    p.extend((0..160u8).map(|i| i.wrapping_mul(37)));
    p.into()
}

/// What a WebRTC peer sends: one CSRC, RFC 8285 one-byte extensions (audio level,
/// abs-send-time, transport-wide sequence number), 160 payload bytes.
fn with_extensions() -> Bytes {
    let mut p = vec![
        0x91, 0xE0, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef,
    ];
    p.extend([0, 0, 0, 7]); // CSRC
    p.extend([0xBE, 0xDE, 0, 3]); // one-byte extensions, 3 words
    p.extend([0x10, 0x9A]); // id 1: audio level
    p.extend([0x22, 0x12, 0x34, 0x56]); // id 2: abs-send-time
    p.extend([0x31, 0x00, 0x2A]); // id 3: transport-wide sequence number
    p.extend([0, 0, 0]); // padding to the word boundary
    p.extend((0..160u8).map(|i| i.wrapping_mul(37)));
    p.into()
}

fn parse(c: &mut Criterion) {
    for (name, sample) in [("pcmu", pcmu()), ("extensions", with_extensions())] {
        let mut group = c.benchmark_group(format!("rtp/parse/{name}"));
        group.throughput(Throughput::Elements(1));
        assert_eq!(
            pbxkit_rtp::RtpPacket::parse(sample.clone())
                .unwrap()
                .payload()
                .len(),
            160
        );
        assert_eq!(
            rtp::packet::Packet::unmarshal(&mut sample.clone())
                .unwrap()
                .payload
                .len(),
            160
        );
        group.bench_function("pbxkit", |b| {
            b.iter(|| pbxkit_rtp::RtpPacket::parse(black_box(sample.clone())).unwrap())
        });
        group.bench_function("webrtc", |b| {
            b.iter(|| rtp::packet::Packet::unmarshal(&mut black_box(sample.clone())).unwrap())
        });
        group.finish();
    }
}

fn serialize(c: &mut Criterion) {
    for (name, sample) in [("pcmu", pcmu()), ("extensions", with_extensions())] {
        let mut group = c.benchmark_group(format!("rtp/serialize/{name}"));
        group.throughput(Throughput::Elements(1));
        let ours = pbxkit_rtp::RtpPacket::parse(sample.clone()).unwrap();
        let theirs = rtp::packet::Packet::unmarshal(&mut sample.clone()).unwrap();
        assert_eq!(ours.to_bytes(), sample);
        assert_eq!(theirs.marshal().unwrap(), sample);
        group.bench_function("pbxkit", |b| b.iter(|| black_box(&ours).to_bytes()));
        group.bench_function("webrtc", |b| {
            b.iter(|| black_box(&theirs).marshal().unwrap())
        });
        group.finish();
    }
}

/// G.711 over a 20 ms frame at 8 kHz (160 samples), per law.
fn g711(c: &mut Criterion) {
    const SAMPLES: usize = 160;
    let pcm: Vec<i16> = (0..SAMPLES)
        .map(|i| ((i as f64 * 0.3).sin() * 12_000.0) as i16)
        .collect();
    for law in [Law::Ulaw, Law::Alaw] {
        let name = match law {
            Law::Ulaw => "ulaw",
            Law::Alaw => "alaw",
        };
        let mut codes = Vec::with_capacity(SAMPLES);
        law.encode(&pcm, &mut codes);

        let mut group = c.benchmark_group(format!("g711/{name}"));
        group.throughput(Throughput::Elements(SAMPLES as u64));
        let mut out = Vec::with_capacity(SAMPLES);
        group.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                law.encode(black_box(&pcm), &mut out);
                black_box(out.len())
            })
        });
        let mut samples = Vec::with_capacity(SAMPLES);
        group.bench_function("decode", |b| {
            b.iter(|| {
                samples.clear();
                law.decode(black_box(&codes), &mut samples);
                black_box(samples.len())
            })
        });
        group.finish();
    }
}

/// One mixer tick (20 ms at 8 kHz) with every participant talking; throughput in
/// participant-frames.
fn mixer(c: &mut Criterion) {
    use pbxkit_rtp::mixer::{Gain, Mixer, MixerConfig, ParticipantId};
    let mut group = c.benchmark_group("mixer/tick");
    for n in [3u64, 10, 100, 1000] {
        let mut mixer = Mixer::new(MixerConfig::default());
        let frames: Vec<Vec<i16>> = (0..n)
            .map(|p| {
                (0..160)
                    .map(|i| (((i + p as usize * 7) as f64 * 0.2).sin() * 3000.0) as i16)
                    .collect()
            })
            .collect();
        for p in 0..n {
            mixer.add(ParticipantId(p)).unwrap();
        }
        mixer
            .set_gain(ParticipantId(0), Gain::from_db(-3.0))
            .unwrap();
        group.throughput(Throughput::Elements(n));
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                for (p, frame) in frames.iter().enumerate() {
                    mixer.push_frame(ParticipantId(p as u64), frame).unwrap();
                }
                mixer.mix();
                black_box(mixer.output(ParticipantId(0)).unwrap()[0])
            })
        });
    }
    group.finish();
}

/// The jitter buffer: 50 packets (one second of 20 ms frames) pushed with some
/// reordering and popped in step; throughput in packets.
fn jitter(c: &mut Criterion) {
    use pbxkit_rtp::jitter::{JitterBuffer, JitterConfig};
    use pbxkit_rtp::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
    use std::time::{Duration, Instant};
    const PACKETS: u16 = 50;
    let payload = Bytes::from(vec![0xD5; 160]);
    let packets: Vec<RtpPacket> = (0..PACKETS)
        .map(|i| {
            // Swap every fourth pair to reorder.
            let seq = if i % 4 == 1 {
                i + 1
            } else if i % 4 == 2 {
                i - 1
            } else {
                i
            };
            RtpPacket::new(
                PayloadType::PCMA,
                SeqNo(seq),
                RtpTimestamp(160 * u32::from(seq)),
                Ssrc(1),
                payload.clone(),
            )
        })
        .collect();
    let mut group = c.benchmark_group("jitter");
    group.throughput(Throughput::Elements(u64::from(PACKETS)));
    group.bench_function("push_pop", |b| {
        let t0 = Instant::now();
        b.iter(|| {
            let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
            let mut played = 0;
            for (i, packet) in packets.iter().enumerate() {
                let now = t0 + Duration::from_millis(20 * i as u64);
                jb.push(packet.clone(), now);
                if jb.pop(now).is_some() {
                    played += 1;
                }
            }
            black_box(played)
        })
    });
    group.finish();
}

/// G.722 over a 20 ms frame at 16 kHz (320 samples, 160 bytes); throughput in samples.
fn g722(c: &mut Criterion) {
    use pbxkit_rtp::g722::{G722Decoder, G722Encoder};
    const SAMPLES: usize = 320;
    let pcm: Vec<i16> = (0..SAMPLES)
        .map(|i| ((i as f64 * 0.15).sin() * 12_000.0) as i16)
        .collect();
    let mut payload = Vec::with_capacity(SAMPLES / 2);
    G722Encoder::new().encode(&pcm, &mut payload).unwrap();

    let mut group = c.benchmark_group("g722");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    let mut encoder = G722Encoder::new();
    let mut out = Vec::with_capacity(SAMPLES / 2);
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encoder.encode(black_box(&pcm), &mut out).unwrap();
            black_box(out.len())
        })
    });
    let mut decoder = G722Decoder::new();
    let mut samples = Vec::with_capacity(SAMPLES);
    group.bench_function("decode", |b| {
        b.iter(|| {
            samples.clear();
            decoder.decode(black_box(&payload), &mut samples);
            black_box(samples.len())
        })
    });
    group.finish();
}

/// The resampler on 20 ms frames, 8 → 16 kHz (and 48 → 8 kHz, the costliest of the
/// usual pairs); throughput in input samples.
fn resample(c: &mut Criterion) {
    use pbxkit_rtp::resample::Resampler;
    let mut group = c.benchmark_group("resample");
    for (from, to) in [(8000u32, 16_000u32), (48_000, 8000)] {
        let frame: Vec<i16> = (0..from as usize / 50)
            .map(|i| ((i as f64 * 0.3).sin() * 10_000.0) as i16)
            .collect();
        let mut resampler = Resampler::new(from, to).unwrap();
        let mut out = Vec::with_capacity(to as usize / 50 + 1);
        group.throughput(Throughput::Elements(frame.len() as u64));
        group.bench_function(format!("{}k_to_{}k", from / 1000, to / 1000), |b| {
            b.iter(|| {
                out.clear();
                resampler.process(black_box(&frame), &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// One 20 ms tick of a conference room of `n` participants, PCMU and G.722 in turn,
/// a third of them talking: the tick's packet from each talker received, then
/// `handle_timeout` and every transmit (and event) drained. The packets are made
/// outside the measurement; time is simulated, 20 ms further each iteration.
/// Throughput in participants.
fn conference(c: &mut Criterion) {
    use pbxkit_rtp::channel::{Channel, ChannelConfig, Latching};
    use pbxkit_rtp::codec::{Codec, G722};
    use pbxkit_rtp::conference::{Conference, ConferenceConfig, ConferenceEvent, TICK};
    use pbxkit_rtp::relay::ChannelId;
    use pbxkit_rtp::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    /// A talking phone: a second of its tone, encoded, sent in a loop.
    struct Talker {
        id: ChannelId,
        addr: SocketAddr,
        pt: PayloadType,
        frames: Vec<Bytes>,
        seq: u16,
        ts: u32,
        /// Timestamp units per 20 ms.
        step: u32,
    }

    impl Talker {
        fn datagram(&mut self) -> Bytes {
            let frame = self.frames[usize::from(self.seq) % self.frames.len()].clone();
            let packet = RtpPacket::new(
                self.pt,
                SeqNo(self.seq),
                RtpTimestamp(self.ts),
                Ssrc(0xabc0 + self.id.0 as u32),
                frame,
            );
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(self.step);
            packet.to_bytes()
        }
    }

    fn codec(g722: bool) -> Box<dyn Codec + Send> {
        if g722 {
            Box::new(G722::new())
        } else {
            Box::new(Law::Ulaw)
        }
    }

    /// Drains the room; the RTP packets sent and the participants that started
    /// talking.
    fn drain(room: &mut Conference) -> (usize, usize) {
        let (mut sent, mut talking) = (0, 0);
        while let Some(transmit) = room.poll_transmit() {
            black_box(transmit);
            sent += 1;
        }
        while let Some((_, event)) = room.poll_event() {
            talking += usize::from(event == ConferenceEvent::Talking);
        }
        (sent, talking)
    }

    let mut group = c.benchmark_group("rtp/conference-tick");
    for n in [3u8, 10, 50] {
        let t0 = Instant::now();
        let mut room = Conference::new(ConferenceConfig::default(), t0);
        let mut talkers = Vec::new();
        for i in 0..n {
            let id = ChannelId(u64::from(i));
            let addr = SocketAddr::from(([192, 0, 2, 1 + i], 4000));
            let g722 = i % 2 == 1;
            let pt = if g722 {
                PayloadType::G722
            } else {
                PayloadType::PCMU
            };
            let mut config = ChannelConfig::new(pt, 8000, 0x1000 + u64::from(i));
            config.remote = Some(addr);
            config.latching = Latching::Strict;
            config.telephone_event = PayloadType::new(101);
            room.join(id, Channel::new(config, t0), codec(g722))
                .expect("the room has room for 50");
            if i % 3 == 0 {
                let mut encoder = codec(g722);
                let rate = encoder.sample_rate();
                let freq = 300.0 + 40.0 * f64::from(i);
                let frames = (0..50)
                    .map(|f| {
                        let len = rate as usize / 50;
                        let pcm: Vec<i16> = (f * len..(f + 1) * len)
                            .map(|s| {
                                let t = s as f64 / f64::from(rate);
                                ((2.0 * std::f64::consts::PI * freq * t).sin() * 6000.0) as i16
                            })
                            .collect();
                        let mut payload = Vec::new();
                        encoder
                            .encode(&pcm, &mut payload)
                            .expect("a 20 ms frame encodes");
                        Bytes::from(payload)
                    })
                    .collect();
                talkers.push(Talker {
                    id,
                    addr,
                    pt,
                    frames,
                    seq: 100,
                    ts: 5000,
                    step: 160,
                });
            }
        }
        let mut now = t0;
        let mut datagrams: Vec<(ChannelId, Bytes, SocketAddr)> = Vec::with_capacity(talkers.len());
        let mut tick = |room: &mut Conference, talkers: &mut [Talker], now: Instant| {
            for (id, datagram, from) in datagrams.drain(..) {
                room.receive(id, datagram, from, now);
            }
            room.handle_timeout(now);
            let sent = drain(room);
            datagrams.extend(talkers.iter_mut().map(|t| (t.id, t.datagram(), t.addr)));
            sent
        };
        // A second to fill the jitter buffers: then every participant hears the room
        // each tick and the talkers are heard.
        let mut started = 0;
        for _ in 0..50 {
            started += tick(&mut room, &mut talkers, now).1;
            now += TICK;
        }
        assert_eq!(started, talkers.len(), "every talker is heard");
        assert_eq!(tick(&mut room, &mut talkers, now).0, usize::from(n));
        now += TICK;

        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(format!("{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Made (outside the measurement) after the previous tick.
                    let start = Instant::now();
                    for (id, datagram, from) in datagrams.drain(..) {
                        room.receive(id, datagram, from, now);
                    }
                    room.handle_timeout(now);
                    black_box(drain(&mut room));
                    total += start.elapsed();
                    datagrams.extend(talkers.iter_mut().map(|t| (t.id, t.datagram(), t.addr)));
                    now += TICK;
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches, parse, serialize, g711, g722, resample, mixer, jitter, conference
);
criterion_main!(benches);
