//! The media threads: every relay's sockets on a few threads, each waiting on all of
//! its sockets at once (epoll through mio) and forwarding what arrives, instead of a
//! task per socket and direction.
//!
//! A [`Relay`](super::Relay) is a handle: it binds its ports, gives them to one thread
//! ([`MediaThreads::pick`], round robin) and from then on sends that thread
//! [`Command`]s (a phone's SDP address, transcoding, a recording's tap, a tone to play,
//! the end). The thread owns everything per packet (admission, latching, transcoding,
//! the tap, the counters), so the shell's loop and the runtime's workers never touch
//! RTP. Tones and prompts are generated on the thread too, on a 20 ms schedule kept
//! per player; nothing else wakes it but datagrams and commands.

use super::{Background, Counters};
use crate::codecs::{Format, Transcoding};
use pbxkit_rtp::channel::{Channel, ChannelConfig, Event as ChannelEvent, Latching, Received};
use pbxkit_rtp::codec::Codec;
use pbxkit_rtp::tones::ToneGenerator;
use pbxkit_rtp::transcode::Transcoder;
use pbxkit_rtp::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// The waker's token; the sockets' are `slot * 4 + leg * 2 + rtcp`.
const WAKER: mio::Token = mio::Token(usize::MAX);

/// The packet length read at most: more than any RTP audio packet a phone sends.
const DATAGRAM: usize = 2048;

/// Datagrams read from one socket before the others get their turn.
const BURST: usize = 64;

/// A frame of a played tone or prompt.
const FRAME: Duration = Duration::from_millis(20);

/// The media threads of the PBX.
#[derive(Debug)]
pub(crate) struct MediaThreads {
    threads: Vec<Thread>,
    next: AtomicUsize,
}

/// The way to one media thread: its commands, and the waker that makes it read them.
#[derive(Debug, Clone)]
pub(crate) struct Thread {
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
}

impl Thread {
    /// Hands `command` to the thread. A thread that is gone (the PBX is stopping)
    /// has nothing left to do with it.
    pub(super) fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

impl MediaThreads {
    /// Starts `count` threads (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<MediaThreads> {
        let mut threads = Vec::new();
        for n in 0..count.max(1) {
            let poll = mio::Poll::new()?;
            let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
            let (commands, queue) = mpsc::channel();
            std::thread::Builder::new()
                .name(format!("pbx-media-{n}"))
                .spawn(move || Worker::new(poll, queue).run())?;
            threads.push(Thread { commands, waker });
        }
        Ok(MediaThreads {
            threads,
            next: AtomicUsize::new(0),
        })
    }

    /// The thread for the next relay.
    pub(crate) fn pick(&self) -> Thread {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.threads.len().max(1);
        // Not empty: `start` makes at least one.
        self.threads[n].clone()
    }
}

impl Drop for MediaThreads {
    fn drop(&mut self) {
        for thread in &self.threads {
            thread.send(Command::Shutdown);
        }
    }
}

/// What a relay's handle tells its thread.
pub(super) enum Command {
    /// A relay's sockets (RTP and RTCP for legs A and B), non-blocking.
    Add {
        relay: u64,
        legs: [(std::net::UdpSocket, std::net::UdpSocket); 2],
        counters: Arc<Counters>,
    },
    /// The relay is over: its sockets are closed.
    Remove { relay: u64 },
    /// A leg's SDP: where its phone said it receives, and the payload types it lists.
    Peer {
        relay: u64,
        leg: usize,
        addr: Option<SocketAddr>,
        formats: Vec<PayloadType>,
    },
    /// Transcode between the legs' formats (`None`: relay as is).
    Transcoding {
        relay: u64,
        plan: Option<Arc<Transcoding>>,
    },
    /// Copy the RTP both legs send to a recording (`None`: stop).
    Tap {
        relay: u64,
        tap: Option<crate::recording::Tap>,
    },
    /// Play to a leg's phone instead of what the other leg sends.
    Play {
        relay: u64,
        leg: usize,
        player: Box<Player>,
    },
    /// Play these samples over a leg's tone, if `play` is still the one playing.
    Prompt {
        relay: u64,
        leg: usize,
        play: u64,
        samples: Vec<i16>,
    },
    /// Stop the player `play` of a leg (a newer one is left alone).
    Stop { relay: u64, leg: usize, play: u64 },
    /// The PBX is stopping.
    Shutdown,
}

