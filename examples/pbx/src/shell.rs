//! The PBX around its call engine: one task owns the
//! sockets and the [`pbxkit::engine::Engine`], hands it every datagram and timer,
//! sends what it asks, answers REGISTER and OPTIONS with the registrar, and turns
//! its events into CDRs and bus events. Nothing in the loop waits for a call.
//!
//! What runs here is what the engine does today (user-to-user calls with forwards,
//! groups, DND and limits; re-INVITEs relayed; media anchored on the PBX's relay,
//! transcoding included; the echo and playback applications on their own ports;
//! the services feature codes, saved before the confirmation plays; blind,
//! attended and semi-attended transfers with ringback to the transferee; trunks in
//! and out with failover, registration, qualify and failure tones; call queues
//! with music on hold, agents logging in, off and pausing by feature code, and
//! the `queue_log` journal; bans per user and source), over UDP and TCP
//! ([`Transports`]).

use crate::cdr::{self, Cdr, Disposition, Record};
use crate::config::App;
use crate::config::Config;
use crate::events::Bus;
use crate::journal::Journal;
use crate::live::Users;
use crate::media::Background;
use crate::store::FileStore;
use pbxkit::auth::{Authentication, Authenticator};
use pbxkit::engine::{
    AgentCommand, Application, CallId, Command, Directory, Engine, EngineConfig, Event, Outcome,
    Request, Tone, Trunk, Unanswered,
};
use pbxkit_sip::digest::DigestServer;
use pbxkit_sip::registrar::Registrar;
use pbxkit_sip::transaction::{Target, TransportKind};
use pbxkit_sip::transports::{Received, Transports};
use pbxkit_sip::{HeaderName, Message, Method, StatusCode, Transport, Uri};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds since the Unix epoch: registrations and nonces are wall-clock data.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new configuration to run on (SIGHUP), compiled and checked: calls in progress
/// keep the one they started with, new calls take this one.
#[derive(Debug)]
pub(crate) struct Reload {
    pub(crate) config: Arc<Config>,
    pub(crate) dialplan: Arc<pbxkit_dialplan::Dialplan>,
}

/// The transport a REGISTER came over, as the registrar records it.
fn transport(kind: TransportKind) -> Transport {
    match kind {
        TransportKind::Udp => Transport::Udp,
        TransportKind::Tcp => Transport::Tcp,
        TransportKind::Tls => Transport::Tls,
        TransportKind::Ws => Transport::Ws,
    }
}

/// Where to send requests for a binding: where its REGISTER came from (NAT-safe),
/// else its Contact.
fn binding_target(b: &pbxkit_sip::registrar::Binding) -> Option<Target> {
    if let Some((addr, t)) = &b.source {
        let transport = match t {
            Transport::Tcp => TransportKind::Tcp,
            Transport::Tls => TransportKind::Tls,
            Transport::Ws | Transport::Wss => TransportKind::Ws,
            _ => TransportKind::Udp,
        };
        return Some(Target {
            addr: *addr,
            transport,
        });
    }
    let sip = b.uri.as_sip()?;
    let pbxkit_sip::Host::Ip(ip) = sip.host else {
        return None;
    };
    let transport = if sip.transport().as_deref() == Some("tcp") {
        TransportKind::Tcp
    } else {
        TransportKind::Udp
    };
    Some(Target {
        addr: SocketAddr::new(ip, sip.port.unwrap_or(5060)),
        transport,
    })
}

/// Users' passwords and limits from the configuration, contacts from the registrar,
/// live services from the users' live state.
#[derive(Debug)]
struct PbxDirectory {
    config: Arc<Config>,
    registrar: Arc<Mutex<Registrar<FileStore>>>,
    users: Users,
}

impl Directory for PbxDirectory {
    fn password(&self, user: &str) -> Option<String> {
        self.config.user(user).map(|u| u.password.clone())
    }

    fn contacts(&self, line: &str) -> Vec<(Uri, Target)> {
        let now = unix_now();
        let Ok(registrar) = self.registrar.lock() else {
            return Vec::new();
        };
        registrar
            .lookup(line, now)
            .into_iter()
            .filter_map(|b| Some((b.uri.clone(), binding_target(&b)?)))
            .collect()
    }

    fn services(&self, user: &str) -> Option<pbxkit_dialplan::UserServices> {
        self.users.get(user)
    }

    fn call_limit(&self, user: &str) -> Option<u32> {
        self.config.user(user).map(|u| u.call_limit)
    }

    fn name(&self, user: &str) -> Option<String> {
        self.config
            .user(user)
            .map(|u| u.name.clone())
            .filter(|n| !n.is_empty())
    }

    fn application(&self, number: &str) -> Option<Application> {
        if self.config.ivr(number).is_some() {
            return Some(Application::Ivr {
                menu: number.to_owned(),
            });
        }
        let ext = self.config.extension(number)?;
        Some(match ext.app {
            App::Echo => Application::Echo,
            App::Playback => Application::Playback {
                file: ext.file.clone(),
            },
        })
    }
}

/// Commands for the engine from tasks of the shell (an application's prompt is
/// over, a feature code's change is saved).
type Commands = tokio::sync::mpsc::Sender<(CallId, Command)>;

/// The media relay under the engine's calls: each call's RTP anchored on a pair of
/// the PBX's ports per side, SDP rewritten both ways, transcoding when the sides
/// share no codec.
struct RelayMedia {
    ports: Arc<crate::media::PortPool>,
    /// The threads that forward the relays' packets.
    threads: crate::media::MediaThreads,
    /// Our address in the SDP phones receive.
    ip: std::net::IpAddr,
    relays: HashMap<CallId, crate::media::Relay>,
    /// Applications running, each on its own pair of ports.
    apps: HashMap<CallId, tokio::task::JoinHandle<()>>,
    /// Where an application says it is over, and a silent call that it is to end.
    commands: Commands,
    /// The silence after which a call is hung up (`[rtp] rtp_timeout`).
    rtp_timeout: Option<Duration>,
    /// The music-on-hold classes, read at start.
    music: HashMap<String, Arc<crate::moh::Music>>,
    /// The ringback a transferee hears while the target rings, and those playing
    /// (the failure tones a trunk's callers hear too).
    ringback: pbxkit_rtp::tones::ToneSpec,
    /// The busy and congestion tones.
    busy: pbxkit_rtp::tones::ToneSpec,
    congestion: pbxkit_rtp::tones::ToneSpec,
    ringing: HashMap<CallId, crate::media::Playing>,
    /// What the PBX answered callers with itself (a queue's caller, in its one
    /// codec): what the other side is offered and settled against.
    answered: HashMap<CallId, pbxkit_sip::sdp::Session>,
    /// The conference rooms configured, by name (the shell swaps them on SIGHUP),
    /// and those running.
    conferences: RoomSetups,
    rooms: crate::conference::Rooms,
    /// The voicemail boxes configured, by number (swapped on SIGHUP), where
    /// their messages are, and the calls in a voicemail application.
    voicemails: BoxSetups,
    /// The IVR menus configured, by extension (swapped on SIGHUP).
    ivrs: IvrSetups,
    data_dir: std::path::PathBuf,
    voicemail_calls: HashMap<CallId, tokio::sync::oneshot::Sender<()>>,
    /// Where voicemail applications say a box changed.
    mwi: tokio::sync::mpsc::Sender<crate::subscriptions::Counts>,
}

/// The built-in music on hold: a short melody, repeated.
const MUSIC_ON_HOLD: pbxkit_rtp::tones::ToneSpec = {
    use pbxkit_rtp::tones::Segment;
    pbxkit_rtp::tones::ToneSpec {
        segments: &[
            Segment::single(523, 300),
            Segment::single(659, 300),
            Segment::single(784, 300),
            Segment::single(659, 300),
            Segment::single(587, 300),
            Segment::single(698, 300),
            Segment::single(880, 600),
            Segment::silence(600),
        ],
        repeat: true,
    }
};

impl std::fmt::Debug for RelayMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayMedia")
            .field("ip", &self.ip)
            .field("calls", &self.relays.len())
            .field("applications", &self.apps.len())
            .finish()
    }
}

impl RelayMedia {
    /// Answers `call` into conference room `name`: 486 when the room is full, 488
    /// when no codec is shared, 503 when no port is free.
    fn join_room(
        &mut self,
        call: CallId,
        name: &str,
        offer: &pbxkit_sip::sdp::Session,
    ) -> Result<bytes::Bytes, StatusCode> {
        let setup = self
            .conferences
            .lock()
            .ok()
            .and_then(|rooms| rooms.get(name).cloned())
            .ok_or(StatusCode::NOT_FOUND)?;
        let setup = &setup;
        if !self.rooms.has_room(setup) {
            return Err(StatusCode::BUSY_HERE);
        }
        let (sdp, joining) = self.media_for(offer)?;
        self.rooms.join(setup, call, joining, self.commands.clone());
        Ok(sdp.to_string().into())
    }

