//! Conference rooms (`[[conferences]]`): the PBX answers a caller that dials a room
//! and puts its media in the room's mix (pbxkit-rtp's
//! [`Conference`](pbxkit_rtp::conference::Conference): each participant in its own
//! codec, everybody hearing the others, 16 kHz inside).
//!
//! A room runs as one task that owns the mix and the participants' sockets (each
//! participant has its own RTP/RTCP pair, read by a small task that hands the
//! datagrams over); it starts with its first participant and ends with its last.
//! In the room:
//!
//! - a room with a PIN asks for it first ("please enter the conference PIN,
//!   followed by the pound key"): the caller neither hears the room nor is heard
//!   until the PIN is right; three wrong PINs and the PBX hangs up;
//! - the first participant hears "you are currently the only person in this
//!   conference" (unless `announce_only_person = false`), then music until
//!   somebody joins;
//! - the others hear a rising tone when somebody joins and a falling one when
//!   somebody leaves;
//! - `*1` mutes and unmutes oneself (Asterisk ConfBridge's default user menu),
//!   with a prompt saying which;
//! - a full room (`max_participants`) refuses the call with 486 before answering.

use crate::moh::Music;
use pbxkit::engine::{CallId, Command};
use pbxkit_rtp::channel::{Channel, ChannelConfig, Event as ChannelEvent, Latching, TransmitKind};
use pbxkit_rtp::codec::Codec;
use pbxkit_rtp::conference::{Conference, ConferenceConfig, ConferenceEvent};
use pbxkit_rtp::relay::ChannelId;
use pbxkit_rtp::tones::{Segment, ToneGenerator, ToneSpec};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The room's rate, which prompts and music are given in.
const RATE: u32 = 16_000;

/// Wrong PINs before the PBX hangs up.
const PIN_TRIES: u8 = 3;

/// Digits kept of a PIN being typed.
const MAX_PIN_DIGITS: usize = 32;

/// Datagrams waiting for the room task at most; more are dropped (a room that
/// cannot keep up loses packets rather than memory).
const DATAGRAMS: usize = 2048;

/// The built-in music while alone: a short melody, repeated.
const MELODY: ToneSpec = ToneSpec {
    segments: &[
        Segment::single(523, 300),
        Segment::single(659, 300),
        Segment::single(784, 300),
        Segment::single(659, 300),
        Segment::silence(900),
    ],
    repeat: true,
};

/// Somebody joined: a rising pair of tones.
const JOINED: ToneSpec = ToneSpec {
    segments: &[Segment::single(600, 120), Segment::single(900, 160)],
    repeat: false,
};

/// Somebody left: a falling pair.
const LEFT: ToneSpec = ToneSpec {
    segments: &[Segment::single(900, 120), Segment::single(600, 160)],
    repeat: false,
};

/// A room's settings, from `[[conferences]]`.
#[derive(Debug, Clone)]
pub(crate) struct RoomSetup {
    pub(crate) name: String,
    pub(crate) pin: Option<String>,
    /// 0: no limit but the mixer's.
    pub(crate) max_participants: usize,
    pub(crate) announce_only_person: bool,
    /// The music while alone; the built-in melody when `None`.
    pub(crate) music: Option<Arc<Music>>,
}

/// A participant's media as the shell hands it to its room.
pub(crate) struct Joining {
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
    pub(crate) channel: Channel,
    pub(crate) codec: Box<dyn Codec + Send>,
}

/// The channel of a participant answered with `pt` (`codec` at `clock` Hz) and
/// telephone events `events`, whose phone said it receives at `remote`.
pub(crate) fn channel(
    pt: pbxkit_rtp::PayloadType,
    clock: u32,
    events: Option<pbxkit_rtp::PayloadType>,
    remote: Option<SocketAddr>,
) -> Channel {
    let mut config = ChannelConfig::new(pt, clock, crate::ids::random_u64());
    config.remote = remote;
    // Behind NAT the phone's packets come from elsewhere than its SDP says.
    config.latching = Latching::Comedia;
    config.telephone_event = events;
    config.rtcp_mux = false;
    Channel::new(config, Instant::now())
}

