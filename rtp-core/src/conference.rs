//! A mixing bridge: a conference room of [`Channel`]s, each in its own codec, sans-IO.
//!
//! A [`Conference`] owns its participants' channels (keyed by [`ChannelId`], as in a
//! [`Relay`](crate::relay::Relay)) and, for each, a jitter buffer, a decoder and an
//! encoder (any [`Codec`]: G.711, G.722, L16, Opus) and the resamplers between the
//! codec's rate and the room's. Every 20 ms tick it takes one frame from each
//! participant's jitter buffer (silence when nothing is due, or when a packet is
//! lost), mixes N-1 with the [`Mixer`] (each participant hears everybody but itself),
//! adds what is [played](Conference::play) to that participant (a join tone, a
//! prompt), encodes it in the participant's codec and sends it through
//! [`Channel::forward`], so each far end sees one continuous stream from our SSRC.
//!
//! Packets go through the participant's channel first ([`Conference::receive`]):
//! latching, statistics and DTMF are the channel's, and its [`Event`]s come out of
//! [`Conference::poll_event`] next to the talking events, each with its channel's id.
//! Only the channel's audio payload type is mixed; telephone events and comfort noise
//! are not.
//!
//! The tick is the room's own clock, started at [`Conference::new`]: the caller sleeps
//! until [`Conference::poll_timeout`] and calls [`Conference::handle_timeout`]. A caller
//! that wakes late gets the ticks it missed, up to [`MAX_CATCH_UP`]; beyond that the
//! room skips ahead instead of sending a burst.
//!
//! ```
//! use bytes::Bytes;
//! use std::time::{Duration, Instant};
//! use pbxkit_rtp::channel::{Channel, ChannelConfig, Latching};
//! use pbxkit_rtp::codec::G722;
//! use pbxkit_rtp::conference::{Conference, ConferenceConfig};
//! use pbxkit_rtp::g711::Law;
//! use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
//! use pbxkit_rtp::relay::ChannelId;
//!
//! let t0 = Instant::now();
//! let channel = |pt, clock, remote: &str, random| {
//!     let mut config = ChannelConfig::new(pt, clock, random);
//!     config.remote = Some(remote.parse().expect("an address"));
//!     config.latching = Latching::Strict;
//!     Channel::new(config, t0)
//! };
//! let mut room = Conference::new(ConferenceConfig::default(), t0);
//! // Alice's phone does G.711 µ-law, Bob's G.722.
//! let (alice, bob) = (ChannelId(1), ChannelId(2));
//! room.join(alice, channel(PayloadType::PCMU, 8000, "192.0.2.1:4000", 1), Box::new(Law::Ulaw))?;
//! room.join(bob, channel(PayloadType::G722, 8000, "192.0.2.2:4000", 2), Box::new(G722::new()))?;
//!
//! // Alice talks: 20 ms packets of a loud µ-law tone.
//! let mut to_bob = 0;
//! for i in 0..20u16 {
//!     let now = t0 + Duration::from_millis(20 * u64::from(i));
//!     let payload: Vec<u8> = (0..160).map(|n| if n % 16 < 8 { 0x80 } else { 0x00 }).collect();
//!     let packet = RtpPacket::new(PayloadType::PCMU, SeqNo(i), RtpTimestamp(160 * u32::from(i)),
//!         Ssrc(7), Bytes::from(payload));
//!     room.receive(alice, packet.to_bytes(), "192.0.2.1:4000".parse()?, now);
//!     room.handle_timeout(now);
//!     while let Some((from, transmit)) = room.poll_transmit() {
//!         // socket_of(from).send_to(&transmit.payload, transmit.to)
//!         if from == bob {
//!             assert_eq!(RtpPacket::parse(transmit.payload)?.payload_type(), PayloadType::G722);
//!             to_bob += 1;
//!         }
//!     }
//! }
//! assert!(to_bob >= 19, "Bob hears the room every 20 ms");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::channel::{Channel, Event, Received, Transmit};
use crate::codec::Codec;
use crate::jitter::{self, JitterBuffer, JitterConfig, Playout};
use crate::mixer::{Mixer, MixerConfig, MixerError, MixerEvent, ParticipantId, SampleRate};
use crate::packet::{RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use crate::relay::ChannelId;
use crate::resample::{ResampleError, Resampler};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The room's frame period.
pub const TICK: Duration = Duration::from_millis(20);

/// Ticks a late caller gets at once in [`Conference::handle_timeout`]; a room further
/// behind skips ahead (a burst would only fill the phones' jitter buffers).
pub const MAX_CATCH_UP: u32 = 5;

/// Decoded audio waiting to be mixed, at most, in frames: a sender whose packets are
/// longer than a tick fills it by a packet at a time; more means its clock runs fast.
const MAX_PENDING_FRAMES: usize = 10;

/// Played audio waiting for a participant, at most, in seconds of the room's rate.
pub const MAX_PLAYING_SECONDS: usize = 30;

/// Outputs kept for the caller at most; the oldest are dropped first.
const MAX_QUEUED: usize = 4096;

/// The settings of a [`Conference`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConferenceConfig {
    /// The room's rate: wideband (16 kHz) by default, so G.722 and Opus participants
    /// hear each other in wideband; narrowband ones are resampled.
    pub rate: SampleRate,
    /// The most participants.
    pub max_participants: usize,
    /// Each participant's jitter buffer (its clock rate is the participant's).
    pub jitter: JitterConfig,
    /// Voice activity: frames above this mean power (dBFS) count as speech.
    pub vad_threshold_dbfs: f32,
    /// Quiet frames after speech before [`ConferenceEvent::StoppedTalking`].
    pub vad_hangover_frames: u32,
}

