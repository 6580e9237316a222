//! The conference room through its public API, in simulated time: who hears whom
//! across codecs, mute, prompts to one participant, talking events, DTMF, jitter
//! and loss, a late caller, leaving and a full room.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use bytes::Bytes;
use pbxkit_rtp::channel::{Channel, ChannelConfig, Event, Latching};
use pbxkit_rtp::codec::{Codec, G722};
use pbxkit_rtp::conference::{
    Conference, ConferenceConfig, ConferenceError, ConferenceEvent, MAX_CATCH_UP, TICK,
};
use pbxkit_rtp::dtmf::{DtmfSender, EventCode, SenderConfig};
use pbxkit_rtp::g711::Law;
use pbxkit_rtp::mixer::MixerError;
use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use pbxkit_rtp::relay::ChannelId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TE: u8 = 101;

/// A phone in the room: what it sends, and what it decodes of what it gets.
struct Phone {
    id: ChannelId,
    addr: SocketAddr,
    pt: PayloadType,
    codec: Box<dyn Codec + Send>,
    /// Its own decoder of what the room sends it.
    ear: Box<dyn Codec + Send>,
    seq: u16,
    ts: u32,
    /// Timestamp units per 20 ms.
    step: u32,
    heard: Vec<i16>,
    sequences: Vec<u16>,
}

impl Phone {
    fn new(id: u64, pt: PayloadType, codec: fn() -> Box<dyn Codec + Send>) -> Phone {
        let c = codec();
        let step = c.clock_rate() / 50;
        Phone {
            id: ChannelId(id),
            addr: format!("192.0.2.{id}:4000").parse().unwrap(),
            pt,
            codec: c,
            ear: codec(),
            seq: 100,
            ts: 5000,
            step,
            heard: Vec::new(),
            sequences: Vec::new(),
        }
    }

    fn channel(&self, t0: Instant) -> Channel {
        let mut config = ChannelConfig::new(self.pt, self.codec.clock_rate(), 0x1000 + self.id.0);
        config.remote = Some(self.addr);
        config.latching = Latching::Strict;
        config.telephone_event = PayloadType::new(TE);
        Channel::new(config, t0)
    }

    fn join(&self, room: &mut Conference, t0: Instant, codec: fn() -> Box<dyn Codec + Send>) {
        room.join(self.id, self.channel(t0), codec()).unwrap();
    }

    /// The next 20 ms packet: a tone of `freq` Hz at `amplitude`, or silence.
    fn packet(&mut self, freq: f64, amplitude: f64) -> RtpPacket {
        let rate = self.codec.sample_rate();
        let n = rate as usize / 50;
        let start = (self.seq as usize) * n;
        let pcm: Vec<i16> = (0..n)
            .map(|i| {
                let t = (start + i) as f64 / f64::from(rate);
                ((2.0 * std::f64::consts::PI * freq * t).sin() * amplitude) as i16
            })
            .collect();
        let mut payload = Vec::new();
        self.codec.encode(&pcm, &mut payload).unwrap();
        let p = RtpPacket::new(
            self.pt,
            SeqNo(self.seq),
            RtpTimestamp(self.ts),
            Ssrc(0xabc0 + self.id.0 as u32),
            Bytes::from(payload),
        );
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.step);
        p
    }

    fn hear(&mut self, datagram: Bytes) {
        let p = RtpPacket::parse(datagram).unwrap();
        assert_eq!(
            p.payload_type(),
            self.pt,
            "the room speaks each phone's codec"
        );
        self.sequences.push(p.sequence().0);
        self.ear.decode(p.payload(), &mut self.heard).unwrap();
    }

    /// RMS of the last `ms` milliseconds heard.
    fn loudness(&self, ms: usize) -> f64 {
        let n = (self.ear.sample_rate() as usize * ms / 1000).min(self.heard.len());
        let tail = &self.heard[self.heard.len() - n..];
        (tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt()
    }
}

fn ulaw() -> Box<dyn Codec + Send> {
    Box::new(Law::Ulaw)
}
fn alaw() -> Box<dyn Codec + Send> {
    Box::new(Law::Alaw)
}
fn g722() -> Box<dyn Codec + Send> {
    Box::new(G722::new())
}

/// Runs the room for `ticks` 20 ms ticks from `*now`; each phone whose tone is
/// given sends a packet each tick; what the room sends is heard.
fn run(
    room: &mut Conference,
    phones: &mut [Phone],
    tones: &HashMap<ChannelId, (f64, f64)>,
    now: &mut Instant,
    ticks: usize,
) -> Vec<(ChannelId, ConferenceEvent)> {
    let mut events = Vec::new();
    for _ in 0..ticks {
        for p in phones.iter_mut() {
            if let Some(&(freq, amp)) = tones.get(&p.id) {
                let packet = p.packet(freq, amp);
                room.receive(p.id, packet.to_bytes(), p.addr, *now);
            }
        }
        room.handle_timeout(*now);
        drain(room, phones, &mut events);
        *now += TICK;
    }
    events
}