/// What plays to a phone: a background sound in its codec, prompts over it.
pub(super) struct Player {
    pub(super) play: u64,
    source: Source,
    codec: Box<dyn Codec + Send>,
    pt: PayloadType,
    ssrc: Ssrc,
    seq: SeqNo,
    ts: RtpTimestamp,
    frame: Vec<i16>,
    payload: Vec<u8>,
    /// The prompt playing and how far it is, and the one waiting.
    prompt: (Vec<i16>, usize),
    queued: Option<Vec<i16>>,
    next: Instant,
}

impl Player {
    /// A player of `background` in `format`; `None` when the format has no codec here
    /// or the sound none at its rate.
    pub(super) fn new(play: u64, background: Background, format: &Format) -> Option<Player> {
        let codec = format.codec()?;
        let pt = PayloadType::new(format.payload_type)?;
        let source = match background {
            Background::Tone(tone) => {
                Source::Tone(ToneGenerator::new(tone, codec.sample_rate(), -13.0).ok()?)
            }
            Background::Music(music) => {
                let samples = music.at(codec.sample_rate()).filter(|s| !s.is_empty())?;
                Source::Music { samples, at: 0 }
            }
        };
        let samples = codec.sample_rate() as usize / 50;
        Some(Player {
            play,
            source,
            pt,
            // A stream of its own: sequence and timestamp start anywhere.
            ssrc: Ssrc(crate::ids::random_u64() as u32),
            seq: SeqNo(crate::ids::random_u64() as u16),
            ts: RtpTimestamp(0),
            frame: vec![0; samples],
            payload: Vec::with_capacity(samples),
            prompt: (Vec::new(), 0),
            queued: None,
            next: Instant::now(),
            codec,
        })
    }

    /// The sample rate of the codec: prompts are given at it.
    pub(super) fn rate(&self) -> u32 {
        self.codec.sample_rate()
    }

    /// The next packet, or `None` when the codec fails (the player stops).
    fn packet(&mut self) -> Option<bytes::Bytes> {
        if self.prompt.1 >= self.prompt.0.len()
            && let Some(next) = self.queued.take()
        {
            self.prompt = (next, 0);
        }
        match self.prompt.0.get(self.prompt.1..) {
            Some(rest) if !rest.is_empty() => {
                // The prompt's last frame is padded with silence.
                let samples = rest.iter().chain(std::iter::repeat(&0));
                for (out, sample) in self.frame.iter_mut().zip(samples) {
                    *out = *sample;
                }
                self.prompt.1 += self.frame.len();
            }
            _ => self.source.fill(&mut self.frame),
        }
        self.payload.clear();
        self.codec.encode(&self.frame, &mut self.payload).ok()?;
        let packet = RtpPacket::new(
            self.pt,
            self.seq,
            self.ts,
            self.ssrc,
            bytes::Bytes::copy_from_slice(&self.payload),
        );
        self.seq = self.seq.next();
        self.ts = self.ts.wrapping_add(self.codec.clock_rate() / 50);
        Some(packet.to_bytes())
    }
}

/// The samples of a [`Background`], frame after frame.
enum Source {
    Tone(ToneGenerator),
    Music { samples: Arc<[i16]>, at: usize },
}

impl Source {
    fn fill(&mut self, frame: &mut [i16]) {
        match self {
            Source::Tone(generator) => {
                generator.fill(frame);
            }
            Source::Music { samples, at } => {
                for out in frame.iter_mut() {
                    // Not empty: `Player::new` refuses an empty decoding.
                    *out = samples.get(*at).copied().unwrap_or(0);
                    *at = (*at + 1) % samples.len().max(1);
                }
            }
        }
    }
}