    /// Answers `call` with a voicemail application (listening, or leaving a
    /// message): 404 for a box not configured.
    fn voicemail(
        &mut self,
        call: CallId,
        app: &Application,
        offer: &pbxkit_sip::sdp::Session,
    ) -> Result<bytes::Bytes, StatusCode> {
        let number = match app {
            Application::Voicemail { mailbox, .. } | Application::VoicemailMenu { mailbox, .. } => {
                mailbox
            }
            _ => return Err(StatusCode::NOT_IMPLEMENTED),
        };
        let setup = self
            .voicemails
            .lock()
            .ok()
            .and_then(|boxes| boxes.get(number).cloned())
            .ok_or(StatusCode::NOT_FOUND)?;
        let (sdp, joining) = self.media_for(offer)?;
        let (hangup, hung_up) = tokio::sync::oneshot::channel();
        let session = crate::session::Session::new(joining, hung_up)
            .ok_or(StatusCode::SERVER_INTERNAL_ERROR)?;
        let mailbox = crate::voicemail::Mailbox::new(&self.data_dir, number);
        let commands = self.commands.clone();
        match app.clone() {
            Application::Voicemail {
                busy,
                caller,
                caller_name,
                ..
            } => {
                tokio::spawn(crate::voicemail::leave_message(
                    session,
                    mailbox,
                    setup,
                    busy,
                    (caller, caller_name),
                    call,
                    commands,
                    self.mwi.clone(),
                ));
            }
            Application::VoicemailMenu { pin, .. } => {
                tokio::spawn(crate::voicemail::listen(
                    session,
                    mailbox,
                    setup,
                    pin,
                    call,
                    commands,
                    self.mwi.clone(),
                ));
            }
            _ => {}
        }
        self.voicemail_calls.insert(call, hangup);
        Ok(sdp.to_string().into())
    }

    /// Answers `call` with IVR `menu` (of the configuration in force).
    fn ivr(
        &mut self,
        call: CallId,
        menu: &str,
        offer: &pbxkit_sip::sdp::Session,
    ) -> Result<bytes::Bytes, StatusCode> {
        let setup = self
            .ivrs
            .lock()
            .ok()
            .and_then(|menus| menus.get(menu).cloned())
            .ok_or(StatusCode::NOT_FOUND)?;
        let (sdp, joining) = self.media_for(offer)?;
        let (hangup, hung_up) = tokio::sync::oneshot::channel();
        let session = crate::session::Session::new(joining, hung_up)
            .ok_or(StatusCode::SERVER_INTERNAL_ERROR)?;
        tokio::spawn(crate::ivr::run(session, setup, call, self.commands.clone()));
        self.voicemail_calls.insert(call, hangup);
        Ok(sdp.to_string().into())
    }

    /// Ports, our SDP answer to `offer` and the channel of a phone the PBX talks
    /// with itself: 488 when no codec is shared, 503 when no port is free.
    fn media_for(
        &mut self,
        offer: &pbxkit_sip::sdp::Session,
    ) -> Result<(pbxkit_sip::sdp::Session, crate::conference::Joining), StatusCode> {
        let Some((rtp, rtcp)) = self.ports.bind_pair() else {
            tracing::warn!("no free media ports");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        };
        let port = rtp.local_addr().map_or(0, |a| a.port());
        let sdp = crate::apps::answer_sdp(offer, self.ip, port, cfg!(feature = "opus"));
        let (pt, codec_name, _) =
            crate::apps::audio_of(&sdp).ok_or(StatusCode::NOT_ACCEPTABLE_HERE)?;
        let codec = crate::codecs::codec(codec_name).ok_or(StatusCode::NOT_ACCEPTABLE_HERE)?;
        let pt = pbxkit_rtp::PayloadType::new(pt).ok_or(StatusCode::NOT_ACCEPTABLE_HERE)?;
        let clock = codec.clock_rate();
        let remote = crate::apps::audio_of(offer).and_then(|(_, _, addr)| addr);
        let mut channel = crate::conference::channel(
            pt,
            clock,
            crate::conference::telephone_event(&sdp, clock),
            remote,
        );
        channel.set_rtp_timeout(self.rtp_timeout, Instant::now());
        let joining = crate::conference::Joining {
            rtp,
            rtcp,
            channel,
            codec,
        };
        Ok((sdp, joining))
    }

    fn relay(&mut self, call: CallId) -> Option<&crate::media::Relay> {
        if !self.relays.contains_key(&call) {
            let mut relay = crate::media::Relay::start(&self.ports, &self.threads)?;
            if let Some(timeout) = self.rtp_timeout {
                let counters = relay.counters.clone();
                let commands = self.commands.clone();
                relay.attach(tokio::spawn(hang_up_when_silent(
                    call, counters, timeout, commands,
                )));
            }
            self.relays.insert(call, relay);
        }
        self.relays.get(&call)
    }
}

/// The IVR menus of a configuration, by extension.
type IvrSetups = Arc<Mutex<HashMap<String, crate::ivr::Menu>>>;

fn ivr_setups(config: &Config) -> HashMap<String, crate::ivr::Menu> {
    config
        .ivrs
        .iter()
        .map(|i| {
            let menu = crate::ivr::Menu {
                name: i.name.clone(),
                prompt: i.prompt.clone(),
                choices: i.choices.clone(),
                timeout: Duration::from_secs(u64::from(i.timeout)),
                retries: i.retries,
                default: i.default.clone(),
            };
            (i.exten.clone(), menu)
        })
        .collect()
}

/// The voicemail boxes of a configuration, by number.
type BoxSetups = Arc<Mutex<HashMap<String, crate::voicemail::BoxSetup>>>;

fn box_setups(config: &Config) -> HashMap<String, crate::voicemail::BoxSetup> {
    let mailer = Arc::new(crate::mail::Mailer {
        command: config.pbx.mail_command.clone(),
        from: config.pbx.mail_from.clone(),
    });
    config
        .voicemails
        .iter()
        .map(|v| {
            let setup = crate::voicemail::BoxSetup {
                number: v.number.clone(),
                pin: v.pin.clone(),
                max_messages: v.max_messages as usize,
                max_message: Duration::from_secs(u64::from(v.max_message_seconds)),
                email: v.email.clone().map(|to| (to, mailer.clone())),
            };
            (v.number.clone(), setup)
        })
        .collect()
}

/// The conference rooms of a configuration, by name.
type RoomSetups = Arc<Mutex<HashMap<String, crate::conference::RoomSetup>>>;

/// The settings of `config`'s rooms; `music` is the classes read at start (a class
/// a reload adds is heard after the next restart: the built-in melody until then).
fn room_setups(
    config: &Config,
    music: &HashMap<String, Arc<crate::moh::Music>>,
) -> HashMap<String, crate::conference::RoomSetup> {
    config
        .conferences
        .iter()
        .map(|c| {
            let setup = crate::conference::RoomSetup {
                name: c.name.clone(),
                pin: c.pin.clone(),
                max_participants: c.max_participants as usize,
                announce_only_person: c.announce_only_person,
                music: c
                    .music_on_hold
                    .as_ref()
                    .and_then(|class| music.get(class).cloned()),
            };
            (c.name.clone(), setup)
        })
        .collect()
}

/// Hangs `call` up once one of its phones has sent no media for `timeout` while
/// it was to (see [`crate::media::Silence`]); runs as long as the call's relay.
async fn hang_up_when_silent(
    call: CallId,
    counters: Arc<crate::media::Counters>,
    timeout: Duration,
    commands: Commands,
) {
    let mut silence = crate::media::Silence::new(timeout, Instant::now());
    let mut tick = tokio::time::interval(silence.period());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if silence.check(&counters, Instant::now()) {
            tracing::warn!(call = ?call, seconds = timeout.as_secs(), "no media from a phone: hanging up");
            let _ = commands.send((call, Command::HangUp)).await;
            return;
        }
    }
}

fn session(sdp: &bytes::Bytes) -> Option<pbxkit_sip::sdp::Session> {
    pbxkit_sip::sdp::Session::parse_body(sdp).ok()
}

impl pbxkit::engine::Media for RelayMedia {
    fn offer(
        &mut self,
        call: CallId,
        from_caller: bool,
        sdp: &bytes::Bytes,
    ) -> Option<bytes::Bytes> {
        let offer = session(sdp)?;
        let ip = self.ip;
        let answered = from_caller
            .then(|| self.answered.get(&call).cloned())
            .flatten();
        let relay = self.relay(call)?;
        relay.set_peer_from_sdp(from_caller, &offer);
        // A caller the PBX answered itself speaks the one codec it was answered in.
        let offer = answered.unwrap_or(offer);
        // The codecs the relay can transcode to are offered too.
        let widened = crate::codecs::widen(&offer);
        Some(relay.rewrite(!from_caller, &widened, ip).to_string().into())
    }

    fn answer(
        &mut self,
        call: CallId,
        from_caller: bool,
        offer: Option<&bytes::Bytes>,
        answer: &bytes::Bytes,
    ) -> Option<bytes::Bytes> {
        let answer = session(answer)?;
        let ip = self.ip;
        let answered = (!from_caller)
            .then(|| self.answered.get(&call).cloned())
            .flatten();
        let relay = self.relay(call)?;
        relay.set_peer_from_sdp(from_caller, &answer);
        let (settled, formats) = match answered.or_else(|| offer.and_then(session)) {
            Some(offer) => crate::codecs::settle(&offer, &answer),
            None => (answer, None),
        };
        relay.set_transcoding(formats.map(|(offerer, answerer)| {
            if from_caller {
                crate::codecs::Transcoding {
                    a: answerer,
                    b: offerer,
                }
            } else {
                crate::codecs::Transcoding {
                    a: offerer,
                    b: answerer,
                }
            }
        }));
        Some(relay.rewrite(!from_caller, &settled, ip).to_string().into())
    }