/// The telephone-event payload type of the audio stream of `sdp` at `clock` Hz
/// (the first one when none is at that clock).
pub(crate) fn telephone_event(
    sdp: &pbxkit_sip::sdp::Session,
    clock: u32,
) -> Option<pbxkit_rtp::PayloadType> {
    let m = sdp
        .media
        .iter()
        .find(|m| m.kind.as_str() == "audio" && m.port != 0)?;
    let events: Vec<(u8, u32)> = m
        .payload_types()
        .filter_map(|pt| {
            let map = m.rtpmap(pt)?;
            map.encoding
                .eq_ignore_ascii_case("telephone-event")
                .then_some((pt, map.clock_rate))
        })
        .collect();
    let pt = events
        .iter()
        .find(|(_, rate)| *rate == clock)
        .or(events.first())?
        .0;
    pbxkit_rtp::PayloadType::new(pt)
}

enum ToRoom {
    Join(CallId, Box<Joining>),
    Leave(CallId),
}

/// The rooms running, by name, with the calls in each.
#[derive(Default)]
pub(crate) struct Rooms {
    rooms: HashMap<String, Room>,
    /// Which room each call is in.
    calls: HashMap<CallId, String>,
}

struct Room {
    to_room: mpsc::UnboundedSender<ToRoom>,
    calls: HashSet<CallId>,
}

impl Rooms {
    /// Whether `setup`'s room can take one more participant.
    pub(crate) fn has_room(&self, setup: &RoomSetup) -> bool {
        let now = self.rooms.get(&setup.name).map_or(0, |r| r.calls.len());
        setup.max_participants == 0 || now < setup.max_participants
    }

    /// Puts `call` in `setup`'s room, starting the room when it is the first.
    /// `commands` is where the room hangs calls up (three wrong PINs). In the
    /// runtime's context.
    pub(crate) fn join(
        &mut self,
        setup: &RoomSetup,
        call: CallId,
        joining: Joining,
        commands: mpsc::Sender<(CallId, Command)>,
    ) {
        let room = self.rooms.entry(setup.name.clone()).or_insert_with(|| {
            let (to_room, from_shell) = mpsc::unbounded_channel();
            tokio::spawn(run(setup.clone(), from_shell, commands));
            Room {
                to_room,
                calls: HashSet::new(),
            }
        });
        room.calls.insert(call);
        let _ = room.to_room.send(ToRoom::Join(call, Box::new(joining)));
        self.calls.insert(call, setup.name.clone());
    }

    /// Takes `call` out of its room (the room ends with its last call). Whether it
    /// was in one.
    pub(crate) fn leave(&mut self, call: CallId) -> bool {
        let Some(name) = self.calls.remove(&call) else {
            return false;
        };
        if let Some(room) = self.rooms.get_mut(&name) {
            let _ = room.to_room.send(ToRoom::Leave(call));
            room.calls.remove(&call);
            if room.calls.is_empty() {
                // Dropping the sender ends the task once it has read the leave.
                self.rooms.remove(&name);
            }
        }
        true
    }
}

/// Where a participant is: typing the PIN, or in the room.
enum Stage {
    Pin {
        typed: String,
        wrong: u8,
    },
    In {
        star: bool,
    },
    /// Told its PIN is wrong for the last time: hung up once the prompt is over.
    Leaving,
    /// Hung up, waiting for the shell's leave.
    Gone,
}

struct Member {
    call: CallId,
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    readers: [tokio::task::JoinHandle<()>; 2],
    stage: Stage,
}