/// One leg of a relay on its thread.
struct Leg {
    rtp: mio::net::UdpSocket,
    rtcp: mio::net::UdpSocket,
    /// The payload types the leg's SDP lists: what its phone may send.
    formats: Vec<PayloadType>,
    /// Where packets for this leg's phone go: its SDP address, then its latched source.
    target: Option<SocketAddr>,
    /// Which sources may feed the leg, made again for each SDP (see [`admission`]).
    admission: Option<Channel>,
    /// What plays to this leg's phone; the other leg is not heard meanwhile.
    player: Option<Box<Player>>,
}

struct RelayState {
    legs: [Leg; 2],
    /// The plan transcoded by, and a transcoder per direction (index: the sending leg).
    plan: Option<Arc<Transcoding>>,
    transcoders: [Option<Transcoder>; 2],
    tap: Option<crate::recording::Tap>,
    counters: Arc<Counters>,
}

struct Worker {
    poll: mio::Poll,
    commands: mpsc::Receiver<Command>,
    /// Relays by slot (the sockets' tokens), free slots, and slots by relay id.
    slots: Vec<Option<RelayState>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    /// The legs with a player, as (slot, leg).
    playing: Vec<(usize, usize)>,
    /// Sockets left with datagrams to read (see [`Worker::readable`]).
    again: Vec<usize>,
    buf: Box<[u8; DATAGRAM]>,
    translated: Vec<u8>,
}

impl Worker {
    fn new(poll: mio::Poll, commands: mpsc::Receiver<Command>) -> Worker {
        Worker {
            poll,
            commands,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            playing: Vec::new(),
            again: Vec::new(),
            buf: Box::new([0; DATAGRAM]),
            translated: Vec::with_capacity(DATAGRAM),
        }
    }

    fn run(mut self) {
        let mut events = mio::Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = if self.again.is_empty() {
                self.next_frame()
                    .map(|at| at.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media thread cannot wait for its sockets: stopping");
                return;
            }
            while let Ok(command) = self.commands.try_recv() {
                if !self.command(command) {
                    return;
                }
            }
            let mut again = std::mem::take(&mut self.again);
            again.extend(
                events
                    .iter()
                    .map(|e| e.token())
                    .filter(|t| *t != WAKER)
                    .map(|t| t.0),
            );
            again.dedup();
            for token in again.drain(..) {
                if !self.readable(token) {
                    self.again.push(token);
                }
            }
            self.play(Instant::now());
        }
    }

