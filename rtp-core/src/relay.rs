//! A relay bridge: [`Channel`]s joined by id, each packet received on one forwarded
//! to the others through [`Channel::forward`], sans-IO.
//!
//! The [`Relay`] owns the channels of a media process (the PBX's legs by their ids),
//! the bridges between them, and their timers in one queue, so that the caller's loop
//! is the same as for one channel: hand in datagrams, sleep until
//! [`Relay::poll_timeout`], drain [`Relay::poll_transmit`] and [`Relay::poll_event`].
//!
//! Relaying does not transcode: the channels of a bridge must share the codec (the
//! payload type numbers may differ: audio and telephone events are renumbered for the
//! receiving channel). With more than two members, each far end follows one talker at a
//! time: the member it hears keeps the floor until it has been silent for
//! [`Relay::new`]'s `talker_hold`, so that two streams never interleave into one. A
//! far end whose talker changes (a re-bridge, a transfer, a new talker) still sees one
//! continuous stream: [`Channel::mark_source_change`] is called for it.
//!
//! ```
//! use bytes::Bytes;
//! use std::time::{Duration, Instant};
//! use pbxkit_rtp::channel::{Channel, ChannelConfig, Latching};
//! use pbxkit_rtp::packet::{PayloadType, RtpPacket, RtpTimestamp, SeqNo, Ssrc};
//! use pbxkit_rtp::relay::{BridgeId, ChannelId, Relay};
//!
//! let t0 = Instant::now();
//! let channel = |remote: &str, random| {
//!     let mut config = ChannelConfig::new(PayloadType::PCMU, 8000, random);
//!     config.remote = Some(remote.parse().expect("an address"));
//!     config.latching = Latching::Strict;
//!     Channel::new(config, t0)
//! };
//! let mut relay = Relay::new(Duration::from_millis(200));
//! relay.insert(ChannelId(1), channel("192.0.2.1:4000", 1));
//! relay.insert(ChannelId(2), channel("192.0.2.2:4000", 2));
//! relay.join(BridgeId(10), ChannelId(1))?;
//! relay.join(BridgeId(10), ChannelId(2))?;
//!
//! let packet = RtpPacket::new(PayloadType::PCMU, SeqNo(1), RtpTimestamp(0), Ssrc(7), Bytes::from_static(&[0xFF; 160]));
//! relay.receive(ChannelId(1), packet.to_bytes(), "192.0.2.1:4000".parse()?, t0);
//! let (from, transmit) = relay.poll_transmit().expect("forwarded");
//! assert_eq!(from, ChannelId(2)); // send it from channel 2's socket
//! assert_eq!(transmit.to, "192.0.2.2:4000".parse()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::channel::{Channel, Event, Received, Transmit};
use crate::packet::RtpPacket;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A channel's id in a [`Relay`], chosen by the caller (a leg id, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u64);

/// A bridge's id in a [`Relay`], chosen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BridgeId(pub u64);

/// [`Relay::join`] was given a channel the relay does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no channel {0:?} in the relay")]
pub struct UnknownChannel(pub ChannelId);

/// Forwarded packets kept for the caller at most; the oldest are dropped first (a
/// caller drains after every datagram, so only a stalled one loses packets).
const MAX_QUEUED: usize = 1024;

#[derive(Debug, Clone)]
struct Member {
    channel: Channel,
    bridge: Option<BridgeId>,
    /// The member this channel's far end hears, and when it last sent.
    talker: Option<(ChannelId, Instant)>,
    /// The deadline queued for this channel; other queue entries for it are stale.
    armed: Option<Instant>,
}

/// Channels, the bridges joining them and their timers (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Relay {
    talker_hold: Duration,
    members: HashMap<ChannelId, Member>,
    bridges: HashMap<BridgeId, Vec<ChannelId>>,
    /// Every channel's next deadline. An entry is live if it is its channel's
    /// `armed` deadline; stale ones (superseded, or of a removed channel) are dropped
    /// when they reach the top, so removal never searches the heap. A live deadline
    /// may be earlier than the channel's real one (media pushed the RTP timeout back):
    /// that costs an early wake-up, after which the real one is queued.
    timers: BinaryHeap<Reverse<(Instant, ChannelId)>>,
    transmits: VecDeque<(ChannelId, Transmit)>,
    events: VecDeque<(ChannelId, Event)>,
    dropped: u64,
}