fn drain(
    room: &mut Conference,
    phones: &mut [Phone],
    events: &mut Vec<(ChannelId, ConferenceEvent)>,
) {
    while let Some((id, t)) = room.poll_transmit() {
        let p = phones.iter_mut().find(|p| p.id == id).unwrap();
        assert_eq!(t.to, p.addr, "sent to the participant's phone");
        if t.kind == pbxkit_rtp::channel::TransmitKind::Rtp {
            p.hear(t.payload);
        }
    }
    while let Some(e) = room.poll_event() {
        events.push(e);
    }
}

fn three(t0: Instant) -> (Conference, Vec<Phone>) {
    let mut room = Conference::new(ConferenceConfig::default(), t0);
    let phones = vec![
        Phone::new(1, PayloadType::PCMU, ulaw),
        Phone::new(2, PayloadType::G722, g722),
        Phone::new(3, PayloadType::PCMA, alaw),
    ];
    phones[0].join(&mut room, t0, ulaw);
    phones[1].join(&mut room, t0, g722);
    phones[2].join(&mut room, t0, alaw);
    (room, phones)
}

#[test]
fn everybody_hears_the_others_in_their_own_codec_but_not_themselves() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    let mut now = t0;
    // Alice (µ-law) talks; the G.722 and A-law phones are silent.
    let tones = HashMap::from([
        (ChannelId(1), (440.0, 8000.0)),
        (ChannelId(2), (0.0, 0.0)),
        (ChannelId(3), (0.0, 0.0)),
    ]);
    let events = run(&mut room, &mut phones, &tones, &mut now, 50);
    assert!(
        phones[1].loudness(500) > 3000.0,
        "{}",
        phones[1].loudness(500)
    );
    assert!(
        phones[2].loudness(500) > 3000.0,
        "{}",
        phones[2].loudness(500)
    );
    assert!(
        phones[0].loudness(500) < 50.0,
        "{}",
        phones[0].loudness(500)
    );
    // A packet every tick to each phone, in one continuous stream.
    for p in &phones {
        assert!(p.sequences.len() >= 49, "{}", p.sequences.len());
        assert!(p.sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }
    assert!(events.contains(&(ChannelId(1), ConferenceEvent::Talking)));
    assert!(
        !events
            .iter()
            .any(|(id, e)| *id != ChannelId(1) && *e == ConferenceEvent::Talking)
    );

    // Now the G.722 phone talks too: Alice hears it (in µ-law), the A-law phone both.
    let tones = HashMap::from([
        (ChannelId(1), (440.0, 8000.0)),
        (ChannelId(2), (1000.0, 8000.0)),
        (ChannelId(3), (0.0, 0.0)),
    ]);
    run(&mut room, &mut phones, &tones, &mut now, 50);
    assert!(phones[0].loudness(500) > 3000.0);
    let both = phones[2].loudness(500);
    assert!(both > phones[1].loudness(500) * 1.2, "{both}");
}

#[test]
fn a_muted_participant_is_not_heard_but_still_talks_and_hears() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    assert!(room.set_muted(ChannelId(1), true));
    assert_eq!(room.is_muted(ChannelId(1)), Some(true));
    assert_eq!(room.is_muted(ChannelId(9)), None);
    let mut now = t0;
    let tones = HashMap::from([
        (ChannelId(1), (440.0, 8000.0)),
        (ChannelId(2), (700.0, 8000.0)),
    ]);
    let events = run(&mut room, &mut phones, &tones, &mut now, 40);
    assert!(phones[2].loudness(400) > 2000.0, "hears the G.722 phone");
    let only_bob = phones[2].loudness(400);
    // Muted: the A-law phone hears Bob alone, as loud as Bob.
    assert!(
        phones[0].loudness(400) > 2000.0,
        "the muted one still hears"
    );
    assert!(events.contains(&(ChannelId(1), ConferenceEvent::Talking)));
    room.set_muted(ChannelId(1), false);
    run(&mut room, &mut phones, &tones, &mut now, 40);
    assert!(phones[2].loudness(400) > only_bob * 1.2);
}