impl Default for ConferenceConfig {
    fn default() -> Self {
        let mixer = MixerConfig::default();
        ConferenceConfig {
            rate: SampleRate::Wideband,
            max_participants: 100,
            jitter: JitterConfig::default(),
            vad_threshold_dbfs: mixer.vad_threshold_dbfs,
            vad_hangover_frames: mixer.vad_hangover_frames,
        }
    }
}

/// What happens in a [`Conference`], by channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConferenceEvent {
    /// The participant started talking.
    Talking,
    /// The participant stopped talking (after the hangover), or left while talking.
    StoppedTalking,
    /// Its channel's event: DTMF, RTP timeout, latching, a remote report.
    Channel(Event),
}

/// Why [`Conference::join`] refused a participant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConferenceError {
    /// The room is full, or the channel is already in it.
    #[error(transparent)]
    Mixer(#[from] MixerError),
    /// The codec's rate cannot be converted to the room's.
    #[error("codec rate: {0}")]
    Rate(#[from] ResampleError),
    /// The jitter buffer settings are refused.
    #[error(transparent)]
    Jitter(#[from] jitter::ConfigError),
}

/// One participant: its channel, its codec and the audio on the way in and out.
struct Participant {
    channel: Channel,
    codec: Box<dyn Codec + Send>,
    jitter: JitterBuffer,
    /// Codec rate → room rate, and back; `None` when they are equal.
    to_room: Option<Resampler>,
    from_room: Option<Resampler>,
    /// Decoded audio at the room's rate, not mixed yet.
    pending: VecDeque<i16>,
    /// Audio played to this participant only, at the room's rate.
    playing: VecDeque<i16>,
    /// Whether its input is handed out, a frame per tick ([`Conference::poll_recorded`]).
    recording: bool,
    /// The stream we make for it (rewritten by the channel into its own).
    sequence: SeqNo,
    timestamp: RtpTimestamp,
    /// RTP timestamp units per tick at the channel's clock.
    step: u32,
    /// Scratch buffers, kept to avoid an allocation per tick.
    pcm: Vec<i16>,
    payload: Vec<u8>,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("codec", &self.codec.name())
            .field("pending", &self.pending.len())
            .field("playing", &self.playing.len())
            .finish_non_exhaustive()
    }
}

/// A conference room (see the [module docs](self)).
#[derive(Debug)]
pub struct Conference {
    config: ConferenceConfig,
    mixer: Mixer,
    /// By id: ticks visit participants in a stable order.
    participants: BTreeMap<ChannelId, Participant>,
    next_tick: Instant,
    /// The SSRC of the streams the room makes (each channel rewrites it to its own).
    ssrc: Ssrc,
    transmits: VecDeque<(ChannelId, Transmit)>,
    events: VecDeque<(ChannelId, ConferenceEvent)>,
    recorded: VecDeque<(ChannelId, Vec<i16>)>,
    /// Outputs dropped because the caller did not drain them.
    dropped: u64,
    /// Scratch: one frame at the room's rate.
    frame: Vec<i16>,
}

impl Conference {
    /// An empty room whose first tick is at `now`.
    pub fn new(config: ConferenceConfig, now: Instant) -> Conference {
        let mixer = Mixer::new(MixerConfig {
            rate: config.rate,
            max_participants: config.max_participants,
            vad_threshold_dbfs: config.vad_threshold_dbfs,
            vad_hangover_frames: config.vad_hangover_frames,
        });
        Conference {
            frame: Vec::with_capacity(config.rate.frame_len()),
            config,
            mixer,
            participants: BTreeMap::new(),
            next_tick: now,
            ssrc: Ssrc(0x6d69_7820),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            recorded: VecDeque::new(),
            dropped: 0,
        }
    }

    /// The room's settings.
    pub fn config(&self) -> &ConferenceConfig {
        &self.config
    }

    /// The participants.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// The participants' ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.participants.keys().copied()
    }

    /// A participant's channel (its quality, its latch).
    pub fn channel(&self, id: ChannelId) -> Option<&Channel> {
        self.participants.get(&id).map(|p| &p.channel)
    }

    /// Changes a participant's channel (a re-INVITE moved its address, say).
    pub fn update<T>(&mut self, id: ChannelId, f: impl FnOnce(&mut Channel) -> T) -> Option<T> {
        self.participants.get_mut(&id).map(|p| f(&mut p.channel))
    }

    /// Adds a participant on `channel`, whose audio payload type is `codec`'s. It
    /// hears the room from the next tick.
    ///
    /// # Errors
    ///
    /// [`ConferenceError::Mixer`] when the room is full or `id` is already in it;
    /// [`ConferenceError::Rate`] when the codec's rate cannot be converted.
    pub fn join(
        &mut self,
        id: ChannelId,
        channel: Channel,
        codec: Box<dyn Codec + Send>,
    ) -> Result<(), ConferenceError> {
        let room = self.config.rate.hz();
        let rate = codec.sample_rate();
        let resampler = |from: u32, to: u32| -> Result<Option<Resampler>, ResampleError> {
            if from == to {
                Ok(None)
            } else {
                Resampler::new(from, to).map(Some)
            }
        };
        let to_room = resampler(rate, room)?;
        let from_room = resampler(room, rate)?;
        let clock = channel.config().clock_rate.max(1);
        let jitter = JitterBuffer::new(JitterConfig {
            clock_rate: clock,
            ..self.config.jitter
        })?;
        self.mixer.add(participant(id))?;
        // The room's stream starts over at sequence number 0: a channel that was in a
        // room before (this one or another: they share an SSRC) must not send the far
        // end numbers it has already had.
        let mut channel = channel;
        channel.mark_source_change();
        let step = u32::try_from(u64::from(clock) * TICK.as_millis() as u64 / 1000).unwrap_or(160);
        let frame = usize::try_from(u64::from(rate) * TICK.as_millis() as u64 / 1000).unwrap_or(0);
        self.participants.insert(
            id,
            Participant {
                channel,
                codec,
                jitter,
                to_room,
                from_room,
                pending: VecDeque::new(),
                playing: VecDeque::new(),
                recording: false,
                sequence: SeqNo(0),
                timestamp: RtpTimestamp(0),
                step,
                pcm: Vec::with_capacity(frame),
                payload: Vec::with_capacity(frame * 2),
            },
        );
        Ok(())
    }

    /// Takes a participant out of the room; its channel is given back. A participant
    /// that was talking gets its [`ConferenceEvent::StoppedTalking`].
    pub fn leave(&mut self, id: ChannelId) -> Option<Channel> {
        let p = self.participants.remove(&id)?;
        // In the mixer whenever it is in the room.
        let _ = self.mixer.remove(participant(id));
        self.take_mixer_events();
        Some(p.channel)
    }

    /// Mutes a participant (the room does not hear it; its talking events still
    /// come). `false` when it is not in the room.
    pub fn set_muted(&mut self, id: ChannelId, muted: bool) -> bool {
        self.mixer.set_muted(participant(id), muted).is_ok()
    }

    /// Makes a participant deaf: it hears only what is [played](Conference::play) to
    /// it, not the room (one entering a PIN, say). `false` when it is not in the room.
    pub fn set_deaf(&mut self, id: ChannelId, deaf: bool) -> bool {
        self.mixer.set_deaf(participant(id), deaf).is_ok()
    }

    /// Whether the participant is muted (`None`: not in the room).
    pub fn is_muted(&self, id: ChannelId) -> Option<bool> {
        self.participants.get(&id)?;
        self.mixer.is_muted(participant(id))
    }

    /// Plays `pcm` (at the room's rate) to one participant, over what it hears of the
    /// room, after what is already playing to it. At most [`MAX_PLAYING_SECONDS`]
    /// wait; the rest is cut. `false` when it is not in the room.
    pub fn play(&mut self, id: ChannelId, pcm: &[i16]) -> bool {
        let Some(p) = self.participants.get_mut(&id) else {
            return false;
        };
        let room = usize::try_from(self.config.rate.hz()).unwrap_or(16_000);
        let room_left = (MAX_PLAYING_SECONDS * room).saturating_sub(p.playing.len());
        p.playing.extend(pcm.iter().take(room_left).copied());
        true
    }

    /// Records what a participant says (not what it hears): from the next tick,
    /// each tick gives one frame of its input at the room's rate, silence when
    /// nothing of it was due, from [`Conference::poll_recorded`]. `false` when it
    /// is not in the room.
    pub fn set_recording(&mut self, id: ChannelId, on: bool) -> bool {
        let Some(p) = self.participants.get_mut(&id) else {
            return false;
        };
        p.recording = on;
        true
    }

    /// The next frame recorded (see [`Conference::set_recording`]).
    pub fn poll_recorded(&mut self) -> Option<(ChannelId, Vec<i16>)> {
        self.recorded.pop_front()
    }

    /// Whether something is still playing to the participant.
    pub fn is_playing(&self, id: ChannelId) -> bool {
        self.participants
            .get(&id)
            .is_some_and(|p| !p.playing.is_empty())
    }

    /// Stops what plays to the participant.
    pub fn stop_playing(&mut self, id: ChannelId) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.playing.clear();
        }
    }

    /// A datagram arrived on a participant's RTP port: through its channel (latching,
    /// statistics, DTMF), and its audio into its jitter buffer.
    pub fn receive(
        &mut self,
        id: ChannelId,
        datagram: Bytes,
        from: SocketAddr,
        now: Instant,
    ) -> Received {
        let Some(p) = self.participants.get_mut(&id) else {
            return Received::Dropped(crate::channel::DropReason::Foreign);
        };
        let received = p.channel.receive(datagram, from, now);
        if let Received::Media(packet) = &received
            && packet.payload_type() == p.channel.config().payload_type
        {
            p.jitter.push(packet.clone(), now);
        }
        take_channel(id, p, &mut self.transmits, &mut self.events);
        received
    }

    /// A datagram arrived on a participant's RTCP port.
    pub fn receive_rtcp(
        &mut self,
        id: ChannelId,
        datagram: Bytes,
        from: SocketAddr,
        now: Instant,
    ) -> Received {
        let Some(p) = self.participants.get_mut(&id) else {
            return Received::Dropped(crate::channel::DropReason::Foreign);
        };
        let received = p.channel.receive_rtcp(datagram, from, now);
        take_channel(id, p, &mut self.transmits, &mut self.events);
        received
    }

    /// When [`Conference::handle_timeout`] is due: the next tick, or a channel's
    /// timer if earlier.
    pub fn poll_timeout(&self) -> Instant {
        self.participants
            .values()
            .filter_map(|p| p.channel.poll_timeout())
            .fold(self.next_tick, Instant::min)
    }

    /// Runs the ticks and channel timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (&id, p) in &mut self.participants {
            if p.channel.poll_timeout().is_some_and(|at| at <= now) {
                p.channel.handle_timeout(now);
                take_channel(id, p, &mut self.transmits, &mut self.events);
            }
        }
        let mut ticks = 0;
        while self.next_tick <= now {
            if ticks == MAX_CATCH_UP {
                // Far behind: the next tick is the next one after now.
                let behind = now.duration_since(self.next_tick).as_nanos();
                let skip = behind / TICK.as_nanos() + 1;
                self.next_tick += TICK * u32::try_from(skip).unwrap_or(u32::MAX);
                break;
            }
            let at = self.next_tick;
            self.tick(at);
            self.next_tick += TICK;
            ticks += 1;
        }
        while self.transmits.len() > MAX_QUEUED {
            self.transmits.pop_front();
            self.dropped += 1;
        }
    }

    /// One frame: in from every participant, mixed, out to every one.
    fn tick(&mut self, now: Instant) {
        let n = self.config.rate.frame_len();
        for (&id, p) in &mut self.participants {
            // Everything due now: a sender of 10 ms packets has two per tick.
            while let Some(playout) = p.jitter.pop(now) {
                p.pcm.clear();
                match playout {
                    Playout::Packet(packet) => {
                        // A payload the codec refuses plays as silence.
                        if p.codec.decode(packet.payload(), &mut p.pcm).is_err() {
                            p.pcm.clear();
                        }
                    }
                    Playout::Conceal { .. } => {}
                }
                if p.pcm.is_empty() {
                    // A lost or broken frame: a tick of silence at the codec's rate.
                    let rate = u64::from(p.codec.sample_rate());
                    let len = usize::try_from(rate * TICK.as_millis() as u64 / 1000).unwrap_or(0);
                    p.pcm.resize(len, 0);
                }
                match p.to_room.as_mut() {
                    Some(r) => {
                        self.frame.clear();
                        r.process(&p.pcm, &mut self.frame);
                        p.pending.extend(self.frame.iter().copied());
                    }
                    None => p.pending.extend(p.pcm.iter().copied()),
                }
            }
            let max = MAX_PENDING_FRAMES * n;
            if p.pending.len() > max {
                let excess = p.pending.len() - max;
                p.pending.drain(..excess);
            }
            if p.pending.len() >= n {
                self.frame.clear();
                self.frame.extend(p.pending.drain(..n));
                // The frame has the mixer's length: pushing cannot fail.
                let _ = self.mixer.push_frame(participant(id), &self.frame);
                if p.recording {
                    self.recorded.push_back((id, self.frame.clone()));
                }
            } else if p.recording {
                // Nothing due (silence, loss, a phone on hold): time goes on.
                self.recorded.push_back((id, vec![0; n]));
            }
        }
        while self.recorded.len() > MAX_QUEUED {
            self.recorded.pop_front();
            self.dropped += 1;
        }
        self.mixer.mix();
        self.take_mixer_events();
        for (&id, p) in &mut self.participants {
            self.frame.clear();
            if let Some(out) = self.mixer.output(participant(id)) {
                self.frame.extend_from_slice(out);
            }
            self.frame.resize(n, 0);
            for (s, played) in self
                .frame
                .iter_mut()
                .zip(p.playing.drain(..n.min(p.playing.len())))
            {
                *s = s.saturating_add(played);
            }
            p.pcm.clear();
            match p.from_room.as_mut() {
                Some(r) => r.process(&self.frame, &mut p.pcm),
                None => p.pcm.extend_from_slice(&self.frame),
            }
            p.payload.clear();
            if p.codec.encode(&p.pcm, &mut p.payload).is_err() {
                continue;
            }
            let packet = RtpPacket::new(
                p.channel.config().payload_type,
                p.sequence,
                p.timestamp,
                self.ssrc,
                Bytes::copy_from_slice(&p.payload),
            );
            p.sequence = p.sequence.next();
            p.timestamp = p.timestamp.wrapping_add(p.step);
            if let Some(transmit) = p.channel.forward(&packet, now) {
                self.transmits.push_back((id, transmit));
            }
        }
    }

    fn take_mixer_events(&mut self) {
        while let Some(e) = self.mixer.poll_event() {
            let (who, what) = match e {
                MixerEvent::Talking(who) => (who, ConferenceEvent::Talking),
                MixerEvent::StoppedTalking(who) => (who, ConferenceEvent::StoppedTalking),
            };
            self.events.push_back((ChannelId(who.0), what));
        }
    }

    /// The next datagram to send, from the socket of the channel given.
    pub fn poll_transmit(&mut self) -> Option<(ChannelId, Transmit)> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<(ChannelId, ConferenceEvent)> {
        self.events.pop_front()
    }

    /// Outputs dropped because they were not drained.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

fn participant(id: ChannelId) -> ParticipantId {
    ParticipantId(id.0)
}

/// Moves a channel's outputs into the room's queues.
fn take_channel(
    id: ChannelId,
    p: &mut Participant,
    transmits: &mut VecDeque<(ChannelId, Transmit)>,
    events: &mut VecDeque<(ChannelId, ConferenceEvent)>,
) {
    while let Some(t) = p.channel.poll_transmit() {
        transmits.push_back((id, t));
    }
    while let Some(e) = p.channel.poll_event() {
        events.push_back((id, ConferenceEvent::Channel(e)));
    }
}
