//! The media relay: the PBX anchors every call's RTP (and RTCP) on a pair of its own
//! ports per leg, rewrites the SDP so that each phone sends to the PBX, and forwards
//! packets between the legs.
//!
//! A [`Relay`] is the call's handle; its packets are the business of a media thread
//! ([`worker`]): a few threads for all the calls, each waiting on all of its sockets
//! at once, so that relaying costs no task, wake-up or copy per packet and direction.
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

mod worker;

pub(crate) use worker::MediaThreads;

use crate::codecs::Format;
use crate::codecs::Transcoding;
use pbxkit_rtp::PayloadType;
use pbxkit_rtp::tones::ToneSpec;
use pbxkit_sip::ByteStr;
use pbxkit_sip::sdp::{Connection, Direction, Session};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use worker::{Command, Thread};

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

    /// Binds the next free RTP/RTCP pair for a task of the runtime (an
    /// application's, a conference room's). Needs the runtime's context.
    pub(crate) fn bind_pair(&self) -> Option<(UdpSocket, UdpSocket)> {
        let (rtp, rtcp) = self.bind_std_pair()?;
        Some((
            UdpSocket::from_std(rtp).ok()?,
            UdpSocket::from_std(rtcp).ok()?,
        ))
    }

    /// Binds the next free RTP/RTCP pair, non-blocking, trying every pair of the
    /// range once, now: binding a UDP socket to an address does not block.
    pub(crate) fn bind_std_pair(&self) -> Option<(std::net::UdpSocket, std::net::UdpSocket)> {
        let pairs = (self.max.saturating_sub(self.min) / 2).max(1);
        let bind = |port: u16| {
            let s = std::net::UdpSocket::bind(SocketAddr::new(self.ip, port)).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
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

/// What plays to a leg's phone between prompts.
#[derive(Debug, Clone)]
pub(crate) enum Background {
    /// A generated tone (ringback, busy, the built-in music on hold).
    Tone(ToneSpec),
    /// A music-on-hold class, looped.
    Music(Arc<crate::moh::Music>),
}

/// A sound playing to one leg's phone (the other leg is not heard meanwhile); it
/// stops when this is dropped.
pub(crate) struct Playing {
    thread: Thread,
    relay: u64,
    leg: usize,
    play: u64,
    /// The sample rate of the leg's codec: prompts are given at it.
    rate: u32,
}

impl Playing {
    /// Plays `samples` (at [`Playing::rate`]) in place of the sound from the next
    /// frame on; one prompt already waiting to play makes this one dropped.
    pub(crate) fn prompt(&self, samples: Vec<i16>) {
        self.thread.send(Command::Prompt {
            relay: self.relay,
            leg: self.leg,
            play: self.play,
            samples,
        });
    }

    /// The sample rate prompts are given in.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }
}

impl Drop for Playing {
    fn drop(&mut self) {
        self.thread.send(Command::Stop {
            relay: self.relay,
            leg: self.leg,
            play: self.play,
        });
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

/// Relays and players get ids unique in the process, so that a late command for
/// one that has ended cannot reach another.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The media of one call: its ports on a media thread, which forwards between its
/// legs (see [`worker`]); the relay stops and its ports close when this is dropped.
pub(crate) struct Relay {
    thread: Thread,
    id: u64,
    /// Each leg's RTP port, and the origin its phone has been given.
    ports: [u16; 2],
    origins: [Mutex<Origin>; 2],
    /// Tasks about this relay (its silence watch), stopped with it.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) counters: Arc<Counters>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.thread.send(Command::Remove { relay: self.id });
    }
}

/// Index of a leg: A (the caller's side) is 0.
fn index(leg_a: bool) -> usize {
    if leg_a { 0 } else { 1 }
}

impl Relay {
    /// Allocates ports for both legs and hands them to a media thread, without
    /// awaiting (the shell never waits).
    pub(crate) fn start(pool: &PortPool, threads: &MediaThreads) -> Option<Relay> {
        let a = pool.bind_std_pair()?;
        let b = pool.bind_std_pair()?;
        let port = |s: &std::net::UdpSocket| s.local_addr().map_or(0, |a| a.port());
        let ports = [port(&a.0), port(&b.0)];
        let counters = Arc::new(Counters::default());
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let thread = threads.pick();
        thread.send(Command::Add {
            relay: id,
            legs: [a, b],
            counters: counters.clone(),
        });
        Some(Relay {
            thread,
            id,
            ports,
            origins: [Mutex::new(Origin::new()), Mutex::new(Origin::new())],
            tasks: Vec::new(),
            counters,
        })
    }

    /// Starts (`Some`) or stops (`None`) handing copies of the RTP both legs send
    /// to a recording.
    pub(crate) fn set_tap(&self, tap: Option<crate::recording::Tap>) {
        self.thread.send(Command::Tap {
            relay: self.id,
            tap,
        });
    }

    /// Runs `task` (about this relay) until the relay stops.
    pub(crate) fn attach(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Transcodes between the legs' formats from now on (`None`: relay as is).
    pub(crate) fn set_transcoding(&self, transcoding: Option<Transcoding>) {
        self.thread.send(Command::Transcoding {
            relay: self.id,
            plan: transcoding.map(Arc::new),
        });
    }

    /// Plays `background` to the phone on a leg, in `format`, from the leg's own
    /// port (where the phone expects media), instead of what the other leg sends,
    /// until the returned [`Playing`] is dropped. `None` when the format has no codec
    /// here. A newer sound on the leg replaces this one.
    pub(crate) fn play(
        &self,
        leg_a: bool,
        background: Background,
        format: &Format,
    ) -> Option<Playing> {
        let play = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let player = worker::Player::new(play, background, format)?;
        let rate = player.rate();
        let leg = index(leg_a);
        self.thread.send(Command::Play {
            relay: self.id,
            leg,
            player: Box::new(player),
        });
        Some(Playing {
            thread: self.thread.clone(),
            relay: self.id,
            leg,
            play,
            rate,
        })
    }

    /// Records the media address a leg announced in its SDP (the latch starts over).
    pub(crate) fn set_peer_from_sdp(&self, leg_a: bool, sdp: &Session) {
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
        let sends = addr.is_some()
            && audio.is_some_and(|m| m.direction(sdp.direction()) == Direction::SendRecv);
        let flag = if leg_a {
            &self.counters.a_sends
        } else {
            &self.counters.b_sends
        };
        flag.store(sends, Ordering::Relaxed);
        self.thread.send(Command::Peer {
            relay: self.id,
            leg: index(leg_a),
            addr,
            formats,
        });
    }

    fn origin_of(&self, leg_a: bool) -> std::sync::MutexGuard<'_, Origin> {
        let origin = &self.origins[index(leg_a)];
        match origin.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The origin the phone on a leg has been given so far.
    pub(crate) fn origin(&self, leg_a: bool) -> Origin {
        self.origin_of(leg_a).clone()
    }

    /// Continues a phone's origin on a leg (the phone came from another relay).
    pub(crate) fn set_origin(&self, leg_a: bool, origin: Origin) {
        *self.origin_of(leg_a) = origin;
    }

    /// The SDP to give a leg: the other leg's description with our address, this
    /// leg's port and origin in it, and rtcp attributes dropped (RTCP is on port + 1).
    pub(crate) fn rewrite(&self, for_leg_a: bool, sdp: &Session, ip: IpAddr) -> Session {
        let port = self.ports[index(for_leg_a)];
        let mut out = sdp.clone();
        let conn = Connection {
            addr_type: ByteStr::from_static(if ip.is_ipv4() { "IP4" } else { "IP6" }),
            address: ByteStr::from(ip.to_string()),
        };
        out.connection = Some(conn.clone());
        let (session_id, version) = {
            let mut o = self.origin_of(for_leg_a);
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

    /// A phone on loopback: a blocking socket with a bounded wait.
    fn phone() -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    fn sdp_for(phone: &std::net::UdpSocket) -> Session {
        let port = phone.local_addr().unwrap().port();
        Session::parse_body(
            format!(
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn rtp(seq: u16) -> Vec<u8> {
        pbxkit_rtp::RtpPacket::new(
            PayloadType::PCMU,
            pbxkit_rtp::SeqNo(seq),
            pbxkit_rtp::RtpTimestamp(u32::from(seq) * 160),
            pbxkit_rtp::Ssrc(42),
            bytes::Bytes::from_static(&[0xFF; 160]),
        )
        .to_bytes()
        .to_vec()
    }

    #[test]
    fn a_media_thread_relays_both_ways_ignores_strangers_and_plays_over_the_other_leg() {
        let threads = MediaThreads::start(1).unwrap();
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 42000, 42999);
        let relay = Relay::start(&pool, &threads).unwrap();
        let (alice, bob, stranger) = (phone(), phone(), phone());
        relay.set_peer_from_sdp(true, &sdp_for(&alice));
        relay.set_peer_from_sdp(false, &sdp_for(&bob));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // Each phone sends to the port the other side's description gives it.
        let port_of = |leg_a: bool| {
            let offer = relay.rewrite(leg_a, &sdp_for(&alice), ip);
            SocketAddr::new(ip, offer.media[0].port)
        };
        let (to_a, to_b) = (port_of(true), port_of(false));
        let mut buf = [0u8; 2048];
        alice.send_to(&rtp(1), to_a).unwrap();
        let (n, from) = bob.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&rtp(1)[..], to_b));
        bob.send_to(&rtp(7), to_b).unwrap();
        let (n, from) = alice.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&rtp(7)[..], to_a));
        // A stranger sending to A's port is not heard by B; A still is.
        stranger.send_to(&rtp(99), to_a).unwrap();
        alice.send_to(&rtp(2), to_a).unwrap();
        let (n, _) = bob.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &rtp(2)[..]);
        assert_eq!(relay.counters.ignored.load(Ordering::Relaxed), 1);
        // A tone for A replaces B's audio: what A gets is the tone's own stream.
        let format = Format::received_by(&sdp_for(&alice)).unwrap();
        let tone = pbxkit_rtp::tones::Country::Fr.tone(pbxkit_rtp::tones::CallProgress::Ringback);
        let playing = relay.play(true, Background::Tone(tone), &format).unwrap();
        let (n, _) = alice.recv_from(&mut buf).unwrap();
        let packet =
            pbxkit_rtp::RtpPacket::parse(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap();
        assert_ne!(packet.ssrc(), pbxkit_rtp::Ssrc(42));
        // The thread counted A's packets before it played (one thread, in order).
        assert_eq!(relay.counters.a_to_b.load(Ordering::Relaxed), 2);
        drop(playing);
        // Stopped: B is heard again (tone packets already sent are skipped).
        bob.send_to(&rtp(8), to_b).unwrap();
        let heard_b = (0..100).any(|_| {
            let (n, _) = alice.recv_from(&mut buf).unwrap();
            buf[..n] == rtp(8)[..]
        });
        assert!(heard_b);
        // Dropping the relay closes its ports.
        drop(relay);
        let closed = (0..200).any(|_| {
            std::net::UdpSocket::bind(to_a).is_ok() || {
                std::thread::sleep(Duration::from_millis(5));
                false
            }
        });
        assert!(closed, "the relay's port is free again");
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