    fn application(
        &mut self,
        call: CallId,
        app: &Application,
        offer: &bytes::Bytes,
    ) -> Result<bytes::Bytes, StatusCode> {
        let offer = session(offer).ok_or(StatusCode::NOT_ACCEPTABLE_HERE)?;
        match app {
            Application::Conference { room } => return self.join_room(call, room, &offer),
            Application::Voicemail { .. } | Application::VoicemailMenu { .. } => {
                return self.voicemail(call, app, &offer);
            }
            Application::Ivr { menu } => return self.ivr(call, menu, &offer),
            _ => {}
        }
        let Some((rtp, rtcp)) = self.ports.bind_pair() else {
            tracing::warn!("no free media ports");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        };
        let port = rtp.local_addr().map_or(0, |a| a.port());
        use crate::apps::Sound;
        let (kind, sound) = match app {
            Application::Echo => (App::Echo, Sound::Beeps),
            Application::Playback { file: None } => (App::Playback, Sound::Beeps),
            Application::Playback { file: Some(file) } => (App::Playback, Sound::File(file)),
            Application::Say { prompts } => (App::Playback, Sound::Prompts(prompts)),
            _ => return Err(StatusCode::NOT_IMPLEMENTED),
        };
        let (sdp, player) = crate::apps::prepare(kind, sound, &offer, self.ip, port)?;
        let commands = self.commands.clone();
        self.apps.insert(
            call,
            tokio::spawn(async move {
                let (received, sent) = crate::apps::run_media(rtp, rtcp, player).await;
                tracing::debug!(call = ?call, received, sent, "prompt played");
                let _ = commands.send((call, Command::HangUp)).await;
            }),
        );
        Ok(sdp.to_string().into())
    }

    fn record(
        &mut self,
        call: CallId,
        recording: Option<&pbxkit::engine::Recording>,
        sdps: [Option<&bytes::Bytes>; 2],
    ) -> bool {
        let Some(relay) = self.relays.get(&call) else {
            return false;
        };
        let Some(recording) = recording else {
            // The recording's task finishes the file once the tap is gone.
            relay.set_tap(None);
            return true;
        };
        let info = serde_json::from_str(&recording.info).unwrap_or_default();
        let sides = sdps.map(|sdp| crate::recording::codecs_of(sdp.and_then(session).as_ref()));
        let (tap, packets) = tokio::sync::mpsc::channel(crate::recording::TAP_DEPTH);
        relay.set_tap(Some(tap));
        tokio::spawn(crate::recording::run(
            packets,
            sides,
            crate::recording::Recording {
                file: recording.file.clone(),
                info,
            },
        ));
        true
    }

    fn ringback(&mut self, call: CallId, to_caller: bool, sdp: Option<&bytes::Bytes>) {
        // Dropping the tone stops it.
        self.ringing.remove(&call);
        let Some(format) = sdp
            .and_then(session)
            .and_then(|s| crate::codecs::Format::received_by(&s))
        else {
            return;
        };
        let tone = self.ringback;
        if let Some(playing) = self
            .relays
            .get(&call)
            .and_then(|relay| relay.play(to_caller, Background::Tone(tone), &format))
        {
            self.ringing.insert(call, playing);
        }
    }

    fn hand_over(&mut self, from: CallId, from_caller: bool, to: CallId, to_caller: bool) {
        let Some(origin) = self.relays.get(&from).map(|r| r.origin(from_caller)) else {
            return;
        };
        if let Some(relay) = self.relay(to) {
            relay.set_origin(to_caller, origin);
        }
    }

    fn tone(&mut self, call: CallId, tone: Tone, offer: &bytes::Bytes) -> Option<bytes::Bytes> {
        let offer = session(offer)?;
        let format = crate::codecs::Format::received_by(&offer)?;
        let spec = match tone {
            Tone::Busy => self.busy,
            _ => self.congestion,
        };
        let ip = self.ip;
        let relay = self.relay(call)?;
        relay.set_peer_from_sdp(true, &offer);
        let ours = crate::codecs::answer_with(&offer, &format);
        let sdp = relay.rewrite(true, &ours, ip).to_string().into();
        let playing = relay.play(true, Background::Tone(spec), &format)?;
        self.ringing.insert(call, playing);
        Some(sdp)
    }

    fn queue_wait(
        &mut self,
        call: CallId,
        music: Option<&str>,
        offer: &bytes::Bytes,
    ) -> Result<bytes::Bytes, StatusCode> {
        // The queue's class, else the built-in melody (a class is checked at start).
        let background = match music.and_then(|class| self.music.get(class)) {
            Some(music) => Background::Music(music.clone()),
            None => Background::Tone(MUSIC_ON_HOLD),
        };
        let offer = session(offer).ok_or(StatusCode::NOT_ACCEPTABLE_HERE)?;
        let format =
            crate::codecs::Format::received_by(&offer).ok_or(StatusCode::NOT_ACCEPTABLE_HERE)?;
        let ip = self.ip;
        let Some(relay) = self.relay(call) else {
            tracing::warn!("no free media ports");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        };
        relay.set_peer_from_sdp(true, &offer);
        // One codec (and its DTMF): the music is coded in it, the agent is offered
        // it first and transcoded to when it answers with another.
        let ours = crate::codecs::answer_with_events(&offer, &format);
        let sdp = relay.rewrite(true, &ours, ip).to_string().into();
        if let Some(playing) = relay.play(true, background, &format) {
            self.ringing.insert(call, playing);
        }
        self.answered.insert(call, ours);
        Ok(sdp)
    }

    fn queue_offer(&mut self, call: CallId) -> Option<bytes::Bytes> {
        let ours = self.answered.get(&call)?.clone();
        let ip = self.ip;
        let relay = self.relays.get(&call)?;
        let widened = crate::codecs::widen(&ours);
        Some(relay.rewrite(false, &widened, ip).to_string().into())
    }

    fn queue_announce(
        &mut self,
        call: CallId,
        position: Option<u32>,
        expected_wait: Option<std::time::Duration>,
    ) {
        if let Some(music) = self.ringing.get(&call) {
            let words = crate::prompts::queue_announcement(position, expected_wait);
            let samples = crate::prompts::pcm(&words, music.rate());
            if !samples.is_empty() {
                music.prompt(samples);
            }
        }
    }

    fn queue_connect(&mut self, call: CallId, answer: &bytes::Bytes) {
        // The music stops (the caller's side is unmuted) as the agent is bridged.
        self.ringing.remove(&call);
        let (Some(answer), Some(ours)) = (session(answer), self.answered.get(&call)) else {
            return;
        };
        let Some(relay) = self.relays.get(&call) else {
            return;
        };
        relay.set_peer_from_sdp(false, &answer);
        let (_, formats) = crate::codecs::settle(ours, &answer);
        relay.set_transcoding(formats.map(|(caller, agent)| crate::codecs::Transcoding {
            a: caller,
            b: agent,
        }));
    }

    fn close(&mut self, call: CallId) {
        self.ringing.remove(&call);
        self.answered.remove(&call);
        self.rooms.leave(call);
        if let Some(hangup) = self.voicemail_calls.remove(&call) {
            // The application ends by itself: a message being left is kept.
            let _ = hangup.send(());
        }
        if let Some(app) = self.apps.remove(&call) {
            // The task owns the ports: they are free once it is gone.
            app.abort();
        }
        if let Some(relay) = self.relays.remove(&call) {
            let c = &relay.counters;
            let load =
                |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            // Not a line per call at the default level: operators get the stats line.
            tracing::debug!(
                target: "pbxkit::media",
                call = ?call,
                rtp_a_to_b = load(&c.a_to_b),
                rtp_b_to_a = load(&c.b_to_a),
                ignored = load(&c.ignored),
                "call ended"
            );
        }
    }
}

/// What a call's CDR needs that its events carry at different times.
struct Times {
    call_id: String,
    /// Who called (a user's extension, or a trunk's number).
    caller: String,
    /// What it dialled, and who answered.
    dialed: String,
    callee: Option<String>,
    start: f64,
    answer: Option<f64>,
}

impl Times {
    /// The call as the API lists it.
    fn live(&self) -> crate::control::LiveCall {
        crate::control::LiveCall {
            call_id: self.call_id.clone(),
            caller: self.caller.clone(),
            dialed: self.dialed.clone(),
            callee: self.callee.clone(),
            start: self.start,
            answer: self.answer,
        }
    }
}

