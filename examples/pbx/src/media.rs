//! The media relay: the PBX anchors every call's RTP (and RTCP) on a pair of its own
//! ports per leg, rewrites the SDP so that each phone sends to the PBX, and forwards
//! packets between the legs.
//!
//! NAT (comedia): a leg's peer is first taken from its SDP, then latched to the
//! source of the first packet that arrives on that leg's port; once latched, packets
//! from any other source are ignored (they may be spoofed), until the SDP of that leg
//! changes.
//!
//! SDP origin: the PBX is the session's originator towards each phone, so every SDP a
//! leg receives carries the leg's own `o=` line (session id fixed per leg, version
//! incremented on each description). Peers such as Asterisk ignore a re-offer whose
//! version did not change, and a transfer must not show a phone another session's origin.

use crate::codecs::Format;
use crate::codecs::Transcoding;
use pbxkit_rtp::channel::{Channel, ChannelConfig, Event as ChannelEvent, Latching, Received};
use pbxkit_rtp::tones::{ToneGenerator, ToneSpec};
use pbxkit_rtp::transcode::Transcoder;
use pbxkit_rtp::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
use pbxkit_sip::ByteStr;
use pbxkit_sip::sdp::{Connection, Direction, Session};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Even ports (RTP) and the odd one above (RTCP) from the configured range.
#[derive(Debug)]
pub(crate) struct PortPool {
    ip: IpAddr,
    min: u16,
    max: u16,
    next: AtomicU16,
}

impl PortPool {
    pub(crate) fn new(ip: IpAddr, min: u16, max: u16) -> PortPool {
        // RTP on even ports; a configured range near 65535 must not overflow.
        let min = min.saturating_add(min % 2);
        PortPool {
            ip,
            min,
            max,
            next: AtomicU16::new(min),
        }
    }

    /// Binds the next free RTP/RTCP pair, trying every pair of the range once, now:
    /// binding a UDP socket to an address does not block. Needs the runtime's
    /// context.
    pub(crate) fn bind_pair(&self) -> Option<(UdpSocket, UdpSocket)> {
        let pairs = (self.max.saturating_sub(self.min) / 2).max(1);
        let bind = |port: u16| {
            let s = std::net::UdpSocket::bind(SocketAddr::new(self.ip, port)).ok()?;
            s.set_nonblocking(true).ok()?;
            UdpSocket::from_std(s).ok()
        };
        for _ in 0..pairs {
            let port = self.next.fetch_add(2, Ordering::Relaxed);
            let port = if port < self.min || port.checked_add(1).is_none_or(|p| p > self.max) {
                self.next
                    .store(self.min.saturating_add(2), Ordering::Relaxed);
                self.min
            } else {
                port
            };
            let Some(rtcp_port) = port.checked_add(1).filter(|p| *p <= self.max) else {
                continue;
            };
            let Some(rtp) = bind(port) else {
                continue;
            };
            let Some(rtcp) = bind(rtcp_port) else {
                continue;
            };
            return Some((rtp, rtcp));
        }
        None
    }
}

/// Counters of a relay, for tests and logs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// RTP packets forwarded A → B and B → A.
    pub(crate) a_to_b: AtomicU64,
    pub(crate) b_to_a: AtomicU64,
    /// Packets dropped because they came from an unexpected source.
    pub(crate) ignored: AtomicU64,
    /// Packets (RTP and RTCP) admitted from leg A's and from leg B's phone.
    pub(crate) from_a: AtomicU64,
    pub(crate) from_b: AtomicU64,
    /// Whether leg A's and leg B's phone is to send media: the audio of its SDP is
    /// sendrecv (not on hold, not a one-way stream).
    pub(crate) a_sends: AtomicBool,
    pub(crate) b_sends: AtomicBool,
}

/// Whether a call's phones still send media (Asterisk's `rtptimeout`): a phone
/// that is to send (see [`Counters::a_sends`]) and from which nothing was admitted
/// for `timeout` is gone (unplugged, out of coverage, crashed) and its call is to
/// end. A phone on hold, or with no SDP yet, is not expected to send; the time
/// counts again from when it is.
#[derive(Debug)]
pub(crate) struct Silence {
    timeout: Duration,
    /// Per side (A, B): the packets counted when last seen to change, and when.
    sides: [(u64, Instant); 2],
}