#[test]
fn a_prompt_plays_to_one_participant_only() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    let beep: Vec<i16> = (0..16_000 / 2)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * 600.0 / 16000.0).sin() * 9000.0) as i16)
        .collect();
    // Deaf: the prompt, not the room (where the A-law phone talks).
    assert!(room.set_deaf(ChannelId(2), true));
    assert!(!room.set_deaf(ChannelId(9), true));
    let tones = HashMap::from([(ChannelId(3), (300.0, 9000.0))]);
    let mut now = t0;
    run(&mut room, &mut phones, &tones, &mut now, 20);
    assert!(phones[1].loudness(300) < 50.0, "deaf");
    assert!(phones[0].loudness(300) > 3000.0);
    room.set_deaf(ChannelId(2), false);
    assert!(room.play(ChannelId(2), &beep));
    assert!(!room.play(ChannelId(9), &beep));
    assert!(room.is_playing(ChannelId(2)));
    run(&mut room, &mut phones, &HashMap::new(), &mut now, 20);
    assert!(phones[1].loudness(300) > 3000.0);
    assert!(phones[0].loudness(300) < 50.0);
    assert!(phones[2].loudness(300) < 50.0);
    run(&mut room, &mut phones, &HashMap::new(), &mut now, 10);
    assert!(!room.is_playing(ChannelId(2)), "half a second is 25 ticks");
    room.play(ChannelId(2), &beep);
    room.stop_playing(ChannelId(2));
    run(&mut room, &mut phones, &HashMap::new(), &mut now, 10);
    assert!(phones[1].loudness(150) < 50.0);
}

#[test]
fn talking_stops_after_the_hangover_and_when_the_talker_leaves() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    let mut now = t0;
    let talking = HashMap::from([(ChannelId(2), (500.0, 6000.0))]);
    let quiet = HashMap::from([(ChannelId(2), (0.0, 0.0))]);
    let mut events = run(&mut room, &mut phones, &talking, &mut now, 10);
    // 25 quiet frames of hangover, then the event.
    events.extend(run(&mut room, &mut phones, &quiet, &mut now, 20));
    assert!(!events.contains(&(ChannelId(2), ConferenceEvent::StoppedTalking)));
    events.extend(run(&mut room, &mut phones, &quiet, &mut now, 10));
    assert!(events.contains(&(ChannelId(2), ConferenceEvent::StoppedTalking)));

    events = run(&mut room, &mut phones, &talking, &mut now, 5);
    assert!(events.contains(&(ChannelId(2), ConferenceEvent::Talking)));
    let channel = room.leave(ChannelId(2)).unwrap();
    assert_eq!(channel.latched(), Some(phones[1].addr));
    assert_eq!(
        room.poll_event(),
        Some((ChannelId(2), ConferenceEvent::StoppedTalking))
    );
    assert!(room.leave(ChannelId(2)).is_none());
    assert_eq!(room.len(), 2);
    assert_eq!(room.ids().collect::<Vec<_>>(), [ChannelId(1), ChannelId(3)]);
}

#[test]
fn dtmf_comes_out_as_the_channels_event_and_is_not_mixed() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    let mut dtmf = DtmfSender::new(SenderConfig::default());
    let five = EventCode::from_char('5').unwrap();
    dtmf.start(
        t0,
        RtpTimestamp(phones[0].ts),
        five,
        Duration::from_millis(120),
    )
    .unwrap();
    let mut events = Vec::new();
    while let Some(deadline) = dtmf.poll_timeout() {
        while let Some(p) = dtmf.poll_packet(deadline) {
            let rtp = p.to_rtp(PayloadType::new(TE).unwrap(), SeqNo(phones[0].seq), Ssrc(9));
            phones[0].seq += 1;
            room.receive(phones[0].id, rtp.to_bytes(), phones[0].addr, deadline);
        }
        room.handle_timeout(deadline);
        drain(&mut room, &mut phones, &mut events);
    }
    let mut now = dtmf_end(t0);
    events.extend(run(&mut room, &mut phones, &HashMap::new(), &mut now, 10));
    assert!(events.iter().any(|(id, e)| *id == ChannelId(1)
        && matches!(e, ConferenceEvent::Channel(Event::Dtmf { digit, .. }) if *digit == five)));
    assert!(
        phones[1].loudness(300) < 50.0,
        "telephone events are not audio"
    );
}

fn dtmf_end(t0: Instant) -> Instant {
    t0 + Duration::from_millis(300)
}

#[test]
fn reordered_and_lost_packets_still_make_a_steady_stream() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    let mut now = t0;
    let mut held: Option<RtpPacket> = None;
    let mut events = Vec::new();
    for i in 0..100 {
        let packet = phones[0].packet(440.0, 8000.0);
        match i % 10 {
            // Lost.
            3 => {}
            // Held back a tick: arrives after its successor.
            6 => held = Some(packet),
            _ => {
                room.receive(phones[0].id, packet.to_bytes(), phones[0].addr, now);
                if let Some(p) = held.take() {
                    room.receive(phones[0].id, p.to_bytes(), phones[0].addr, now);
                }
            }
        }
        room.handle_timeout(now);
        drain(&mut room, &mut phones, &mut events);
        now += TICK;
    }
    let bob = &phones[1];
    assert!(bob.sequences.len() >= 99, "{}", bob.sequences.len());
    assert!(bob.loudness(1000) > 3000.0);
    let jitter = room.channel(ChannelId(1)).unwrap().quality();
    assert_eq!(jitter.packets_received, 90);
}