/// The engine, the sockets and what the loop keeps between inputs.
struct Shell {
    engine: Engine<PbxDirectory>,
    /// The conference rooms and voicemail boxes the media answers, swapped on
    /// SIGHUP, and the music-on-hold classes read at start.
    conferences: RoomSetups,
    voicemails: BoxSetups,
    ivrs: IvrSetups,
    /// Message-waiting subscriptions, and where boxes' new counts are sent.
    subscriptions: crate::subscriptions::Subscriptions,
    mwi_counts: tokio::sync::mpsc::Sender<crate::subscriptions::Counts>,
    music: HashMap<String, Arc<crate::moh::Music>>,
    sockets: Transports,
    /// REGISTER's digest (the engine checks INVITEs with its own, on the same
    /// secret and policy).
    auth: Authenticator,
    registrar: Arc<Mutex<Registrar<FileStore>>>,
    cdr: Cdr,
    /// The call centre's `queue_log` (`data_dir/queue_log`, Asterisk's format).
    queue_log: Journal,
    /// Agents logged in, kept across restarts.
    agents: Arc<crate::agents::AgentStore>,
    /// The logged-in agents as the ACD's lines tell it, and whether it changed
    /// since it was last handed to `agents`.
    agent_table: crate::agents::Agents,
    agents_changed: bool,
    /// Wrong agent passwords, per phone user and agent.
    agent_logins: crate::agents::LoginGuard,
    bus: Bus,
    times: HashMap<CallId, Times>,
    /// REGISTER answers waiting for their binding to be on disk: (generation, tx,
    /// response).
    waiting: Vec<(u64, pbxkit_sip::transaction::ServerTx, Message)>,
    durable: tokio::sync::watch::Receiver<u64>,
    /// Brute-force bans: (source, user) pairs first, whole
    /// sources for scanners and floods.
    bans: crate::ban::Bans,
    /// What tasks of the shell tell the engine when they are done.
    commands: Commands,
    /// Calls created since start, for the stats line.
    calls_total: u64,
    /// Each user's phone status, from the engine's events and the registrar.
    hints: pbxkit::hints::Hints,
}