impl Silence {
    pub(crate) fn new(timeout: Duration, now: Instant) -> Silence {
        Silence {
            timeout,
            sides: [(0, now); 2],
        }
    }

    /// Looks at `counters` at `now`: true once a side has been silent for the
    /// timeout.
    pub(crate) fn check(&mut self, counters: &Counters, now: Instant) -> bool {
        let sides = [
            (&counters.from_a, &counters.a_sends),
            (&counters.from_b, &counters.b_sends),
        ];
        let mut silent = false;
        for (side, (count, sends)) in self.sides.iter_mut().zip(sides) {
            let n = count.load(Ordering::Relaxed);
            if !sends.load(Ordering::Relaxed) || n != side.0 {
                *side = (n, now);
            } else if now.saturating_duration_since(side.1) >= self.timeout {
                silent = true;
            }
        }
        silent
    }

    /// How often to look: often enough to end a call within a quarter of the
    /// timeout, at most every 250 ms and at least every 30 s.
    pub(crate) fn period(&self) -> Duration {
        (self.timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
    }
}

/// One leg's ports and where its phone is.
struct Leg {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    port: u16,
    /// Where packets for this leg's phone go: its SDP address, then its latched source.
    target: watch::Sender<Option<SocketAddr>>,
    /// Bumped when the leg's SDP changes, so that its latch starts over.
    epoch: watch::Sender<u64>,
    /// The payload types the leg's SDP lists: what its phone may send.
    formats: Arc<Mutex<Vec<PayloadType>>>,
    /// The `o=` session id and last version this leg's phone was given.
    origin: Mutex<Origin>,
    /// Set while the PBX plays a tone to this leg's phone: the other leg's media is
    /// not forwarded to it meanwhile.
    muted: Arc<AtomicBool>,
}

/// What plays to a leg's phone between prompts.
#[derive(Debug, Clone)]
pub(crate) enum Background {
    /// A generated tone (ringback, busy, the built-in music on hold).
    Tone(ToneSpec),
    /// A music-on-hold class, looped.
    Music(Arc<crate::moh::Music>),
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
                    // Not empty: a class has at least one file, and an empty
                    // decoding is refused when the source is made.
                    *out = samples.get(*at).copied().unwrap_or(0);
                    *at = (*at + 1) % samples.len().max(1);
                }
            }
        }
    }
}

/// A tone playing to one leg's phone; it stops when this is dropped.
pub(crate) struct Playing {
    task: tokio::task::JoinHandle<()>,
    muted: Arc<AtomicBool>,
    /// Prompts (samples at the codec's rate) played over the tone, which resumes
    /// after each.
    prompts: tokio::sync::mpsc::Sender<Vec<i16>>,
    rate: u32,
}

impl Playing {
    /// Plays `samples` (at [`Playing::rate`]) in place of the tone from the next
    /// packet on; one prompt already waiting to play makes this one dropped.
    pub(crate) fn prompt(&self, samples: Vec<i16>) {
        let _ = self.prompts.try_send(samples);
    }

    /// The sample rate prompts are given in.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }
}

impl Drop for Playing {
    fn drop(&mut self) {
        self.task.abort();
        self.muted.store(false, Ordering::Relaxed);
    }
}

/// The origin (`o=` line) a phone has seen from the PBX: moved with the phone when a
/// transfer puts it on another call's relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    session_id: String,
    version: u64,
}

impl Origin {
    fn new() -> Origin {
        Origin {
            session_id: crate::ids::numeric_id(),
            version: 0,
        }
    }
}