#[test]
fn a_late_caller_gets_a_few_ticks_not_a_burst() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    room.handle_timeout(t0);
    let mut events = Vec::new();
    drain(&mut room, &mut phones, &mut events);
    let before = phones[0].sequences.len();
    // Two seconds without a call: 100 ticks missed.
    let late = t0 + Duration::from_secs(2);
    room.handle_timeout(late);
    drain(&mut room, &mut phones, &mut events);
    assert_eq!(phones[0].sequences.len() - before, MAX_CATCH_UP as usize);
    assert!(room.poll_timeout() > late);
    assert!(room.poll_timeout() <= late + TICK);
}

#[test]
fn a_full_room_and_a_second_join_are_refused() {
    let t0 = Instant::now();
    let config = ConferenceConfig {
        max_participants: 2,
        ..ConferenceConfig::default()
    };
    let mut room = Conference::new(config, t0);
    let phones: Vec<Phone> = (1..=3)
        .map(|i| Phone::new(i, PayloadType::PCMU, ulaw))
        .collect();
    phones[0].join(&mut room, t0, ulaw);
    assert_eq!(
        room.join(phones[0].id, phones[0].channel(t0), ulaw()),
        Err(ConferenceError::Mixer(MixerError::AlreadyPresent(
            pbxkit_rtp::mixer::ParticipantId(1)
        )))
    );
    phones[1].join(&mut room, t0, ulaw);
    assert_eq!(
        room.join(phones[2].id, phones[2].channel(t0), ulaw()),
        Err(ConferenceError::Mixer(MixerError::Full { max: 2 }))
    );
    assert_eq!(room.len(), 2);
}

#[cfg(feature = "opus")]
#[test]
fn an_opus_phone_hears_a_g711_one_and_is_heard_by_it() {
    fn opus() -> Box<dyn Codec + Send> {
        Box::new(pbxkit_rtp::opus::Opus::new(pbxkit_rtp::opus::OpusConfig::default()).unwrap())
    }
    let t0 = Instant::now();
    let mut room = Conference::new(ConferenceConfig::default(), t0);
    let mut phones = vec![
        Phone::new(1, PayloadType::PCMU, ulaw),
        Phone::new(2, PayloadType::new(111).unwrap(), opus),
    ];
    phones[0].join(&mut room, t0, ulaw);
    phones[1].join(&mut room, t0, opus);
    let mut now = t0;
    let tones = HashMap::from([(ChannelId(1), (440.0, 8000.0))]);
    run(&mut room, &mut phones, &tones, &mut now, 50);
    assert!(
        phones[1].loudness(500) > 2000.0,
        "{}",
        phones[1].loudness(500)
    );
    let tones = HashMap::from([(ChannelId(2), (440.0, 8000.0))]);
    run(&mut room, &mut phones, &tones, &mut now, 50);
    assert!(
        phones[0].loudness(500) > 2000.0,
        "{}",
        phones[0].loudness(500)
    );
}

#[test]
fn a_participant_s_input_is_recorded_frame_by_frame_without_the_room() {
    let t0 = Instant::now();
    let (mut room, mut phones) = three(t0);
    assert!(room.set_recording(ChannelId(2), true));
    assert!(!room.set_recording(ChannelId(9), true));
    let mut now = t0;
    // The G.722 phone talks while the others are silent; then it stops sending.
    let tones = HashMap::from([
        (ChannelId(2), (500.0, 8000.0)),
        (ChannelId(1), (300.0, 8000.0)),
    ]);
    run(&mut room, &mut phones, &tones, &mut now, 30);
    run(&mut room, &mut phones, &HashMap::new(), &mut now, 10);
    let mut frames = Vec::new();
    while let Some((id, frame)) = room.poll_recorded() {
        assert_eq!(id, ChannelId(2), "only the participant asked for");
        assert_eq!(frame.len(), 320, "20 ms at 16 kHz");
        frames.push(frame);
    }
    assert_eq!(frames.len(), 40, "a frame per tick, silence included");
    let rms =
        |f: &[i16]| (f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64).sqrt();
    assert!(rms(&frames[20]) > 3000.0);
    assert!(rms(&frames[39]) < 10.0, "silence once it stops");
    room.set_recording(ChannelId(2), false);
    run(&mut room, &mut phones, &tones, &mut now, 5);
    assert_eq!(room.poll_recorded(), None);
}