/// How often the PBX logs its counters.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// The operator's view of the bus: every event at debug level, until the returned
/// guard is dropped.
fn log_events(bus: &Bus) -> AbortOnDrop {
    let mut watched = bus.subscribe();
    AbortOnDrop(tokio::spawn(async move {
        loop {
            match watched.recv().await {
                Ok(event) => tracing::debug!(?event, "event"),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "event log behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }))
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The address peers reach us at: the listen address, or when that is a wildcard,
/// the one the kernel routes from.
fn sent_by(listen: SocketAddr) -> SocketAddr {
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let probe = std::net::UdpSocket::bind((listen.ip(), 0))
        .and_then(|s| {
            s.connect(("192.0.2.1", 9))?;
            s.local_addr()
        })
        .map_or(listen.ip(), |a| a.ip());
    SocketAddr::new(probe, listen.port())
}

/// Completes at `wake` (never when `None`): the engine's next deadline.
async fn until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The enabled trunks of `config`, their host names resolved now (a trunk whose
/// host does not resolve is left out, with a warning).
async fn trunks(config: &Config) -> Vec<Trunk> {
    let mut trunks = Vec::new();
    for t in config.trunks.iter().filter(|t| t.enabled) {
        let addr = match tokio::net::lookup_host((t.host.as_str(), t.port)).await {
            Ok(mut addrs) => addrs.next(),
            Err(_) => None,
        };
        let Some(addr) = addr else {
            tracing::warn!(trunk = %t.name, host = %t.host, "trunk host does not resolve");
            continue;
        };
        let credentials = match (&t.username, &t.password) {
            (Some(username), Some(password)) => Some(pbxkit_sip::b2bua::Credentials {
                username: username.clone(),
                password: password.clone(),
                realm: None,
            }),
            _ => None,
        };
        if t.register && credentials.is_none() {
            tracing::warn!(trunk = %t.name, "register = true needs username and password");
        }
        trunks.push(Trunk {
            name: t.name.clone(),
            target: Target {
                addr,
                transport: TransportKind::Udp,
            },
            host: format!("{}:{}", t.host, t.port),
            context: crate::routing::INCALL_CONTEXT.to_owned(),
            credentials,
            max_calls: t.max_calls,
            register: t.register.then_some(300),
            qualify: (t.qualify > 0).then(|| Duration::from_secs(t.qualify)),
        });
    }
    trunks
}

/// What the shell runs on, opened before it starts.
pub(crate) struct Parts {
    pub(crate) store: FileStore,
    pub(crate) cdr: Cdr,
    pub(crate) queue_log: Journal,
    pub(crate) users: Users,
    pub(crate) bus: Bus,
    /// Questions from the control socket and the API.
    pub(crate) control: tokio::sync::mpsc::Receiver<crate::control::Query>,
    /// Where the API reads the configuration in force.
    pub(crate) api_config: tokio::sync::watch::Sender<Arc<Config>>,
}

/// Runs the PBX on the engine until `shutdown` completes.
pub(crate) async fn run(
    config: Arc<Config>,
    dialplan: Arc<pbxkit_dialplan::Dialplan>,
    sockets: Transports,
    parts: Parts,
    mut reloads: tokio::sync::mpsc::Receiver<Reload>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let Parts {
        store,
        cdr,
        queue_log,
        users,
        bus,
        mut control,
        api_config,
    } = parts;
    let (agents, saved_agents) = crate::agents::AgentStore::open(&config.pbx.data_dir)?;
    let agents = Arc::new(agents);
    let local = sockets.local_addr();
    // One secret for the engine's INVITE nonces and our REGISTER ones.
    let secret = config.sip.nonce_key();
    let mut engine_config = EngineConfig::new(
        &config.sip.realm,
        &sent_by(local).to_string(),
        &secret,
        crate::ids::random_u64(),
    )
    .map_err(std::io::Error::other)?
    .with_timers(config.sip.timers());
    engine_config.leg.session_expires = config.sip.session_expires;
    engine_config.leg.min_se = config.sip.min_se;
    engine_config.ring_time = Duration::from_secs(config.pbx.ring_time);
    engine_config.nonce_max_tracked = config.sip.nonce_max_tracked;
    engine_config.algorithms = config.sip.digest_algorithms();
    engine_config.queues = crate::routing::queues(&config);
    let (commands_tx, mut commands) = tokio::sync::mpsc::channel(1024);
    // Voicemail boxes whose counts changed, for their message-waiting subscribers.
    let (mwi_tx, mut mwi_counts) = tokio::sync::mpsc::channel(1024);
    let registrar = Registrar::new(config.registrar.bounds(), store);
    let durable = registrar.store().durable();
    let registrar = Arc::new(Mutex::new(registrar));
    let directory = PbxDirectory {
        config: config.clone(),
        registrar: registrar.clone(),
        users,
    };
    let music = crate::moh::load_all(&config.music_on_hold).map_err(std::io::Error::other)?;
    let conferences: RoomSetups = Arc::new(Mutex::new(room_setups(&config, &music)));
    let voicemails: BoxSetups = Arc::new(Mutex::new(box_setups(&config)));
    let ivrs: IvrSetups = Arc::new(Mutex::new(ivr_setups(&config)));
    let media = RelayMedia {
        ports: Arc::new(crate::media::PortPool::new(
            local.ip(),
            config.rtp.port_min,
            config.rtp.port_max,
        )),
        // Half the cores: the signalling has the runtime's workers.
        threads: crate::media::MediaThreads::start(
            std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)),
        )?,
        ip: sent_by(local).ip(),
        relays: HashMap::new(),
        apps: HashMap::new(),
        commands: commands_tx.clone(),
        rtp_timeout: config.rtp.timeout(),
        music: music.clone(),
        ringback: config.pbx.tone(pbxkit_rtp::tones::CallProgress::Ringback),
        busy: config.pbx.tone(pbxkit_rtp::tones::CallProgress::Busy),
        congestion: config.pbx.tone(pbxkit_rtp::tones::CallProgress::Congestion),
        ringing: HashMap::new(),
        answered: HashMap::new(),
        conferences: conferences.clone(),
        rooms: crate::conference::Rooms::default(),
        voicemails: voicemails.clone(),
        ivrs: ivrs.clone(),
        data_dir: config.pbx.data_dir.clone(),
        voicemail_calls: HashMap::new(),
        mwi: mwi_tx.clone(),
    };
    let engine = Engine::new(
        engine_config,
        dialplan,
        directory,
        Instant::now(),
        unix_now(),
    )
    .with_media(media);
    let mut shell = Shell {
        engine,
        sockets,
        auth: Authenticator::new(
            &config.sip.realm,
            DigestServer::new(&config.sip.realm, &secret, 300)
                .with_max_tracked(config.sip.nonce_max_tracked)
                .remembering_since(unix_now()),
            config.sip.digest_algorithms(),
        ),
        registrar,
        cdr,
        queue_log,
        bus,
        times: HashMap::new(),
        waiting: Vec::new(),
        durable,
        bans: crate::ban::Bans::new(config.security.ban_policy()),
        commands: commands_tx,
        conferences,
        voicemails,
        ivrs,
        music,
        subscriptions: crate::subscriptions::Subscriptions::new(
            sent_by(local),
            Uri::parse(&format!("sip:{}@{}", config.pbx.node_id, sent_by(local)))
                .map_err(std::io::Error::other)?,
        ),
        mwi_counts: mwi_tx,
        calls_total: 0,
        hints: pbxkit::hints::Hints::default(),
        agents,
        agent_table: crate::agents::Agents::from_saved(saved_agents),
        agents_changed: false,
        agent_logins: crate::agents::LoginGuard::new(config.security.ban_policy()),
    };
    shell.follow_users(&config);
    shell.set_agent_skills(&config);
    shell.restore_agents();
    let configured = trunks(&config).await;
    shell.engine.set_trunks(configured, Instant::now());
    shell.flush();
    let _log = log_events(&shell.bus);
    let mut expiry = tokio::time::interval(Duration::from_secs(10));
    let mut stats = tokio::time::interval(STATS_EVERY);
    let mut calls_at_last_stats = 0;
    let mut day = jiff::ZonedDateTime::now().date();
    tokio::pin!(shutdown);
    loop {
        let due = until(shell.engine.poll_timeout());
        tokio::select! {
            received = shell.sockets.recv() => shell.received(received),
            () = due => shell.engine.handle_timeout(Instant::now()),
            Some((call, command)) = commands.recv() => {
                shell.engine.command(call, command, Instant::now());
            }
            Some(query) = control.recv() => shell.query(query),
            changed = shell.durable.changed() => {
                if changed.is_ok() {
                    shell.durable_now();
                }
            }
            Some(counts) = mwi_counts.recv() => shell.notify_mwi(&counts),
            _ = expiry.tick() => {
                let now = Instant::now();
                let ended = shell.subscriptions.expire(now);
                shell.send_notifies(ended, now);
                if let Ok(mut r) = shell.registrar.lock() {
                    r.expire(unix_now());
                }
                shell.refresh_registrations();
                shell.bans.forget_expired(Instant::now());
            }
            _ = stats.tick() => {
                shell.log_stats(calls_at_last_stats);
                calls_at_last_stats = shell.calls_total;
                // The call centre's day starts at local midnight (XiVO's).
                let today = jiff::ZonedDateTime::now().date();
                if today != day {
                    day = today;
                    shell.engine.reset_queue_stats(Instant::now());
                }
            }
            // SIGHUP: new calls take the new configuration; calls in progress keep
            // the plan they follow.
            Some(reload) = reloads.recv() => {
                tracing::info!(users = reload.config.users.len(), "configuration reloaded");
                shell.engine.set_dialplan(reload.dialplan);
                let algorithms = reload.config.sip.digest_algorithms();
                shell.auth.set_algorithms(algorithms.clone());
                shell.engine.set_digest_algorithms(algorithms);
                // Trunks whose settings did not change keep their registration.
                let configured = trunks(&reload.config).await;
                shell.engine.set_trunks(configured, Instant::now());
                shell.follow_users(&reload.config);
                shell.set_agent_skills(&reload.config);
                let gone = shell.engine.set_queues(&crate::routing::queues(&reload.config));
                if !gone.is_empty() {
                    tracing::warn!(queues = ?gone, "queues removed from the configuration run until the restart");
                }
                // Rooms running keep their settings until they empty.
                if let Ok(mut rooms) = shell.conferences.lock() {
                    *rooms = room_setups(&reload.config, &shell.music);
                }
                if let Ok(mut boxes) = shell.voicemails.lock() {
                    *boxes = box_setups(&reload.config);
                }
                if let Ok(mut menus) = shell.ivrs.lock() {
                    *menus = ivr_setups(&reload.config);
                }
                api_config.send_replace(reload.config.clone());
                shell.engine.directory_mut().config = reload.config;
            }
            () = &mut shutdown => break,
        }
        shell.flush();
    }
    // Stopping: every call is ended, and the loop goes on (their BYEs and CANCELs
    // need answers) until they are or the grace period is over.
    tracing::info!(calls = shell.engine.calls(), "stopping: ending calls");
    shell.engine.hang_up_all(Instant::now());
    shell.flush();
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    while shell.engine.calls() > 0 {
        let due = until(shell.engine.poll_timeout());
        tokio::select! {
            received = shell.sockets.recv() => shell.received(received),
            () = due => shell.engine.handle_timeout(Instant::now()),
            () = &mut grace => {
                tracing::warn!(calls = shell.engine.calls(), "calls still up at the end of the grace period");
                break;
            }
        }
        shell.flush();
    }
    Ok(())
}

impl Shell {
    fn received(&mut self, received: Received) {
        match received {
            Received::Message { message, source } => {
                if self.banned(&message, source.addr) {
                    // No answer: a scanner learns nothing, a phone retrying a wrong
                    // password gives up, the other users behind its address are served.
                    return;
                }
                self.engine.handle_message(message, source, Instant::now());
            }
            Received::Bad {
                error,
                answer,
                source,
            } => {
                tracing::debug!(%error, peer = %source.addr, "unparseable SIP message");
                if let Some(answer) = answer {
                    self.sockets.send(source, answer.to_bytes());
                }
            }
        }
    }

    /// Whether a request comes from a banned source, or a banned (source, user)
    /// pair. Responses and in-dialog requests of calls in progress always pass.
    fn banned(&self, message: &Message, peer: SocketAddr) -> bool {
        if message.method().is_none() || message.to().is_ok_and(|t| t.tag().is_some()) {
            return false;
        }
        let now = Instant::now();
        if self.bans.is_banned(peer.ip(), now) {
            return true;
        }
        let user = self.auth.claimed(message);
        self.bans.is_pair_banned(peer.ip(), &user, now)
    }

    /// Counts an authentication's outcome for the bans.
    fn authenticated(&mut self, source: SocketAddr, user: &str, result: Authentication) {
        let (ip, now) = (source.ip(), Instant::now());
        let banned = match result {
            Authentication::Accepted => {
                self.bans.succeeded(ip, user, now);
                None
            }
            Authentication::Refused => {
                tracing::info!(peer = %source, user = %user, "authentication refused");
                self.bans.failed(ip, user, now)
            }
            Authentication::Stale => None,
            Authentication::Challenged => self
                .bans
                .challenged(ip, now)
                .then_some(crate::ban::Banned::Source),
        };
        match banned {
            Some(crate::ban::Banned::Pair) => tracing::warn!(
                peer = %ip,
                user = %user,
                "too many failed authentications: user banned from this source"
            ),
            Some(crate::ban::Banned::Source) => {
                tracing::warn!(peer = %ip, "scanner or flood: source banned")
            }
            None => {}
        }
    }

    /// Sends, answers and records what the engine has for us.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.engine.poll_transmit() {
                moved = true;
                self.sockets.send(t.target, t.bytes);
            }
            while let Some(event) = self.engine.poll_event() {
                moved = true;
                self.event(event);
            }
            while let Some(request) = self.engine.poll_request() {
                moved = true;
                self.request(request);
            }
            if !moved {
                break;
            }
        }
        if self.agents_changed {
            // What the ACD did by itself (an autopause, a logoff): nobody waits
            // for it, but it is kept.
            let (store, table) = (self.agents.clone(), self.take_agent_table());
            tokio::spawn(async move {
                if let Err(e) = store.save(table).await {
                    tracing::error!(error = %e, "agents' state not saved");
                }
            });
        }
    }

    /// The agents' table to save, marked as handed over.
    fn take_agent_table(
        &mut self,
    ) -> (
        u64,
        std::collections::BTreeMap<String, crate::agents::Login>,
    ) {
        self.agents_changed = false;
        self.agent_table.snapshot()
    }

    /// Answers a question from the control socket.
    fn query(&mut self, query: crate::control::Query) {
        match query {
            crate::control::Query::Live(reply) => {
                let _ = reply.send(self.live_stats());
            }
            crate::control::Query::Calls(reply) => {
                let mut calls: Vec<_> = self.times.values().map(Times::live).collect();
                calls.sort_by(|a, b| a.start.total_cmp(&b.start));
                let _ = reply.send(calls);
            }
            crate::control::Query::HangUp { call_id, reply } => {
                let call = self
                    .times
                    .iter()
                    .find(|(_, t)| t.call_id == call_id)
                    .map(|(call, _)| *call);
                if let Some(call) = call {
                    self.engine.command(call, Command::HangUp, Instant::now());
                }
                let _ = reply.send(call.is_some());
            }
        }
    }

    /// The queues' and the configured agents' live statistics, as `pbxkit acd
    /// live` shows them (durations in seconds).
    fn live_stats(&self) -> serde_json::Value {
        use serde_json::json;
        let now = Instant::now();
        let config = &self.engine.directory().config;
        let queues: Vec<_> = self
            .engine
            .queue_stats(now)
            .into_iter()
            .map(|q| {
                let number = config
                    .queues
                    .iter()
                    .find(|c| c.name == q.queue)
                    .map(|c| c.exten.clone());
                let (l, c) = (q.live, q.live.counters);
                // XiVO's service level: answered within it, of the answered calls.
                let service_level =
                    (c.answered > 0).then(|| c.answered_within_sl as f64 / c.answered as f64);
                json!({
                    "name": q.queue,
                    "number": number,
                    "waiting": l.waiting,
                    "longest_wait": l.longest_wait.as_secs(),
                    "expected_wait": l.expected_wait.as_secs(),
                    "logged": l.logged,
                    "available": l.available,
                    "talking": l.talking,
                    "received": c.received,
                    "answered": c.answered,
                    "abandoned": c.abandoned,
                    "timeout": c.timeout,
                    "answered_within_sl": c.answered_within_sl,
                    "service_level": service_level,
                })
            })
            .collect();
        let agents: Vec<_> = config
            .agents
            .iter()
            .map(|a| {
                let s = self.engine.agent_stats(&a.number, now);
                let login = self.agent_table.logins().get(&a.number);
                let times = s.live.map(|l| l.times).unwrap_or_default();
                json!({
                    "number": s.agent,
                    "phone": s.phone,
                    "state": s.state.as_str(),
                    "ready": times.ready.as_secs(),
                    "paused": times.paused.as_secs(),
                    "wrap_up": times.wrap_up.as_secs(),
                    "on_call": times.on_call.as_secs(),
                    "answered": s.live.map_or(0, |l| l.answered),
                    "unanswered": s.live.map_or(0, |l| l.unanswered),
                    // The reason of a pause in every queue, and each queue's.
                    "paused_reason": login.and_then(|l| l.paused.clone()),
                    "paused_in": login.map(|l| l.paused_in.clone()).unwrap_or_default(),
                })
            })
            .collect();
        // What the call centre's decisions cost inside this PBX (real clock).
        let micros = |d: std::time::Duration| d.as_nanos() as f64 / 1000.0;
        let figures = |l: &pbxkit::engine::Latencies| {
            json!({
                "count": l.count(),
                "median_us": micros(l.quantile(0.5)),
                "p99_us": micros(l.quantile(0.99)),
                "max_us": micros(l.max()),
            })
        };
        // Steps: the ACD's decision and the engine's carrying it out (SIP legs,
        // queue_log, statuses), media left out; decisions: inside pbxkit-acd.
        let acd = json!({
            "steps": figures(self.engine.acd_latencies()),
            "decisions": figures(self.engine.acd_decisions()),
        });
        json!({ "queues": queues, "agents": agents, "acd": acd })
    }

    /// The operator's periodic view: calls, registrations and bans.
    fn log_stats(&self, calls_at_last_stats: u64) {
        let now = Instant::now();
        let registrations = self.registrar.lock().map_or(0, |r| r.store().bindings());
        let (banned_sources, banned_pairs) = self.bans.banned_count(now);
        let new_calls = self.calls_total - calls_at_last_stats;
        tracing::info!(
            calls_active = self.engine.calls(),
            calls_total = self.calls_total,
            cps = format!("{:.1}", new_calls as f64 / STATS_EVERY.as_secs_f64()),
            registrations,
            subscriptions = self.subscriptions.len(),
            banned_sources,
            banned_pairs,
            "stats"
        );
    }

    /// Follows the hints of `config`'s users (the phones they have registered
    /// now); users no longer configured are reported removed.
    fn follow_users(&mut self, config: &Config) {
        let gone: Vec<String> = self
            .hints
            .users()
            .filter(|u| config.user(u).is_none())
            .map(str::to_owned)
            .collect();
        for user in gone {
            if let Some(change) = self.hints.remove_user(&user) {
                self.publish_hint(change);
            }
        }
        for user in &config.users {
            // XiVO's default simultaneous calls.
            self.hints
                .add_user(&user.exten, user.simultaneous_calls.unwrap_or(5));
        }
        self.refresh_registrations();
    }

    /// Registrations that expired (or came back) change the users' hints.
    fn refresh_registrations(&mut self) {
        let now = unix_now();
        let counts: Vec<(String, usize)> = match self.registrar.lock() {
            Ok(r) => self
                .hints
                .users()
                .map(|u| (u.to_owned(), r.lookup(u, now).len()))
                .collect(),
            Err(_) => return,
        };
        for (user, contacts) in counts {
            if let Some(change) = self.hints.registered(&user, contacts) {
                self.publish_hint(change);
            }
        }
    }

    /// Records an answered call when its caller records what it places or its
    /// callee what it receives (the PBX's own answers, applications, are not).
    fn record_if_asked(&mut self, call: CallId, call_id: &str, caller: &str, callee: &str) {
        let config = self.engine.directory().config.clone();
        let outgoing = config.user(caller).is_some_and(|u| u.record_outgoing);
        let incoming = config.user(callee).is_some_and(|u| u.record_incoming);
        if outgoing || incoming {
            self.start_recording(call, call_id, caller, callee, &[]);
        }
    }

    /// Records `call` under `data_dir/recordings/`, `extra` added to its sidecar.
    fn start_recording(
        &mut self,
        call: CallId,
        call_id: &str,
        caller: &str,
        callee: &str,
        extra: &[(&str, &str)],
    ) {
        let config = self.engine.directory().config.clone();
        let now = unix_now();
        let name = crate::recording::file_name(
            &config.pbx.recording_template,
            caller,
            callee,
            now,
            call_id,
        );
        let mut info = serde_json::json!({
            "call_id": call_id,
            "caller": caller,
            "callee": callee,
            "start": now,
        });
        for (key, value) in extra {
            info[*key] = serde_json::json!(value);
        }
        let recording = pbxkit::engine::Recording {
            file: config.pbx.data_dir.join("recordings").join(name),
            info: info.to_string(),
        };
        self.engine
            .command(call, Command::Record(Some(recording)), Instant::now());
    }

    /// A user's hint changed: on the bus, and to the phones watching its lamp.
    fn publish_hint(&mut self, (user, status): pbxkit::hints::Change) {
        let now = Instant::now();
        let notifies = self.subscriptions.lamp(&user, status, now);
        self.send_notifies(notifies, now);
        self.bus
            .publish(crate::events::Event::Hint { user, status });
    }

    fn event(&mut self, event: Event) {
        for change in self.hints.handle(&event) {
            self.publish_hint(change);
        }
        match event {
            Event::RequestAnswered { tx, status } => {
                self.subscriptions.answered(tx, status);
            }
            Event::CallCreated {
                call,
                sip_call_id,
                caller,
                dialed,
            } => {
                self.calls_total += 1;
                self.times.insert(
                    call,
                    Times {
                        call_id: sip_call_id.clone(),
                        caller: caller.clone(),
                        dialed: dialed.clone(),
                        callee: None,
                        start: cdr::now(),
                        answer: None,
                    },
                );
                self.bus.publish(crate::events::Event::CallCreated {
                    call_id: sip_call_id,
                    caller,
                    dialed,
                });
            }
            Event::CallAnswered { call, callee } => {
                let (call_id, caller) = match self.times.get_mut(&call) {
                    Some(t) => {
                        t.answer = Some(cdr::now());
                        t.callee = Some(callee.clone());
                        (t.call_id.clone(), t.caller.clone())
                    }
                    None => (String::new(), String::new()),
                };
                self.record_if_asked(call, &call_id, &caller, &callee);
                self.bus.publish(crate::events::Event::CallAnswered {
                    call_id,
                    caller,
                    callee,
                });
            }
            Event::CallEnded {
                call,
                caller,
                dialed,
                outcome,
                ..
            } => {
                let times = self.times.remove(&call).unwrap_or(Times {
                    call_id: String::new(),
                    caller: String::new(),
                    dialed: String::new(),
                    callee: None,
                    start: cdr::now(),
                    answer: None,
                });
                let call_id = times.call_id.clone();
                let record = match outcome {
                    Outcome::Answered(cause) => Record::new(
                        times.start,
                        times.answer,
                        &caller,
                        &dialed,
                        &call_id,
                        Disposition::Answered,
                        None,
                        Some(cause),
                    ),
                    Outcome::Unanswered(how) => {
                        let (disposition, status) = match how {
                            Unanswered::Cancelled => {
                                (Disposition::NoAnswer, StatusCode::REQUEST_TERMINATED)
                            }
                            Unanswered::Refused(s) if matches!(s.as_u16(), 486 | 600) => {
                                (Disposition::Busy, s)
                            }
                            Unanswered::Refused(s) if s.as_u16() == 480 => {
                                (Disposition::NoAnswer, s)
                            }
                            Unanswered::Refused(s) => (Disposition::Failed, s),
                        };
                        Record::new(
                            times.start,
                            None,
                            &caller,
                            &dialed,
                            &call_id,
                            disposition,
                            Some(status.as_u16()),
                            None,
                        )
                    }
                };
                self.bus.publish(crate::events::Event::CallEnded {
                    call_id,
                    caller: caller.clone(),
                    callee: times.callee.clone(),
                    answered: matches!(outcome, Outcome::Answered(_)),
                    cause: outcome.q850(),
                });
                self.cdr.write(record);
            }
            Event::Authentication {
                source,
                user,
                result,
            } => self.authenticated(source, &user, result),
            Event::Feature { call, user, action } => self.feature(call, user, action),
            Event::CallTransferred {
                call,
                user,
                transferor,
            } => {
                tracing::debug!(call = ?call, to = %user, from = ?transferor, "call transferred");
            }
            Event::CallRinging { call, users, group } => {
                tracing::debug!(call = ?call, ?users, ?group, "ringing");
            }
            Event::QueueStatus(stats) => {
                self.bus.publish(crate::events::Event::QueueStatus(stats));
            }
            Event::AgentStatus { agent, state } => {
                self.bus
                    .publish(crate::events::Event::AgentStatus { agent, state });
            }
            Event::QueueLog(line) => {
                if self.agent_table.apply(&line) {
                    self.agents_changed = true;
                }
                self.queue_log.append(line.to_string().into_bytes());
            }
            Event::AgentConnected {
                call,
                queue,
                agent,
                user,
            } => {
                tracing::debug!(call = ?call, %queue, %agent, %user, "agent connected");
                let config = self.engine.directory().config.clone();
                if config.queues.iter().any(|q| q.name == queue && q.record) {
                    let (call_id, caller) = self
                        .times
                        .get(&call)
                        .map(|t| (t.call_id.clone(), t.caller.clone()))
                        .unwrap_or_default();
                    let extra = [("queue", queue.as_str()), ("agent", agent.as_str())];
                    self.start_recording(call, &call_id, &caller, &user, &extra);
                }
            }
            Event::TrunkDown { trunk } => {
                tracing::warn!(trunk = %trunk, "trunk down: no answer to OPTIONS");
            }
            Event::TrunkUp { trunk } => tracing::info!(trunk = %trunk, "trunk up again"),
            Event::TrunkRegistered { trunk } => {
                tracing::info!(trunk = %trunk, "registered to the trunk");
            }
            Event::TrunkRegistrationFailed { trunk, status } => {
                tracing::warn!(trunk = %trunk, status = ?status.map(|s| s.as_u16()), "trunk registration failed");
            }
            _ => {}
        }
    }

    /// A feature code: a change of the caller's services is saved, then the caller
    /// hears the confirmation; other codes are not on the engine yet (501).
    fn feature(&mut self, call: CallId, user: String, action: pbxkit_dialplan::FeatureAction) {
        match self.agent_feature(&user, &action) {
            None => {}
            Some(Err(StatusCode::FORBIDDEN)) => {
                // A wrong password (or a phone locked out of the agent) is told.
                let say = Application::Say {
                    prompts: vec!["agent-incorrect".to_owned()],
                };
                self.engine.command(call, Command::Run(say), Instant::now());
                return;
            }
            Some(Err(status)) => {
                self.engine
                    .command(call, Command::Reject(status), Instant::now());
                return;
            }
            Some(Ok(agent)) => {
                // The agent hears the confirmation once the change is on disk: the
                // ACD's lines for it are followed now, and the table written.
                while let Some(event) = self.engine.poll_event() {
                    self.event(event);
                }
                let table = self.take_agent_table();
                let (store, commands) = (self.agents.clone(), self.commands.clone());
                let confirmation = match action {
                    pbxkit_dialplan::FeatureAction::AgentLogin { .. } => Application::Say {
                        prompts: vec!["agent-loggedin".to_owned()],
                    },
                    pbxkit_dialplan::FeatureAction::AgentLogoff { .. } => Application::Say {
                        prompts: vec!["agent-loggedoff".to_owned()],
                    },
                    _ => Application::Playback { file: None },
                };
                tokio::spawn(async move {
                    let command = match store.save(table).await {
                        Ok(()) => Command::Run(confirmation),
                        Err(e) => {
                            tracing::error!(agent = %agent, error = %e, "agent state not saved");
                            Command::Reject(StatusCode::SERVER_INTERNAL_ERROR)
                        }
                    };
                    let _ = commands.send((call, command)).await;
                });
                return;
            }
        }
        if let Some(listen) = self.voicemail_feature(&user, &action) {
            let command = match listen {
                Ok(app) => Command::Run(app),
                Err(status) => Command::Reject(status),
            };
            self.engine.command(call, command, Instant::now());
            return;
        }
        let directory = self.engine.directory();
        let configured = directory.config.user(&user).map(Config::services);
        let (Some(configured), true) = (configured, crate::features::changes_services(&action))
        else {
            let now = Instant::now();
            self.engine
                .command(call, Command::Reject(StatusCode::NOT_IMPLEMENTED), now);
            return;
        };
        let (users, commands) = (directory.users.clone(), self.commands.clone());
        tokio::spawn(async move {
            let command = match crate::features::apply(&users, &user, &configured, &action).await {
                Ok(services) => {
                    tracing::debug!(user = %user, ?services, "services changed");
                    Command::Run(Application::Playback { file: None })
                }
                Err(crate::features::FeatureError::Incomplete) => {
                    Command::Reject(StatusCode::ADDRESS_INCOMPLETE)
                }
                Err(e) => {
                    tracing::error!(user = %user, error = %e, "feature code not applied");
                    Command::Reject(StatusCode::SERVER_INTERNAL_ERROR)
                }
            };
            let _ = commands.send((call, command)).await;
        });
    }

    /// `*98` (the caller's own box: its PIN asked when the box says so) and
    /// `*99<box>` (any box, always with its PIN): the application to run, or the
    /// status to refuse with (404: no such box); `None` for other codes.
    fn voicemail_feature(
        &self,
        user: &str,
        action: &pbxkit_dialplan::FeatureAction,
    ) -> Option<Result<Application, StatusCode>> {
        use pbxkit_dialplan::FeatureAction;
        let config = &self.engine.directory().config;
        let (number, pin) = match action {
            FeatureAction::OwnVoicemail => {
                let Some(number) = config.user(user).and_then(|u| u.voicemail.clone()) else {
                    return Some(Err(StatusCode::NOT_FOUND));
                };
                let asked = config.voicemail(&number).is_some_and(|v| v.asks_pin());
                (number, asked)
            }
            FeatureAction::Voicemail { number } => (number.clone(), true),
            _ => return None,
        };
        if config.voicemail(&number).is_none() {
            return Some(Err(StatusCode::NOT_FOUND));
        }
        Some(Ok(Application::VoicemailMenu {
            mailbox: number,
            pin,
        }))
    }

    /// An agent's feature code dialled from `user`'s phone, applied: the agent,
    /// else the status it is refused with; `None` for other codes. An agent logs in
    /// on the phone it dials from (with its password when it has one) and logs
    /// off, pauses or unpauses there, in every queue or the one dialled, a pause
    /// with the name of the reason code dialled (`[pause_reasons]`).
    fn agent_feature(
        &mut self,
        user: &str,
        action: &pbxkit_dialplan::FeatureAction,
    ) -> Option<Result<String, StatusCode>> {
        use pbxkit_dialplan::FeatureAction;
        let config = self.engine.directory().config.clone();
        let now = Instant::now();
        let on_phone = self.engine.agent_on_phone(user);
        let command = match action {
            FeatureAction::AgentLogin { agent, password } => {
                let Some(a) = config.agent(agent) else {
                    return Some(Err(StatusCode::NOT_FOUND));
                };
                if a.password.is_some() {
                    if !self.agent_logins.allowed(user, agent, now) {
                        return Some(Err(StatusCode::FORBIDDEN));
                    }
                    if a.password != *password {
                        tracing::info!(agent = %agent, user = %user, "agent login refused: wrong password");
                        if self.agent_logins.failed(user, agent, now) {
                            tracing::warn!(agent = %agent, user = %user, "too many wrong agent passwords: login refused for a while");
                        }
                        return Some(Err(StatusCode::FORBIDDEN));
                    }
                    self.agent_logins.succeeded(user, agent);
                }
                if on_phone.is_some() {
                    // One agent per phone: the other logs off first.
                    return Some(Err(StatusCode::BUSY_HERE));
                }
                let queues: Vec<(String, u32)> =
                    a.queues.iter().map(|q| (q.clone(), a.penalty)).collect();
                AgentCommand::Login {
                    agent: agent.clone(),
                    user: user.to_owned(),
                    queues,
                }
            }
            FeatureAction::AgentLogoff { agent } => {
                // Only the agent on this phone: nobody logs off an agent elsewhere.
                match (agent, on_phone) {
                    (Some(agent), Some(here)) if *agent == here => {
                        AgentCommand::Logoff { agent: here }
                    }
                    (None, Some(here)) => AgentCommand::Logoff { agent: here },
                    _ => return Some(Err(StatusCode::NOT_FOUND)),
                }
            }
            FeatureAction::AgentPause {
                paused,
                queue,
                reason,
            } => {
                let Some(agent) = on_phone else {
                    return Some(Err(StatusCode::NOT_FOUND));
                };
                let queue = match queue {
                    None => None,
                    Some(number) => match config.queue(number) {
                        Some(q) => Some(q.name.clone()),
                        None => return Some(Err(StatusCode::NOT_FOUND)),
                    },
                };
                let reason = match (paused, reason) {
                    (false, _) => None,
                    (true, None) => Some(String::new()),
                    (true, Some(code)) => match config.pause_reasons.get(code) {
                        Some(name) => Some(name.clone()),
                        None => return Some(Err(StatusCode::NOT_FOUND)),
                    },
                };
                AgentCommand::Pause {
                    agent,
                    queue,
                    reason,
                }
            }
            _ => return None,
        };
        let agent = match &command {
            AgentCommand::Login { agent, .. }
            | AgentCommand::Pause { agent, .. }
            | AgentCommand::Logoff { agent } => agent.clone(),
            // Nothing else is built above.
            _ => return None,
        };
        Some(match self.engine.agent(command, now) {
            Ok(()) => Ok(agent),
            Err(e) => {
                tracing::info!(user = %user, error = %e, "agent feature refused");
                match e {
                    // A queue the agent is not in: nothing to pause there.
                    pbxkit_acd::AcdError::NotAMember { .. }
                    | pbxkit_acd::AcdError::UnknownQueue(_) => Err(StatusCode::NOT_FOUND),
                    _ => Err(StatusCode::FORBIDDEN),
                }
            }
        })
    }

    /// Gives the engine the configured agents' skills.
    fn set_agent_skills(&mut self, config: &Config) {
        for agent in &config.agents {
            self.engine
                .set_agent_skills(&agent.number, agent.skills.clone());
        }
    }

    /// Logs the agents saved as logged in back in (those still configured), paused
    /// as they were. Not a new session: no `AGENTLOGIN` or `PAUSEALL` lines.
    fn restore_agents(&mut self) {
        let config = self.engine.directory().config.clone();
        let now = Instant::now();
        let saved = std::mem::take(&mut self.agent_table);
        for (number, login) in saved.logins() {
            let Some(agent) = config.agent(number) else {
                continue;
            };
            let queues = agent
                .queues
                .iter()
                .map(|q| (q.clone(), agent.penalty))
                .collect();
            let command = AgentCommand::Login {
                agent: number.clone(),
                user: login.user.clone(),
                queues,
            };
            if let Err(e) = self.engine.agent(command, now) {
                tracing::warn!(agent = %number, error = %e, "saved agent not logged back in");
                continue;
            }
            let pauses = login
                .paused
                .iter()
                .map(|reason| (None, reason))
                .chain(login.paused_in.iter().map(|(q, reason)| (Some(q), reason)));
            for (queue, reason) in pauses {
                let pause = AgentCommand::Pause {
                    agent: number.clone(),
                    queue: queue.cloned(),
                    reason: Some(reason.clone()),
                };
                // A queue the agent is no longer in is forgotten.
                let _ = self.engine.agent(pause, now);
            }
        }
        // The table is rebuilt from the ACD's lines (not written to the queue_log):
        // agents or queues no longer configured drop out, and that is saved.
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::QueueLog(line) => {
                    self.agent_table.apply(&line);
                }
                event => self.event(event),
            }
        }
        self.agents_changed = self.agent_table.logins() != saved.logins();
    }

    fn answer(&mut self, request: &Request, status: StatusCode) {
        let r = Message::response_to(&request.request, status, Some(&crate::ids::token()));
        let _ = self.engine.respond(request.tx, r, Instant::now());
    }

    fn request(&mut self, request: Request) {
        match request.request.method() {
            Some(Method::Register) => self.register(request),
            Some(Method::Options) => self.answer(&request, StatusCode::OK),
            Some(Method::Subscribe) => self.subscribe(request),
            _ => self.answer(&request, StatusCode::NOT_IMPLEMENTED),
        }
    }

    /// A SUBSCRIBE (digest as for REGISTER): message waiting for the user's own
    /// voicemail box (403 for another user's AOR, 404 for a user without a box),
    /// or a busy lamp on any user (404 for an unknown one); 489 for another event
    /// package.
    fn subscribe(&mut self, req: Request) {
        use crate::subscriptions::{DIALOG, MESSAGE_SUMMARY, Watched};
        let event = req
            .request
            .headers()
            .first(&HeaderName::Event)
            .map(|h| h.value.split(';').next().unwrap_or("").trim().to_owned());
        let package = match event.as_deref() {
            Some(MESSAGE_SUMMARY) => MESSAGE_SUMMARY,
            Some(DIALOG) => DIALOG,
            _ => {
                // 489 Bad Event: the packages the PBX notifies are listed.
                let Some(bad_event) = StatusCode::new(489) else {
                    return;
                };
                let mut r = Message::response_to(&req.request, bad_event, None);
                r.headers_mut().push(
                    HeaderName::AllowEvents,
                    format!("{MESSAGE_SUMMARY}, {DIALOG}"),
                );
                let _ = self.engine.respond(req.tx, r, Instant::now());
                return;
            }
        };
        let config = self.engine.directory().config.clone();
        let Some((user, aor)) = self.authenticate(&req) else {
            return;
        };
        let watched = if package == MESSAGE_SUMMARY {
            if aor.as_deref() != Some(user.as_str()) {
                self.answer(&req, StatusCode::FORBIDDEN);
                return;
            }
            let Some(mailbox) = config.user(&user).and_then(|u| u.voicemail.clone()) else {
                self.answer(&req, StatusCode::NOT_FOUND);
                return;
            };
            Watched::Mailbox(mailbox)
        } else {
            match aor.filter(|a| config.user(a).is_some()) {
                Some(watched) => Watched::User(watched),
                None => {
                    self.answer(&req, StatusCode::NOT_FOUND);
                    return;
                }
            }
        };
        let response =
            self.subscriptions
                .subscribe(&req.request, watched.clone(), req.source, Instant::now());
        let accepted = response.status().is_some_and(|s| s.is_success());
        let _ = self.engine.respond(req.tx, response, Instant::now());
        if !accepted {
            return;
        }
        // Its first NOTIFY (or last, for an unsubscription).
        match watched {
            Watched::Mailbox(mailbox) => {
                // The box's counts, read off the runtime's threads.
                let (data_dir, counts) = (config.pbx.data_dir.clone(), self.mwi_counts.clone());
                tokio::spawn(async move {
                    crate::voicemail::announce(&data_dir, &mailbox, &counts).await;
                });
            }
            Watched::User(watched) => {
                let status = self.hints.status(&watched);
                let now = Instant::now();
                let notifies = self.subscriptions.lamp(&watched, status, now);
                self.send_notifies(notifies, now);
            }
        }
    }

    /// NOTIFYs the subscribers of a box whose counts are `counts`.
    fn notify_mwi(&mut self, counts: &crate::subscriptions::Counts) {
        let now = Instant::now();
        let notifies = self.subscriptions.mailbox(counts, now);
        tracing::debug!(mailbox = %counts.mailbox, new = counts.new, old = counts.old, subscribers = notifies.len(), "message waiting");
        self.send_notifies(notifies, now);
    }

    fn send_notifies(&mut self, notifies: Vec<crate::subscriptions::Outgoing>, now: Instant) {
        for (id, notify, target) in notifies {
            if let Ok(tx) = self.engine.send_request(notify, target, now) {
                self.subscriptions.sent(id, tx);
            }
        }
    }

    /// The digest check of a REGISTER or SUBSCRIBE (the passwords of the
    /// configuration in force: a SIGHUP may change them), counted for bans: the
    /// authenticated user and the user part of the request's To, or `None` once
    /// the request has been challenged.
    fn authenticate(&mut self, req: &Request) -> Option<(String, Option<String>)> {
        let now = unix_now();
        let config = self.engine.directory().config.clone();
        let checked = self.auth.check(&req.request, now, |name| {
            config.user(name).map(|u| u.password.clone())
        });
        let result = Authentication::of(&checked.outcome);
        self.authenticated(req.source.addr, &checked.user, result);
        let user = match checked.outcome {
            Ok(v) => v.username,
            Err(e) => {
                let tag = crate::ids::token();
                let r = self.auth.challenge(&req.request, &Err(e), now, &tag);
                let _ = self.engine.respond(req.tx, r, Instant::now());
                return None;
            }
        };
        let aor = req.request.to().ok().and_then(|t| {
            t.uri
                .as_sip()
                .and_then(|u| u.user.as_ref().map(ToString::to_string))
        });
        Some((user, aor))
    }

    /// REGISTER: digest, then the binding; the 200 goes out once it is on disk.
    fn register(&mut self, req: Request) {
        let now = unix_now();
        let Some((user, aor)) = self.authenticate(&req) else {
            return;
        };
        if aor.as_deref() != Some(user.as_str()) {
            self.answer(&req, StatusCode::FORBIDDEN);
            return;
        }
        let source = Some((req.source.addr, transport(req.source.transport)));
        let tag = crate::ids::token();
        let shared = self.registrar.clone();
        let Ok(mut registrar) = shared.lock() else {
            self.answer(&req, StatusCode::SERVER_INTERNAL_ERROR);
            return;
        };
        let response = match registrar.register(&req.request, &user, source, now) {
            Ok(bindings) => {
                tracing::info!(user = %user, peer = %req.source.addr, contacts = bindings.len(), "registered");
                self.bus.publish(crate::events::Event::Registration {
                    user: user.clone(),
                    contacts: bindings.len(),
                });
                if let Some(change) = self.hints.registered(&user, bindings.len()) {
                    self.publish_hint(change);
                }
                Registrar::<FileStore>::ok_response(&req.request, &bindings, &tag, now)
            }
            Err(e) => e.response(&req.request, &tag),
        };
        let generation = registrar.store().generation();
        drop(registrar);
        self.waiting.push((generation, req.tx, response));
        self.durable_now();
    }

    /// Sends the REGISTER answers whose bindings are now on disk.
    fn durable_now(&mut self) {
        let done = *self.durable.borrow();
        let now = Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(generation, _, _)| *generation <= done);
        self.waiting = waiting;
        for (_, tx, response) in ready {
            let _ = self.engine.respond(tx, response, now);
        }
    }
}