/// The media of one call; the relay stops when this is dropped.
pub(crate) struct Relay {
    a: Leg,
    b: Leg,
    /// Set when the legs use different codecs (see [`crate::codecs`]).
    transcoding: watch::Sender<Option<Arc<Transcoding>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) counters: Arc<Counters>,
    /// Where a copy of each RTP packet admitted goes while the call is recorded
    /// (`true`: from leg A).
    tap: watch::Sender<Option<crate::recording::Tap>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Relay {
    /// Allocates ports for both legs and starts forwarding, without awaiting (the
    /// shell never waits); in the runtime's context.
    pub(crate) fn start(pool: &PortPool) -> Option<Relay> {
        let a = pool.bind_pair()?;
        let b = pool.bind_pair()?;
        Some(Relay::with_sockets(a, b))
    }

    fn with_sockets(
        (a_rtp, a_rtcp): (UdpSocket, UdpSocket),
        (b_rtp, b_rtcp): (UdpSocket, UdpSocket),
    ) -> Relay {
        let leg = |rtp: UdpSocket, rtcp: UdpSocket| {
            let port = rtp.local_addr().map_or(0, |a| a.port());
            Leg {
                rtp: Arc::new(rtp),
                rtcp: Arc::new(rtcp),
                port,
                target: watch::channel(None).0,
                epoch: watch::channel(0).0,
                formats: Arc::default(),
                origin: Mutex::new(Origin::new()),
                muted: Arc::default(),
            }
        };
        let a = leg(a_rtp, a_rtcp);
        let b = leg(b_rtp, b_rtcp);
        let counters = Arc::new(Counters::default());
        let transcoding = watch::channel(None).0;
        let tap = watch::channel(None).0;
        let mut tasks = Vec::new();
        for rtcp in [false, true] {
            let (a_sock, b_sock) = if rtcp {
                (&a.rtcp, &b.rtcp)
            } else {
                (&a.rtp, &b.rtp)
            };
            // RTCP is relayed as it is, also when the media is transcoded.
            let codecs = || (!rtcp).then(|| transcoding.subscribe());
            tasks.push(tokio::spawn(forward(
                Path {
                    from: a_sock.clone(),
                    epoch: a.epoch.subscribe(),
                    formats: a.formats.clone(),
                    latch: a.target.clone(),
                    to: b_sock.clone(),
                    to_muted: b.muted.clone(),
                    other_peer: b.target.subscribe(),
                    rtcp,
                    a_to_b: true,
                    tap: tap.subscribe(),
                },
                codecs(),
                counters.clone(),
            )));
            tasks.push(tokio::spawn(forward(
                Path {
                    from: b_sock.clone(),
                    epoch: b.epoch.subscribe(),
                    formats: b.formats.clone(),
                    latch: b.target.clone(),
                    to: a_sock.clone(),
                    to_muted: a.muted.clone(),
                    other_peer: a.target.subscribe(),
                    rtcp,
                    a_to_b: false,
                    tap: tap.subscribe(),
                },
                codecs(),
                counters.clone(),
            )));
        }
        Relay {
            a,
            b,
            transcoding,
            tasks,
            counters,
            tap,
        }
    }

    /// Starts (`Some`) or stops (`None`) handing copies of the RTP both legs send
    /// to a recording.
    pub(crate) fn set_tap(&self, tap: Option<crate::recording::Tap>) {
        self.tap.send_replace(tap);
    }

    /// Runs `task` (about this relay) until the relay stops.
    pub(crate) fn attach(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Transcodes between the legs' formats from now on (`None`: relay as is).
    pub(crate) fn set_transcoding(&self, transcoding: Option<Transcoding>) {
        let new = transcoding.map(Arc::new);
        self.transcoding.send_if_modified(|old| {
            let changed = *old != new;
            *old = new;
            changed
        });
    }

    /// Plays `tone` to the phone on a leg, in `format`, from the leg's own port (where
    /// the phone expects media), muting what the other leg sends it until the
    /// returned [`Playing`] is dropped. `None` when the format has no codec here.
    pub(crate) fn play(
        &self,
        leg_a: bool,
        background: Background,
        format: &Format,
    ) -> Option<Playing> {
        let leg = self.leg(leg_a);
        let mut codec = format.codec()?;
        let pt = PayloadType::new(format.payload_type)?;
        let mut generator = match background {
            Background::Tone(tone) => {
                Source::Tone(ToneGenerator::new(tone, codec.sample_rate(), -13.0).ok()?)
            }
            Background::Music(music) => {
                let samples = music.at(codec.sample_rate()).filter(|s| !s.is_empty())?;
                Source::Music { samples, at: 0 }
            }
        };
        let socket = leg.rtp.clone();
        let peer = leg.target.subscribe();
        leg.muted.store(true, Ordering::Relaxed);
        let rate = codec.sample_rate();
        let (prompts, mut queued) = tokio::sync::mpsc::channel::<Vec<i16>>(1);
        let task = tokio::spawn(async move {
            // 20 ms packets, with a sequence and timestamp of the tone's own stream.
            let samples = codec.sample_rate() as usize / 50;
            let step = codec.clock_rate() / 50;
            let ssrc = Ssrc(crate::ids::random_u64() as u32);
            let (mut seq, mut ts) = (SeqNo(crate::ids::random_u64() as u16), RtpTimestamp(0));
            let mut frame = vec![0i16; samples];
            let mut payload = Vec::with_capacity(samples);
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
            // The prompt playing and how far it is.
            let mut prompt: (Vec<i16>, usize) = (Vec::new(), 0);
            loop {
                tick.tick().await;
                if prompt.1 >= prompt.0.len()
                    && let Ok(next) = queued.try_recv()
                {
                    prompt = (next, 0);
                }
                match prompt.0.get(prompt.1..) {
                    Some(rest) if !rest.is_empty() => {
                        // The prompt's last frame is padded with silence.
                        let samples = rest.iter().chain(std::iter::repeat(&0));
                        for (out, sample) in frame.iter_mut().zip(samples) {
                            *out = *sample;
                        }
                        prompt.1 += frame.len();
                    }
                    _ => {
                        generator.fill(&mut frame);
                    }
                }
                payload.clear();
                if codec.encode(&frame, &mut payload).is_err() {
                    return;
                }
                let packet = RtpPacket::new(pt, seq, ts, ssrc, payload.clone().into());
                let target = *peer.borrow();
                if let Some(target) = target {
                    let _ = socket.send_to(&packet.to_bytes(), target).await;
                }
                seq = seq.next();
                ts = ts.wrapping_add(step);
            }
        });
        Some(Playing {
            task,
            muted: leg.muted.clone(),
            prompts,
            rate,
        })
    }

    /// Records the media address a leg announced in its SDP (the latch starts over).
    pub(crate) fn set_peer_from_sdp(&self, leg_a: bool, sdp: &Session) {
        let leg = self.leg(leg_a);
        let audio = sdp
            .media
            .iter()
            .find(|m| m.kind.as_str() == "audio" && m.port != 0);
        let addr = audio.and_then(|m| {
            let ip: IpAddr = sdp.media_address(m)?.parse().ok()?;
            Some(SocketAddr::new(ip, m.port))
        });
        let formats: Vec<PayloadType> = audio
            .map(|m| m.payload_types().filter_map(PayloadType::new).collect())
            .unwrap_or_default();
        match leg.formats.lock() {
            Ok(mut f) => *f = formats,
            Err(poisoned) => *poisoned.into_inner() = formats,
        }
        let sends = addr.is_some()
            && audio.is_some_and(|m| m.direction(sdp.direction()) == Direction::SendRecv);
        let flag = if leg_a {
            &self.counters.a_sends
        } else {
            &self.counters.b_sends
        };
        flag.store(sends, Ordering::Relaxed);
        let _ = leg.target.send_replace(addr);
        leg.epoch.send_modify(|e| *e += 1);
    }

    fn leg(&self, leg_a: bool) -> &Leg {
        if leg_a { &self.a } else { &self.b }
    }

    /// The origin the phone on a leg has been given so far.
    pub(crate) fn origin(&self, leg_a: bool) -> Origin {
        match self.leg(leg_a).origin.lock() {
            Ok(o) => o.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Continues a phone's origin on a leg (the phone came from another relay).
    pub(crate) fn set_origin(&self, leg_a: bool, origin: Origin) {
        match self.leg(leg_a).origin.lock() {
            Ok(mut o) => *o = origin,
            Err(poisoned) => *poisoned.into_inner() = origin,
        }
    }

    /// The SDP to give a leg: the other leg's description with our address, this
    /// leg's port and origin in it, and rtcp attributes dropped (RTCP is on port + 1).
    pub(crate) fn rewrite(&self, for_leg_a: bool, sdp: &Session, ip: IpAddr) -> Session {
        let leg = self.leg(for_leg_a);
        let port = leg.port;
        let mut out = sdp.clone();
        let conn = Connection {
            addr_type: ByteStr::from_static(if ip.is_ipv4() { "IP4" } else { "IP6" }),
            address: ByteStr::from(ip.to_string()),
        };
        out.connection = Some(conn.clone());
        let (session_id, version) = {
            let mut o = match leg.origin.lock() {
                Ok(o) => o,
                Err(poisoned) => poisoned.into_inner(),
            };
            o.version += 1;
            (o.session_id.clone(), o.version)
        };
        out.origin = pbxkit_sip::sdp::Origin {
            username: ByteStr::from_static("pbxkit"),
            session_id: ByteStr::from(session_id),
            session_version: version,
            addr_type: conn.addr_type.clone(),
            address: conn.address.clone(),
        };
        let mut first_audio = true;
        for m in &mut out.media {
            if m.kind.as_str() == "audio" && m.port != 0 && first_audio {
                first_audio = false;
                m.port = port;
                m.connection = None;
                m.attributes.retain(|a| a.name.as_str() != "rtcp");
            } else {
                // Only one audio stream is relayed; others are refused (port 0).
                m.port = 0;
                m.connection = None;
            }
        }
        out
    }
}

/// One direction of a relayed stream: what arrives on `from` (one leg's socket) goes
/// out of `to` (the other leg's) towards the other leg's peer.
struct Path {
    from: Arc<UdpSocket>,
    /// Bumped when this leg's SDP changes.
    epoch: watch::Receiver<u64>,
    /// The payload types this leg's SDP lists.
    formats: Arc<Mutex<Vec<PayloadType>>>,
    /// Where this leg's phone is, once latched (read by the other direction).
    latch: watch::Sender<Option<SocketAddr>>,
    to: Arc<UdpSocket>,
    /// Set while the PBX plays a tone to the other leg's phone.
    to_muted: Arc<AtomicBool>,
    other_peer: watch::Receiver<Option<SocketAddr>>,
    rtcp: bool,
    a_to_b: bool,
    /// A recording's tap, while there is one.
    tap: watch::Receiver<Option<crate::recording::Tap>>,
}

/// Which sources may feed a leg: a [`Channel`] per SDP of the leg (pbxkit-rtp's
/// latching rules: the SDP address at once, another source after 4 packets in
/// sequence, and a latched source replaced only after 1 s of silence), so that a
/// stranger sending to the port first or alongside does not take the stream. Only
/// its admission is used: the relay forwards the packets as they came.
fn admission(remote: Option<SocketAddr>, formats: &Mutex<Vec<PayloadType>>) -> Channel {
    let formats = match formats.lock() {
        Ok(f) => f.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let first = formats.first().copied().unwrap_or(PayloadType::PCMU);
    let mut config = ChannelConfig::new(first, 8000, crate::ids::random_u64());
    config.also_accepted = formats;
    config.remote = remote;
    config.latching = Latching::Comedia;
    Channel::new(config, std::time::Instant::now())
}

/// Forwards one direction, admitting what this leg's phone sends by [`admission`]
/// (RTCP: from the latched phone's address only), and transcoding RTP when
/// `codecs` says the legs differ.
async fn forward(
    path: Path,
    mut codecs: Option<watch::Receiver<Option<Arc<Transcoding>>>>,
    counters: Arc<Counters>,
) {
    let Path {
        from,
        mut epoch,
        formats,
        latch,
        to,
        to_muted,
        other_peer,
        rtcp,
        a_to_b,
        mut tap,
    } = path;
    // The recording's tap, taken again only when it changes: no lock per packet.
    let mut recording: Option<crate::recording::Tap> = None;
    let mut buf = vec![0u8; 2048];
    let mut translated = Vec::with_capacity(2048);
    let mut transcoder: Option<Transcoder> = None;
    // Rebuilt for each SDP of the leg (the address it names at the time).
    let mut channel: Option<Channel> = None;
    loop {
        let codecs_changed = async {
            match codecs.as_mut() {
                Some(c) => c.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = epoch.changed() => {
                if changed.is_err() { return; }
                // New SDP for this leg: learn its source again.
                channel = None;
            }
            alive = codecs_changed => {
                if !alive {
                    codecs = None;
                    continue;
                }
                let plan = codecs.as_ref().and_then(|c| c.borrow().clone());
                transcoder = plan.and_then(|t| {
                    let (mine, theirs) = if a_to_b { (&t.a, &t.b) } else { (&t.b, &t.a) };
                    Some(Transcoder::new(mine.side()?, theirs.side()?))
                });
            }
            received = from.recv_from(&mut buf) => {
                let Ok((n, source)) = received else { continue };
                let admitted = if rtcp {
                    // From where the phone's RTP comes from (or its SDP says).
                    latch.borrow().is_none_or(|l| l.ip() == source.ip())
                } else {
                    let ch = channel.get_or_insert_with(|| admission(*latch.borrow(), &formats));
                    let datagram = bytes::Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    let media = matches!(
                        ch.receive(datagram, source, std::time::Instant::now()),
                        // RTCP on the RTP port (rtcp-mux) passes as before.
                        Received::Media(_) | Received::Rtcp
                    );
                    while let Some(event) = ch.poll_event() {
                        if let ChannelEvent::Latched { addr } | ChannelEvent::Relatched { to: addr, .. } = event {
                            let _ = latch.send_replace(Some(addr));
                        }
                    }
                    media
                };
                if !admitted {
                    counters.ignored.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let heard = if a_to_b { &counters.from_a } else { &counters.from_b };
                heard.fetch_add(1, Ordering::Relaxed);
                if !rtcp {
                    if tap.has_changed().unwrap_or(false) {
                        recording = tap.borrow_and_update().clone();
                    }
                    if let Some(tap) = &recording {
                        // A recording that cannot keep up loses packets, not the call.
                        let copy = bytes::Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        let _ = tap.try_send((a_to_b, copy));
                    }
                }
                if to_muted.load(Ordering::Relaxed) && !rtcp {
                    continue;
                }
                let target = *other_peer.borrow();
                let Some(mut target) = target else { continue };
                if rtcp {
                    target.set_port(target.port().saturating_add(1));
                }
                let received = buf.get(..n).unwrap_or_default();
                let packet = match transcoder.as_mut() {
                    None => received,
                    Some(t) => {
                        translated.clear();
                        match t.translate(received, &mut translated) {
                            Ok(true) => &translated[..],
                            // Not for the other leg (an unnegotiated payload type,
                            // a payload that does not decode): dropped.
                            _ => continue,
                        }
                    }
                };
                if to.send_to(packet, target).await.is_ok() && !rtcp {
                    let c = if a_to_b { &counters.a_to_b } else { &counters.b_to_a };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_that_is_to_send_and_does_not_is_silent_after_the_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let counters = Counters::default();
        let mut silence = Silence::new(s(10), t0);
        // No SDP yet: nobody is expected to send.
        assert!(!silence.check(&counters, t0 + s(60)));
        // A sends; packets keep it alive, then it stops.
        counters.a_sends.store(true, Ordering::Relaxed);
        assert!(!silence.check(&counters, t0 + s(61)));
        counters.from_a.store(5, Ordering::Relaxed);
        assert!(!silence.check(&counters, t0 + s(70)));
        assert!(!silence.check(&counters, t0 + s(79)));
        assert!(silence.check(&counters, t0 + s(80)));
        // On hold it is not expected to send; the time counts again when it resumes.
        counters.a_sends.store(false, Ordering::Relaxed);
        assert!(!silence.check(&counters, t0 + s(200)));
        counters.a_sends.store(true, Ordering::Relaxed);
        assert!(!silence.check(&counters, t0 + s(209)));
        assert!(silence.check(&counters, t0 + s(210)));
        // B is looked at the same way.
        counters.a_sends.store(false, Ordering::Relaxed);
        counters.b_sends.store(true, Ordering::Relaxed);
        let mut fresh = Silence::new(s(10), t0);
        assert!(!fresh.check(&counters, t0 + s(5)));
        assert!(fresh.check(&counters, t0 + s(15)));
        assert_eq!(fresh.period(), Duration::from_millis(2500));
        assert_eq!(Silence::new(s(7200), t0).period(), s(30));
    }

    #[tokio::test]
    async fn ranges_at_the_top_of_the_port_space_do_not_overflow() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // No even pair fits in 65535..=65535: no pair, no panic.
        assert!(PortPool::new(ip, 65535, 65535).bind_pair().is_none());
        assert!(
            PortPool::new(ip, 65534, 65535)
                .bind_pair()
                .is_some_and(|(a, b)| {
                    a.local_addr().unwrap().port() == 65534
                        && b.local_addr().unwrap().port() == 65535
                })
        );
    }
}