    /// Applies a command; false on shutdown.
    fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Add {
                relay,
                legs,
                counters,
            } => self.add(relay, legs, counters),
            Command::Remove { relay } => {
                if let Some(slot) = self.by_id.remove(&relay)
                    && let Some(mut state) = self.slots.get_mut(slot).and_then(Option::take)
                {
                    for leg in &mut state.legs {
                        let _ = self.poll.registry().deregister(&mut leg.rtp);
                        let _ = self.poll.registry().deregister(&mut leg.rtcp);
                    }
                    self.playing.retain(|(s, _)| *s != slot);
                    self.free.push(slot);
                }
            }
            Command::Peer {
                relay,
                leg,
                addr,
                formats,
            } => {
                if let Some(leg) = self.leg(relay, leg) {
                    leg.formats = formats;
                    leg.target = addr;
                    // New SDP for this leg: learn its source again.
                    leg.admission = None;
                }
            }
            Command::Transcoding { relay, plan } => {
                if let Some(state) = self.state(relay)
                    && state.plan != plan
                {
                    state.transcoders = match &plan {
                        None => [None, None],
                        Some(t) => [transcoder(&t.a, &t.b), transcoder(&t.b, &t.a)],
                    };
                    state.plan = plan;
                }
            }
            Command::Tap { relay, tap } => {
                if let Some(state) = self.state(relay) {
                    state.tap = tap;
                }
            }
            Command::Play {
                relay,
                leg,
                mut player,
            } => {
                if let Some(&slot) = self.by_id.get(&relay)
                    && let Some(l) = self.leg(relay, leg)
                {
                    player.next = Instant::now();
                    l.player = Some(player);
                    if !self.playing.contains(&(slot, leg)) {
                        self.playing.push((slot, leg));
                    }
                }
            }
            Command::Prompt {
                relay,
                leg,
                play,
                samples,
            } => {
                if let Some(player) = self
                    .leg(relay, leg)
                    .and_then(|l| l.player.as_mut())
                    .filter(|p| p.play == play)
                    && player.queued.is_none()
                {
                    // One prompt already waiting makes a newer one dropped.
                    player.queued = Some(samples);
                }
            }
            Command::Stop { relay, leg, play } => {
                if let Some(l) = self.leg(relay, leg)
                    && l.player.as_ref().is_some_and(|p| p.play == play)
                {
                    l.player = None;
                }
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn add(
        &mut self,
        relay: u64,
        legs: [(std::net::UdpSocket, std::net::UdpSocket); 2],
        counters: Arc<Counters>,
    ) {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let [a, b] = legs;
        let mut legs = [a, b].map(|(rtp, rtcp)| Leg {
            rtp: mio::net::UdpSocket::from_std(rtp),
            rtcp: mio::net::UdpSocket::from_std(rtcp),
            formats: Vec::new(),
            target: None,
            admission: None,
            player: None,
        });
        for (n, leg) in legs.iter_mut().enumerate() {
            let registry = self.poll.registry();
            let rtp = mio::Token(slot * 4 + n * 2);
            let rtcp = mio::Token(slot * 4 + n * 2 + 1);
            if let Err(e) = registry
                .register(&mut leg.rtp, rtp, mio::Interest::READABLE)
                .and_then(|()| registry.register(&mut leg.rtcp, rtcp, mio::Interest::READABLE))
            {
                // The call goes on without media (its RTP timeout ends it, if set).
                tracing::warn!(error = %e, "cannot watch a relay's sockets");
            }
        }
        let state = RelayState {
            legs,
            plan: None,
            transcoders: [None, None],
            tap: None,
            counters,
        };
        match self.slots.get_mut(slot) {
            Some(free) => *free = Some(state),
            None => self.slots.push(Some(state)),
        }
        self.by_id.insert(relay, slot);
    }

    fn state(&mut self, relay: u64) -> Option<&mut RelayState> {
        let slot = *self.by_id.get(&relay)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    fn leg(&mut self, relay: u64, leg: usize) -> Option<&mut Leg> {
        self.state(relay)?.legs.get_mut(leg)
    }

    /// Reads what is waiting on the socket of `token`: true when all of it was read.
    /// mio wakes once per arrival burst, so a socket left with datagrams (at most
    /// [`BURST`] are read at a time, so that one flooded port does not starve the
    /// others) is read again before the thread waits.
    fn readable(&mut self, token: usize) -> bool {
        let (slot, leg, rtcp) = (token / 4, (token / 2) % 2, token % 2 == 1);
        let Some(Some(state)) = self.slots.get_mut(slot) else {
            return true;
        };
        for _ in 0..BURST {
            let [a, b] = &mut state.legs;
            let (from, to) = if leg == 0 { (a, b) } else { (b, a) };
            let socket = if rtcp { &from.rtcp } else { &from.rtp };
            let (n, source) = match socket.recv_from(&mut self.buf[..]) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                // An ICMP error for an earlier send, say: the next read goes on.
                Err(_) => continue,
            };
            let datagram = self.buf.get(..n).unwrap_or_default();
            let admitted = if rtcp {
                // From where the phone's RTP comes from (or its SDP says).
                from.target.is_none_or(|t| t.ip() == source.ip())
            } else {
                let channel = from
                    .admission
                    .get_or_insert_with(|| admission(from.target, &from.formats));
                let media = matches!(
                    channel.receive(
                        bytes::Bytes::copy_from_slice(datagram),
                        source,
                        Instant::now()
                    ),
                    // RTCP on the RTP port (rtcp-mux) passes as before.
                    Received::Media(_) | Received::Rtcp
                );
                while let Some(event) = channel.poll_event() {
                    if let ChannelEvent::Latched { addr }
                    | ChannelEvent::Relatched { to: addr, .. } = event
                    {
                        from.target = Some(addr);
                    }
                }
                media
            };
            let counters = &state.counters;
            if !admitted {
                counters.ignored.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let heard = if leg == 0 {
                &counters.from_a
            } else {
                &counters.from_b
            };
            heard.fetch_add(1, Ordering::Relaxed);
            if rtcp {
                if let Some(mut target) = to.target {
                    target.set_port(target.port().saturating_add(1));
                    let _ = to.rtcp.send_to(datagram, target);
                }
                continue;
            }
            if let Some(tap) = &state.tap {
                // A recording that cannot keep up loses packets, not the call.
                let _ = tap.try_send((leg == 0, bytes::Bytes::copy_from_slice(datagram)));
            }
            if to.player.is_some() {
                continue;
            }
            let Some(target) = to.target else { continue };
            let packet = match state.transcoders.get_mut(leg).and_then(Option::as_mut) {
                None => datagram,
                Some(t) => {
                    self.translated.clear();
                    match t.translate(datagram, &mut self.translated) {
                        Ok(true) => &self.translated[..],
                        // Not for the other leg (an unnegotiated payload type, a
                        // payload that does not decode): dropped.
                        _ => continue,
                    }
                }
            };
            if to.rtp.send_to(packet, target).is_ok() {
                let sent = if leg == 0 {
                    &counters.a_to_b
                } else {
                    &counters.b_to_a
                };
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        false
    }

    /// When the next frame of a player is due.
    fn next_frame(&self) -> Option<Instant> {
        self.playing
            .iter()
            .filter_map(|&(slot, leg)| {
                let state = self.slots.get(slot)?.as_ref()?;
                Some(state.legs.get(leg)?.player.as_ref()?.next)
            })
            .min()
    }

    /// Sends the frames due by `now`, and forgets the players that have stopped.
    fn play(&mut self, now: Instant) {
        let slots = &mut self.slots;
        self.playing.retain(|&(slot, leg)| {
            let Some(Some(state)) = slots.get_mut(slot) else {
                return false;
            };
            let Some(leg) = state.legs.get_mut(leg) else {
                return false;
            };
            let Some(player) = leg.player.as_mut() else {
                return false;
            };
            while player.next <= now {
                let Some(packet) = player.packet() else {
                    leg.player = None;
                    return false;
                };
                if let Some(target) = leg.target {
                    let _ = leg.rtp.send_to(&packet, target);
                }
                player.next += FRAME;
                // A thread held up for long skips the frames it missed rather
                // than bursting them.
                if now.saturating_duration_since(player.next) > FRAME * 5 {
                    player.next = now + FRAME;
                }
            }
            true
        });
    }
}

/// The transcoder of one direction, if both formats have a codec here.
fn transcoder(from: &Format, to: &Format) -> Option<Transcoder> {
    Some(Transcoder::new(from.side()?, to.side()?))
}

/// Which sources may feed a leg: a [`Channel`] per SDP of the leg (pbxkit-rtp's
/// latching rules: the SDP address at once, another source after 4 packets in
/// sequence, and a latched source replaced only after 1 s of silence), so that a
/// stranger sending to the port first or alongside does not take the stream. Only
/// its admission is used: the relay forwards the packets as they came.
fn admission(remote: Option<SocketAddr>, formats: &[PayloadType]) -> Channel {
    let first = formats.first().copied().unwrap_or(PayloadType::PCMU);
    let mut config = ChannelConfig::new(first, 8000, crate::ids::random_u64());
    config.also_accepted = formats.to_vec();
    config.remote = remote;
    config.latching = Latching::Comedia;
    Channel::new(config, Instant::now())
}