impl Relay {
    /// An empty relay; in bridges of three or more, a talker keeps a far end's floor
    /// until it has been silent for `talker_hold`.
    pub fn new(talker_hold: Duration) -> Relay {
        Relay {
            talker_hold,
            members: HashMap::new(),
            bridges: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Adds a channel, in no bridge; returns the one it replaces under that id (which
    /// leaves its bridge).
    pub fn insert(&mut self, id: ChannelId, channel: Channel) -> Option<Channel> {
        let old = self.remove(id);
        self.members.insert(
            id,
            Member {
                channel,
                bridge: None,
                talker: None,
                armed: None,
            },
        );
        self.rearm(id);
        old
    }

    /// Removes a channel (it leaves its bridge), for its final [`Channel::quality`].
    pub fn remove(&mut self, id: ChannelId) -> Option<Channel> {
        self.leave(id);
        self.members.remove(&id).map(|m| m.channel)
    }

    /// A channel, to read.
    pub fn channel(&self, id: ChannelId) -> Option<&Channel> {
        self.members.get(&id).map(|m| &m.channel)
    }

    /// Changes a channel (a re-INVITE's `set_remote`, `set_rtp_timeout` on hold...);
    /// its timer is re-armed afterwards. `None` if there is no such channel.
    pub fn update<T>(&mut self, id: ChannelId, f: impl FnOnce(&mut Channel) -> T) -> Option<T> {
        let member = self.members.get_mut(&id)?;
        let result = f(&mut member.channel);
        self.rearm(id);
        self.drain(id);
        Some(result)
    }

    /// Puts a channel in `bridge` (created if new), leaving the bridge it was in.
    pub fn join(&mut self, bridge: BridgeId, id: ChannelId) -> Result<(), UnknownChannel> {
        if !self.members.contains_key(&id) {
            return Err(UnknownChannel(id));
        }
        self.leave(id);
        let members = self.bridges.entry(bridge).or_default();
        members.push(id);
        if let Some(member) = self.members.get_mut(&id) {
            member.bridge = Some(bridge);
        }
        Ok(())
    }

    /// Takes a channel out of its bridge; a bridge left empty is removed.
    pub fn leave(&mut self, id: ChannelId) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.talker = None;
        let Some(bridge) = member.bridge.take() else {
            return;
        };
        let Some(members) = self.bridges.get_mut(&bridge) else {
            return;
        };
        members.retain(|&m| m != id);
        if members.is_empty() {
            self.bridges.remove(&bridge);
            return;
        }
        // Whoever was hearing the leaver gives the floor to the next talker at once.
        for other in members.iter() {
            if let Some(member) = self.members.get_mut(other)
                && member.talker.is_some_and(|(talker, _)| talker == id)
            {
                member.talker = None;
            }
        }
    }

    /// The channels in `bridge`, in the order they joined.
    pub fn bridge(&self, bridge: BridgeId) -> &[ChannelId] {
        self.bridges.get(&bridge).map_or(&[], Vec::as_slice)
    }

    /// The number of bridges (empty ones are removed).
    pub fn bridges(&self) -> usize {
        self.bridges.len()
    }

    /// Handles a datagram received on channel `id`'s RTP port; media from its far end
    /// is forwarded to the other members of its bridge. `None` if there is no such
    /// channel.
    pub fn receive(
        &mut self,
        id: ChannelId,
        datagram: Bytes,
        from: SocketAddr,
        now: Instant,
    ) -> Option<Received> {
        let member = self.members.get_mut(&id)?;
        let received = member.channel.receive(datagram, from, now);
        let bridge = member.bridge;
        self.drain(id);
        if let (Received::Media(packet), Some(bridge)) = (&received, bridge) {
            self.relay(id, bridge, packet, now);
        }
        Some(received)
    }

    /// Handles a datagram received on channel `id`'s separate RTCP port.
    pub fn receive_rtcp(
        &mut self,
        id: ChannelId,
        datagram: Bytes,
        from: SocketAddr,
        now: Instant,
    ) -> Option<Received> {
        let received = self
            .members
            .get_mut(&id)?
            .channel
            .receive_rtcp(datagram, from, now);
        self.drain(id);
        Some(received)
    }

    fn relay(&mut self, source: ChannelId, bridge: BridgeId, packet: &RtpPacket, now: Instant) {
        let Some(targets) = self.bridges.get(&bridge) else {
            return;
        };
        let Some((from_audio, from_events)) = self.members.get(&source).map(|m| {
            let config = m.channel.config();
            (config.payload_type, config.telephone_event)
        }) else {
            return;
        };
        let pt = packet.payload_type();
        for &target in targets.iter().filter(|&&t| t != source) {
            let Some(member) = self.members.get_mut(&target) else {
                continue;
            };
            // One talker per far end: another member gets the floor only once the
            // current one has been silent for the hold time.
            match member.talker {
                Some((talker, _)) if talker == source => {}
                Some((_, last)) if now.saturating_duration_since(last) < self.talker_hold => {
                    continue;
                }
                // A new talker, or a new bridge (the far end may have heard someone
                // else before): the SSRC alone may not show it, two phones can share one.
                Some(_) | None => member.channel.mark_source_change(),
            }
            let to = member.channel.config();
            let renumbered = if Some(pt) == from_events {
                match to.telephone_event {
                    Some(te) => te,
                    None => continue, // that far end takes no telephone events
                }
            } else if pt == from_audio {
                to.payload_type
            } else {
                pt // comfort noise
            };
            let Some(transmit) = (if renumbered == pt {
                member.channel.forward(packet, now)
            } else {
                let mut copy = packet.clone();
                copy.set_payload_type(renumbered);
                member.channel.forward(&copy, now)
            }) else {
                continue;
            };
            member.talker = Some((source, now));
            if self.transmits.len() == MAX_QUEUED {
                self.transmits.pop_front();
                self.dropped += 1;
            }
            self.transmits.push_back((target, transmit));
        }
    }

    /// When [`Relay::handle_timeout`] must be called next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Entries of removed channels are dropped here rather than searched for on
        // removal.
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self.is_live(at, id) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    fn is_live(&self, at: Instant, id: ChannelId) -> bool {
        self.members.get(&id).is_some_and(|m| m.armed == Some(at))
    }

    /// Handles the timers of every channel due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.is_live(at, id) {
                continue;
            }
            if let Some(member) = self.members.get_mut(&id) {
                member.armed = None;
                member.channel.handle_timeout(now);
            }
            self.rearm(id);
            self.drain(id);
        }
    }

    /// Queues channel `id`'s deadline unless it is already the one queued.
    fn rearm(&mut self, id: ChannelId) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let deadline = member.channel.poll_timeout();
        if deadline != member.armed {
            member.armed = deadline;
            if let Some(at) = deadline {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// Moves channel `id`'s own outputs (RTCP, events) to the relay's queues.
    fn drain(&mut self, id: ChannelId) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        while let Some(transmit) = member.channel.poll_transmit() {
            if self.transmits.len() == MAX_QUEUED {
                self.transmits.pop_front();
                self.dropped += 1;
            }
            self.transmits.push_back((id, transmit));
        }
        while let Some(event) = member.channel.poll_event() {
            if self.events.len() == MAX_QUEUED {
                self.events.pop_front();
            }
            self.events.push_back((id, event));
        }
    }

    /// The next datagram to send, with the channel whose socket sends it.
    pub fn poll_transmit(&mut self) -> Option<(ChannelId, Transmit)> {
        self.transmits.pop_front()
    }

    /// The next event of a channel, oldest first.
    pub fn poll_event(&mut self) -> Option<(ChannelId, Event)> {
        self.events.pop_front()
    }

    /// Datagrams dropped because the caller did not drain [`Relay::poll_transmit`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelConfig, Latching, TransmitKind};
    use crate::packet::{PayloadType, RtpTimestamp, SeqNo, Ssrc};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const PHONES: [&str; 3] = ["192.0.2.1:4000", "192.0.2.2:4000", "192.0.2.3:4000"];

    fn relay(t0: Instant) -> Relay {
        let mut relay = Relay::new(Duration::from_millis(200));
        for (i, phone) in PHONES.iter().enumerate() {
            let mut config = ChannelConfig::new(PayloadType::PCMU, 8000, 100 + i as u64);
            config.remote = Some(addr(phone));
            config.latching = Latching::Strict;
            config.telephone_event = PayloadType::new(101 + i as u8);
            relay.insert(ChannelId(i as u64), Channel::new(config, t0));
        }
        relay
    }

    /// Phone `i` sends packet `n` of its stream (SSRC `ssrc`, sequence from 1000).
    fn send(relay: &mut Relay, i: usize, ssrc: u32, n: u16, now: Instant) {
        let p = RtpPacket::new(
            PayloadType::PCMU,
            SeqNo(1000 + n),
            RtpTimestamp(50_000 + 160 * u32::from(n)),
            Ssrc(ssrc),
            Bytes::from_static(&[0xFF; 160]),
        );
        let got = relay.receive(ChannelId(i as u64), p.to_bytes(), addr(PHONES[i]), now);
        assert!(matches!(got, Some(Received::Media(_))), "{got:?}");
    }

    /// The RTP packets sent to phone `to`, parsed.
    fn sent_to(relay: &mut Relay, to: usize) -> Vec<RtpPacket> {
        let mut out = Vec::new();
        while let Some((id, t)) = relay.poll_transmit() {
            if t.kind == TransmitKind::Rtp {
                assert_eq!(id, ChannelId(to as u64));
                assert_eq!(t.to, addr(PHONES[to]));
                out.push(RtpPacket::parse(t.payload).unwrap());
            }
        }
        out
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rebridge_keeps_the_far_end_stream_continuous() {
        let t0 = Instant::now();
        let mut relay = relay(t0);
        relay.join(BridgeId(1), ChannelId(0)).unwrap();
        relay.join(BridgeId(1), ChannelId(1)).unwrap();
        // Phone 0 talks to phone 1 for 200 ms.
        for n in 0..10 {
            send(&mut relay, 0, 0xAAAA, n, t0 + ms(20 * u64::from(n)));
        }
        let before = sent_to(&mut relay, 1);
        assert_eq!(before.len(), 10);
        let last = before[9].clone();
        // Transfer: phone 1 is bridged with phone 2 instead, which happens to use the
        // same SSRC as phone 0 and unrelated numbers; it talks 500 ms later.
        relay.join(BridgeId(2), ChannelId(1)).unwrap();
        relay.join(BridgeId(2), ChannelId(2)).unwrap();
        assert_eq!(relay.bridge(BridgeId(1)), [ChannelId(0)]);
        // Phone 0, alone in its bridge now, reaches no one.
        send(&mut relay, 0, 0xAAAA, 10, t0 + ms(200));
        assert_eq!(sent_to(&mut relay, 1), []);
        let at = t0 + ms(180 + 500);
        let p = RtpPacket::new(
            PayloadType::PCMU,
            SeqNo(7),
            RtpTimestamp(3),
            Ssrc(0xAAAA),
            Bytes::from_static(&[0xFF; 160]),
        );
        relay.receive(ChannelId(2), p.to_bytes(), addr(PHONES[2]), at);
        let after = sent_to(&mut relay, 1);
        let first = &after[0];
        assert_eq!(first.ssrc(), last.ssrc(), "one SSRC for the far end");
        assert_eq!(first.sequence(), last.sequence().next(), "no sequence jump");
        assert_eq!(first.timestamp().wrapping_diff(last.timestamp()), 4000);
        assert!(first.marker());
        // Phone 0 leaving its bridge empties and removes it.
        relay.leave(ChannelId(0));
        assert_eq!(relay.bridges(), 1);
    }

    #[test]
    fn telephone_events_renumbered_for_the_receiving_side() {
        let t0 = Instant::now();
        let mut relay = relay(t0);
        relay.join(BridgeId(1), ChannelId(0)).unwrap();
        relay.join(BridgeId(1), ChannelId(1)).unwrap();
        let te = crate::dtmf::TelephoneEvent {
            event: crate::dtmf::EventCode(5),
            end: true,
            volume: 10,
            duration: 800,
        };
        let p = RtpPacket::new(
            PayloadType::new(101).unwrap(),
            SeqNo(1),
            RtpTimestamp(0),
            Ssrc(1),
            Bytes::copy_from_slice(&te.to_bytes()),
        );
        relay.receive(ChannelId(0), p.to_bytes(), addr(PHONES[0]), t0);
        let out = sent_to(&mut relay, 1);
        assert_eq!(out[0].payload_type().get(), 102);
        let digits: Vec<_> = std::iter::from_fn(|| relay.poll_event())
            .filter(|(_, e)| matches!(e, Event::Dtmf { .. }))
            .collect();
        assert_eq!(digits.len(), 1);
        assert_eq!(digits[0].0, ChannelId(0));
    }

    #[test]
    fn three_members_one_talker_at_a_time() {
        let t0 = Instant::now();
        let mut relay = relay(t0);
        for i in 0..3 {
            relay.join(BridgeId(1), ChannelId(i)).unwrap();
        }
        // Phones 0 and 2 both talk; phone 1 hears phone 0 only, who spoke first.
        for n in 0..10 {
            let at = t0 + ms(20 * u64::from(n));
            send(&mut relay, 0, 0xA, n, at);
            send(&mut relay, 2, 0xC, n, at + ms(5));
        }
        let heard: Vec<_> = std::iter::from_fn(|| relay.poll_transmit())
            .filter(|(id, _)| *id == ChannelId(1))
            .collect();
        assert_eq!(heard.len(), 10);
        // Phone 0 stops; 200 ms later phone 2 gets the floor.
        let mut got = 0;
        for n in 10..30 {
            send(&mut relay, 2, 0xC, n, t0 + ms(20 * u64::from(n)));
            got += std::iter::from_fn(|| relay.poll_transmit())
                .filter(|(id, _)| *id == ChannelId(1))
                .count();
        }
        // Phone 0's last packet was at 180 ms: phone 2's packets from 380 ms get through.
        assert_eq!(got, 30 - 19);

        // Phone 2 talks again, phone 0 interrupts and is held off...
        let floor = |relay: &mut Relay, i: usize, n: u16, at: Instant| {
            send(relay, i, 0xA + i as u32, n, at);
            std::iter::from_fn(|| relay.poll_transmit())
                .filter(|(id, _)| *id == ChannelId(1))
                .count()
        };
        let at = t0 + ms(600);
        assert_eq!(floor(&mut relay, 2, 30, at), 1);
        assert_eq!(floor(&mut relay, 0, 10, at + ms(5)), 0);
        // ...until phone 2 leaves the bridge: no need to wait for the hold then.
        relay.leave(ChannelId(2));
        assert_eq!(floor(&mut relay, 0, 11, at + ms(25)), 1);
    }

    #[test]
    fn timers_of_every_channel_and_none_after_removal() {
        let t0 = Instant::now();
        let mut relay = relay(t0);
        let mut reports = [0; 3];
        let until = t0 + Duration::from_secs(30);
        while let Some(at) = relay.poll_timeout() {
            if at > until {
                break;
            }
            relay.handle_timeout(at);
            while let Some((id, t)) = relay.poll_transmit() {
                assert_eq!(t.kind, TransmitKind::Rtcp);
                reports[id.0 as usize] += 1;
            }
        }
        assert!(
            reports.iter().all(|&n| (5..=14).contains(&n)),
            "{reports:?}"
        );
        // Updates that do not move a deadline queue nothing; one that does leaves a
        // single stale entry, dropped when it reaches the top.
        for _ in 0..100 {
            relay.update(ChannelId(0), |ch| ch.set_rtp_timeout(None, until));
        }
        relay.update(ChannelId(0), |ch| {
            ch.set_rtp_timeout(Some(Duration::from_millis(1)), until)
        });
        assert!(relay.timers.len() <= 3 + 1, "{}", relay.timers.len());
        assert_eq!(relay.poll_timeout(), Some(until + Duration::from_millis(1)));
        for i in 0..3 {
            assert!(relay.remove(ChannelId(i)).is_some());
        }
        assert_eq!(relay.poll_timeout(), None);
        assert_eq!(
            relay.join(BridgeId(1), ChannelId(0)),
            Err(UnknownChannel(ChannelId(0)))
        );
    }
}