impl Drop for Member {
    fn drop(&mut self) {
        // The sockets close with the last reference: the readers hold one each.
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Music for the one alone in the room, a second at a time.
enum Background {
    Tone(ToneGenerator),
    Music { samples: Arc<[i16]>, at: usize },
}

impl Background {
    fn new(setup: &RoomSetup) -> Option<Background> {
        match &setup.music {
            Some(music) => Some(Background::Music {
                samples: music.at(RATE).filter(|s| !s.is_empty())?,
                at: 0,
            }),
            None => ToneGenerator::new(MELODY, RATE, -16.0)
                .ok()
                .map(Background::Tone),
        }
    }

    fn second(&mut self) -> Vec<i16> {
        let mut out = vec![0; RATE as usize];
        match self {
            Background::Tone(generator) => {
                generator.fill(&mut out);
            }
            Background::Music { samples, at } => {
                for s in out.iter_mut() {
                    *s = samples.get(*at).copied().unwrap_or(0);
                    *at = (*at + 1) % samples.len().max(1);
                }
            }
        }
        out
    }
}

fn tone(spec: ToneSpec) -> Vec<i16> {
    let Ok(mut generator) = ToneGenerator::new(spec, RATE, -14.0) else {
        return Vec::new();
    };
    let mut out = vec![0; RATE as usize / 2];
    let n = generator.fill(&mut out);
    out.truncate(n);
    out
}

fn prompt(name: &str) -> Vec<i16> {
    crate::prompts::pcm(&[name.to_owned()], RATE)
}

/// A room: its mix, its members, its datagrams; until the shell's sender is gone
/// and nobody is left.
async fn run(
    setup: RoomSetup,
    mut from_shell: mpsc::UnboundedReceiver<ToRoom>,
    commands: mpsc::Sender<(CallId, Command)>,
) {
    let span = tracing::debug_span!("conference", room = %setup.name);
    let _guard = span.enter();
    let config = ConferenceConfig {
        max_participants: match setup.max_participants {
            0 => 1000,
            n => n,
        },
        ..ConferenceConfig::default()
    };
    let mut room = Conference::new(config, Instant::now());
    let mut members: HashMap<ChannelId, Member> = HashMap::new();
    let mut next_id = 0u64;
    let mut background = Background::new(&setup);
    let (datagrams, mut incoming) =
        mpsc::channel::<(ChannelId, bytes::Bytes, SocketAddr, bool)>(DATAGRAMS);
    loop {
        let wake = tokio::time::Instant::from_std(room.poll_timeout());
        tokio::select! {
            message = from_shell.recv() => match message {
                Some(ToRoom::Join(call, joining)) => {
                    next_id += 1;
                    let id = ChannelId(next_id);
                    let Joining { rtp, rtcp, channel, codec } = *joining;
                    if let Err(e) = room.join(id, channel, codec) {
                        tracing::warn!(error = %e, "cannot join the conference");
                        let _ = commands.try_send((call, Command::HangUp));
                        continue;
                    }
                    let (rtp, rtcp) = (Arc::new(rtp), Arc::new(rtcp));
                    let readers = [
                        tokio::spawn(read(id, rtp.clone(), false, datagrams.clone())),
                        tokio::spawn(read(id, rtcp.clone(), true, datagrams.clone())),
                    ];
                    let stage = match &setup.pin {
                        Some(_) => Stage::Pin { typed: String::new(), wrong: 0 },
                        None => Stage::In { star: false },
                    };
                    members.insert(id, Member { call, rtp, rtcp, readers, stage });
                    if setup.pin.is_some() {
                        room.set_muted(id, true);
                        room.set_deaf(id, true);
                        room.play(id, &prompt("conf-pin"));
                    } else {
                        enter(&mut room, &members, id, &setup);
                    }
                }
                Some(ToRoom::Leave(call)) => {
                    let Some(id) = members.iter().find(|(_, m)| m.call == call).map(|(id, _)| *id)
                    else {
                        continue;
                    };
                    room.leave(id);
                    let was_in = members
                        .remove(&id)
                        .is_some_and(|m| matches!(m.stage, Stage::In { .. }));
                    if was_in {
                        let left = tone(LEFT);
                        for other in inside(&members) {
                            room.play(other, &left);
                        }
                    }
                    if members.is_empty() && from_shell.is_closed() {
                        break;
                    }
                }
                None => {
                    if members.is_empty() {
                        break;
                    }
                }
            },
            Some((id, datagram, from, rtcp)) = incoming.recv() => {
                let now = Instant::now();
                if rtcp {
                    room.receive_rtcp(id, datagram, from, now);
                } else {
                    room.receive(id, datagram, from, now);
                }
            }
            () = tokio::time::sleep_until(wake) => {
                room.handle_timeout(Instant::now());
            }
        }
        while let Some((id, what)) = room.poll_event() {
            on_event(&mut room, &mut members, &setup, &commands, id, what);
        }
        for (id, m) in members.iter_mut() {
            if matches!(m.stage, Stage::Leaving) && !room.is_playing(*id) {
                let _ = commands.try_send((m.call, Command::HangUp));
                m.stage = Stage::Gone;
            }
        }
        // The one alone hears music between prompts.
        if let [alone] = inside(&members)[..]
            && !room.is_playing(alone)
            && let Some(music) = background.as_mut()
        {
            room.play(alone, &music.second());
        }
        while let Some((id, transmit)) = room.poll_transmit() {
            let Some(m) = members.get(&id) else { continue };
            let socket = match transmit.kind {
                TransmitKind::Rtp => &m.rtp,
                TransmitKind::Rtcp => &m.rtcp,
            };
            // UDP: a full socket buffer drops the datagram, as the network would.
            let _ = socket.try_send_to(&transmit.payload, transmit.to);
        }
    }
    tracing::debug!("conference over");
}

/// The members in the room (past the PIN).
fn inside(members: &HashMap<ChannelId, Member>) -> Vec<ChannelId> {
    let mut ids: Vec<ChannelId> = members
        .iter()
        .filter(|(_, m)| matches!(m.stage, Stage::In { .. }))
        .map(|(id, _)| *id)
        .collect();
    ids.sort();
    ids
}

/// `id` is in: heard, hearing, announced.
fn enter(
    room: &mut Conference,
    members: &HashMap<ChannelId, Member>,
    id: ChannelId,
    setup: &RoomSetup,
) {
    room.set_muted(id, false);
    room.set_deaf(id, false);
    let others: Vec<ChannelId> = inside(members).into_iter().filter(|o| *o != id).collect();
    if others.is_empty() {
        if setup.announce_only_person {
            room.play(id, &prompt("conf-only-person"));
        }
        return;
    }
    let joined = tone(JOINED);
    for other in others {
        // The music of one who was alone stops.
        if inside(members).len() == 2 {
            room.stop_playing(other);
        }
        room.play(other, &joined);
    }
}

fn on_event(
    room: &mut Conference,
    members: &mut HashMap<ChannelId, Member>,
    setup: &RoomSetup,
    commands: &mpsc::Sender<(CallId, Command)>,
    id: ChannelId,
    what: ConferenceEvent,
) {
    let Some(member) = members.get_mut(&id) else {
        return;
    };
    match what {
        ConferenceEvent::Talking => tracing::trace!(call = ?member.call, "talking"),
        ConferenceEvent::StoppedTalking => tracing::trace!(call = ?member.call, "stopped talking"),
        ConferenceEvent::Channel(ChannelEvent::Dtmf { digit, .. }) => {
            let Some(key) = digit.to_char() else { return };
            match &mut member.stage {
                Stage::Pin { typed, wrong } => {
                    if key != '#' {
                        if typed.len() < MAX_PIN_DIGITS {
                            typed.push(key);
                        }
                        return;
                    }
                    room.stop_playing(id);
                    if setup.pin.as_deref() == Some(typed.as_str()) {
                        member.stage = Stage::In { star: false };
                        enter(room, members, id, setup);
                        return;
                    }
                    *wrong += 1;
                    typed.clear();
                    room.play(id, &prompt("conf-invalid-pin"));
                    if *wrong >= PIN_TRIES {
                        tracing::debug!(call = ?member.call, "wrong conference PIN: hung up");
                        member.stage = Stage::Leaving;
                    } else {
                        room.play(id, &prompt("conf-pin"));
                    }
                }
                Stage::In { star } => {
                    if *star && key == '1' {
                        let muted = !room.is_muted(id).unwrap_or(false);
                        room.set_muted(id, muted);
                        room.stop_playing(id);
                        room.play(
                            id,
                            &prompt(if muted { "conf-muted" } else { "conf-unmuted" }),
                        );
                        tracing::debug!(call = ?member.call, muted, "participant mute");
                    }
                    *star = key == '*';
                }
                Stage::Leaving | Stage::Gone => {}
            }
        }
        // A phone gone silent: its call ends like any other hangup.
        ConferenceEvent::Channel(ChannelEvent::RtpTimeout) => {
            let _ = commands.try_send((member.call, Command::HangUp));
        }
        _ => {}
    }
}

/// Reads one of a participant's sockets into the room's queue.
async fn read(
    id: ChannelId,
    socket: Arc<UdpSocket>,
    rtcp: bool,
    to_room: mpsc::Sender<(ChannelId, bytes::Bytes, SocketAddr, bool)>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // ICMP port unreachable surfaces as an error on some systems: go on.
            tokio::task::yield_now().await;
            continue;
        };
        let datagram = bytes::Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
        match to_room.try_send((id, datagram, from, rtcp)) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
