//! The call engine: calls as sans-IO state machines over pbxkit-sip's B2BUA legs.
//!
//! An [`Engine`] owns one [`TransactionLayer`], the legs of every call in a table
//! keyed by [`LegId`], and the calls in a table keyed by [`CallId`]. It is handed
//! parsed messages, expired timers and [`Command`]s with the current `Instant`, and
//! hands back datagrams to send ([`Engine::poll_transmit`]), [`Event`]s, the
//! requests it does not handle itself (REGISTER, OPTIONS...: [`Engine::poll_request`],
//! answered with [`Engine::respond`]) and its next deadline. Nothing in it awaits,
//! reads the clock or opens a socket: waiting is a state of a call, so one slow
//! peer cannot hold up another call, and a whole PBX of simulated phones runs in a
//! test in simulated time (`tests/engine.rs`).
//!
//! What a call does today: an authenticated user dials (its line's call-limit
//! checked); the dialplan decides, with the engine's own call counts and the
//! directory's live services (DND, forwards) as its live state; forwards and
//! configured destinations are followed (a forward loop gets 482); a
//! [`Decision::Ring`](pbxkit_dialplan::Decision::Ring) rings its steps one after the other (a group's delay between
//! them), each step every registered contact of its users at once for the step's
//! ring time, each user rung holding one of its simultaneous calls (a user at its
//! limit is busy, not rung); the callee's provisional responses and early media go
//! to the caller; the first answer is bridged (the SDP anchored by the [`Media`]
//! the engine is given, passed through by default); a step that ends unanswered goes on with
//! the next one, then with the plan's busy / no-answer / failure fallback.
//! re-INVITEs and UPDATEs are relayed both ways; BYE, CANCEL, no ACK and session
//! timer expiry end the call on both legs. A number the [`Directory`] names an
//! [`Application`] (the echo and playback tests) is answered by the PBX itself on
//! the [`Media`]'s ports; a feature code is handed to the PBX ([`Event::Feature`])
//! and the call waits for its verdict ([`Command::Run`] a confirmation, or
//! [`Command::Reject`]). A REFER is a transfer, blind, attended (`Replaces`) or
//! semi-attended: the target takes the transferor's place. [`Trunk`]s carry calls
//! out (failover to the next trunk on 5xx, 408, 480 or a digest refusal; digest
//! answered with the trunk's credentials; a trunk's `max_calls` held) and in (a
//! trunk is trusted by its address; its caller ID comes from P-Asserted-Identity,
//! Remote-Party-ID or From; the DID is routed in the trunk's context), and a trunk
//! caller refused hears busy or congestion ([`Media::tone`]) before the final
//! response. The engine registers to trunks that ask for it and pings each with
//! OPTIONS ([`QUALIFY_TIMEOUT`]): a silent trunk is skipped until it answers again.
//! A [`Decision::Queue`](pbxkit_dialplan::Decision::Queue) puts the caller in one of
//! the engine's call queues ([`EngineConfig::queues`], run by pbxkit-acd): answered
//! with music on hold ([`Media::queue_wait`]), it waits while the ACD rings the
//! phones of logged-in agents ([`Engine::agent`]); the agent who answers is bridged
//! with it ([`Event::AgentConnected`]), and the ACD's `queue_log` lines come out as
//! [`Event::QueueLog`].
//!
//! ```
//! use pbxkit::engine::{Directory, Engine, EngineConfig};
//! use pbxkit_sip::transaction::Target;
//! use pbxkit_sip::Uri;
//! use std::sync::Arc;
//! use std::time::Instant;
//!
//! #[derive(Debug)]
//! struct Nobody;
//! impl Directory for Nobody {
//!     fn password(&self, _user: &str) -> Option<String> { None }
//!     fn contacts(&self, _line: &str) -> Vec<(Uri, Target)> { Vec::new() }
//! }
//!
//! let dialplan = pbxkit_dialplan::Dialplan::new(
//!     toml::from_str("[[contexts]]\nname = \"default\"\nkind = \"internal\"\n")?,
//!     jiff::tz::db(),
//! )?;
//! let now = Instant::now();
//! let config = EngineConfig::new("pbxkit", "192.0.2.10:5060", b"a secret of thirty-two bytes or more", 7)?;
//! let mut engine = Engine::new(config, Arc::new(dialplan), Nobody, now, 1_700_000_000);
//! // The drain loop, after every input (a datagram, a timer, a command):
//! while let Some(_datagram) = engine.poll_transmit() { /* socket.send_to(..) */ }
//! while let Some(_event) = engine.poll_event() { /* CDR, BLF, API... */ }
//! while let Some(_request) = engine.poll_request() { /* registrar */ }
//! let _wake_at = engine.poll_timeout();
//! assert_eq!(engine.calls(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod apps;
mod bridge;
mod call;
mod group_log;
mod latency;
mod plan;
mod queue;
mod route;
mod table;
mod transfer;
mod trunk;

pub use latency::Latencies;
pub use queue::{AgentCommand, AgentStats, QueueSetup, QueueStats};
pub use trunk::{QUALIFY_TIMEOUT, Trunk, trunk_caller};

use crate::auth::{Authentication, Authenticator};
use crate::hangup::HangupCause;
use bytes::Bytes;
use call::Call;
use pbxkit_dialplan::Dialplan;
use pbxkit_sip::b2bua::{
    IncomingLeg, Leg, LegConfig, LegEvent, OutgoingLegs, Output, RequestKey, Routes,
};
use pbxkit_sip::digest::{Algorithm, DigestServer};
use pbxkit_sip::transaction::{
    ClientTx, Event as TxEvent, SendError, ServerTx, Target, Timers, TransactionLayer, Transmit,
};
use pbxkit_sip::{Message, Method, StatusCode, Uri};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use table::{Key, Table};

/// A leg: one SIP dialog side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(Key);

/// A call: the legs it holds and what it does with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(Key);

#[cfg(test)]
impl CallId {
    /// A call id for unit tests of the engine's consumers.
    pub(crate) fn for_tests(index: u32) -> CallId {
        CallId(Key::for_tests(index))
    }
}

/// What the engine asks of the PBX around it: who may call, and where lines are.
pub trait Directory: std::fmt::Debug {
    /// `user`'s password for digest authentication; `None` for an unknown user
    /// (challenged exactly like a known one).
    fn password(&self, user: &str) -> Option<String>;
    /// Where `line` is registered: each contact's URI and where to send to it.
    fn contacts(&self, line: &str) -> Vec<(Uri, Target)>;
    /// `user`'s services (DND, forwards) as they are now, when they differ from the
    /// dialplan's configuration.
    fn services(&self, user: &str) -> Option<pbxkit_dialplan::UserServices> {
        let _ = user;
        None
    }
    /// Calls `user`'s line may have at once (placed and received) before the calls
    /// it places are refused with 486; `None`: no limit.
    fn call_limit(&self, user: &str) -> Option<u32> {
        let _ = user;
        None
    }
    /// The application the PBX runs itself when `number` is dialled (the echo
    /// test...), before the dialplan is asked.
    fn application(&self, number: &str) -> Option<Application> {
        let _ = number;
        None
    }
    /// `user`'s display name, shown to those it calls.
    fn name(&self, user: &str) -> Option<String> {
        let _ = user;
        None
    }
}

/// A call-progress tone the PBX plays itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tone {
    /// The callee is busy.
    Busy,
    /// The callee cannot be reached (the network is congested, nothing answers).
    Congestion,
}

/// A recording of a call's audio, as [`Media::record`] is asked to make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The WAV file.
    pub file: std::path::PathBuf,
    /// What its sidecar says (a JSON object): parties, call id, start.
    pub info: String,
}

/// What the PBX answers a call with itself, on its own media.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Application {
    /// The caller's audio sent back to it.
    Echo,
    /// A prompt (a WAV file; the built-in beeps when `None`) played once, then the
    /// PBX hangs up ([`Command::HangUp`] once it is over).
    Playback {
        /// The prompt.
        file: Option<std::path::PathBuf>,
    },
    /// Prompts built into the PBX, by name, said one after the other, then the
    /// PBX hangs up like [`Application::Playback`].
    Say {
        /// The prompts' names.
        prompts: Vec<String>,
    },
    /// A conference room, by name: the caller's media joins the room's mix until
    /// it hangs up (or the room hangs it up: a wrong PIN).
    Conference {
        /// The room's name.
        room: String,
    },
    /// Leave a message in a voicemail box: its greeting, the tone, the caller's
    /// message recorded until `#`, a hang-up or the box's longest message.
    Voicemail {
        /// The box's number.
        mailbox: String,
        /// Whether the callee was busy (the busy greeting), else unavailable.
        busy: bool,
        /// Who leaves it (its number), kept with the message.
        caller: String,
        /// The caller's display name (may be empty).
        caller_name: String,
    },
    /// An IVR menu, by extension: its prompt, then the caller's key chooses where
    /// the call goes ([`Command::Divert`]).
    Ivr {
        /// The menu's extension.
        menu: String,
    },
    /// Listen to a voicemail box's messages (`*98`, `*99<box>`), after its PIN
    /// when `pin` is set.
    VoicemailMenu {
        /// The box's number.
        mailbox: String,
        /// Whether the PIN is asked.
        pin: bool,
    },
}

/// Where calls' media go: the PBX's relay anchors it (each side is given the relay's
/// address in the SDP it receives), or nothing does and the SDP passes through.
pub trait Media: std::fmt::Debug {
    /// The SDP offer one side of `call` made (the caller's when `from_caller`), as
    /// the other side is to receive it; `None` passes it on unchanged.
    fn offer(&mut self, call: CallId, from_caller: bool, sdp: &Bytes) -> Option<Bytes>;
    /// The answer one side gave to `offer`, as the offerer is to receive it.
    fn answer(
        &mut self,
        call: CallId,
        from_caller: bool,
        offer: Option<&Bytes>,
        answer: &Bytes,
    ) -> Option<Bytes>;
    /// Runs `app` on the caller's media of `call`, whose offer is `offer`: the SDP
    /// answer to give the caller, or the status to refuse it with (488: no codec
    /// in common; 503: no port free). The application stops at [`Media::close`].
    fn application(
        &mut self,
        call: CallId,
        app: &Application,
        offer: &Bytes,
    ) -> Result<Bytes, StatusCode> {
        let _ = (call, app, offer);
        Err(StatusCode::NOT_IMPLEMENTED)
    }
    /// Starts recording `call` (`Some`: both sides mixed into its file; `sdps`
    /// are the caller's and the callee's descriptions, which name their codecs),
    /// or stops (`None`). Whether it is done: a media that does not anchor the
    /// call cannot record it.
    fn record(
        &mut self,
        call: CallId,
        recording: Option<&Recording>,
        sdps: [Option<&Bytes>; 2],
    ) -> bool {
        let _ = (call, recording, sdps);
        false
    }
    /// Ringback to one side of `call` (the caller's when `to_caller`), whose media
    /// is `sdp`, while a transfer's target rings; `None` stops it.
    fn ringback(&mut self, call: CallId, to_caller: bool, sdp: Option<&Bytes>) {
        let _ = (call, to_caller, sdp);
    }
    /// The party on one side of call `from` (the caller's when `from_caller`) moves
    /// to a side of call `to` (an attended transfer): what it was told so far
    /// carries on there (its SDP origin, RFC 3264 §8).
    fn hand_over(&mut self, from: CallId, from_caller: bool, to: CallId, to_caller: bool) {
        let _ = (from, from_caller, to, to_caller);
    }
    /// Plays `tone` to the caller of `call`, whose offer is `offer`, in early
    /// media: the SDP to send it in a 183, `None` when it cannot be played (the
    /// caller then gets its final status at once). It stops at [`Media::close`].
    fn tone(&mut self, call: CallId, tone: Tone, offer: &Bytes) -> Option<Bytes> {
        let _ = (call, tone, offer);
        None
    }
    /// Answers the caller of `call`, whose offer is `offer`, to wait in a queue
    /// with music on hold (of the class `music` names, the media's own music when
    /// `None`): the SDP answer, or the status to refuse it with. The music stops at
    /// [`Media::queue_connect`] or [`Media::close`].
    fn queue_wait(
        &mut self,
        call: CallId,
        music: Option<&str>,
        offer: &Bytes,
    ) -> Result<Bytes, StatusCode> {
        let _ = (call, music, offer);
        Err(StatusCode::NOT_IMPLEMENTED)
    }
    /// The offer for an agent's phone rung for the caller waiting in `call`
    /// (`None`: the caller's own offer).
    fn queue_offer(&mut self, call: CallId) -> Option<Bytes> {
        let _ = call;
        None
    }
    /// The caller waiting in `call` is told where it is (its 1-based position,
    /// the queue's expected wait), over the music.
    fn queue_announce(
        &mut self,
        call: CallId,
        position: Option<u32>,
        expected_wait: Option<std::time::Duration>,
    ) {
        let _ = (call, position, expected_wait);
    }
    /// An agent's phone answered `call` with `answer` (to the offer of
    /// [`Media::queue_offer`]): the music stops, the caller and the agent are
    /// bridged.
    fn queue_connect(&mut self, call: CallId, answer: &Bytes) {
        let _ = (call, answer);
    }
    /// The call is over: its media resources go back.
    fn close(&mut self, call: CallId);
}

/// No media anchoring: the phones' SDP passes through, their RTP goes directly
/// between them.
#[derive(Debug, Default)]
pub struct PassThrough;

impl Media for PassThrough {
    fn offer(&mut self, _: CallId, _: bool, _: &Bytes) -> Option<Bytes> {
        None
    }

    fn answer(&mut self, _: CallId, _: bool, _: Option<&Bytes>, _: &Bytes) -> Option<Bytes> {
        None
    }

    fn close(&mut self, _: CallId) {}
}

/// The dialplan's view of the PBX: the engine's call counts and the directory's
/// live services.
#[derive(Debug)]
struct Live<'a, D> {
    in_use: &'a HashMap<String, u32>,
    directory: &'a D,
    history: &'a crate::history::History,
    /// This decision's draw for the random strategies.
    random: u64,
}

impl<D: Directory> pbxkit_dialplan::LiveState for Live<'_, D> {
    fn in_use(&self, user: &str) -> u32 {
        self.in_use.get(user).copied().unwrap_or(0)
    }

    fn services(&self, user: &str) -> Option<pbxkit_dialplan::UserServices> {
        self.directory.services(user)
    }

    fn group_last_answered(&self, group: &str) -> Option<&str> {
        self.history.last_answered(group)
    }

    fn member_last_call(&self, group: &str, user: &str) -> Option<jiff::Timestamp> {
        self.history.last_call(group, user)
    }

    fn member_calls(&self, group: &str, user: &str) -> u32 {
        self.history.calls(group, user)
    }

    fn random(&self) -> u64 {
        self.random
    }

    fn ring_order(
        &self,
        strategy: pbxkit_dialplan::config::RingStrategy,
        members: &[pbxkit_dialplan::GroupMember],
        cursor: usize,
        seed: u64,
    ) -> Vec<usize> {
        group_ring_order(strategy, members, cursor, seed)
    }
}

/// A ring group's order by pbxkit-acd's strategies (XiVO runs groups as queues:
/// one implementation of app_queue's metrics), as the engine gives it to the
/// dialplan ([`pbxkit_dialplan::LiveState::ring_order`]): members at their
/// definition positions, no penalty, the random draws from `seed`.
pub fn group_ring_order(
    strategy: pbxkit_dialplan::config::RingStrategy,
    members: &[pbxkit_dialplan::GroupMember],
    cursor: usize,
    seed: u64,
) -> Vec<usize> {
    use pbxkit_acd::strategy::{MemberFacts, SeededRng, Strategy, ring_order};
    use pbxkit_dialplan::config::RingStrategy as R;
    let strategy = match strategy {
        R::Linear => Strategy::Linear,
        R::LeastRecent => Strategy::LeastRecent,
        R::FewestCalls => Strategy::FewestCalls,
        R::RoundRobinMemory => Strategy::RrMemory,
        R::Random => Strategy::Random,
        R::WeightedRandom => Strategy::WRandom,
        // RingAll, and any strategy a newer dialplan adds: all at once.
        _ => Strategy::RingAll,
    };
    let facts: Vec<MemberFacts> = members
        .iter()
        .map(|m| {
            let mut facts = MemberFacts::at(m.position);
            facts.calls = m.calls;
            facts.since_last_call = m.since_last_call;
            facts
        })
        .collect();
    ring_order(strategy, &facts, cursor, &mut SeededRng::new(seed))
}

/// One call less for `user`; users back at zero are forgotten.
fn release(in_use: &mut HashMap<String, u32>, user: &str) {
    if let Some(n) = in_use.get_mut(user) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            in_use.remove(user);
        }
    }
}

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The digest realm.
    pub realm: String,
    /// The secret digest nonces are signed with (nodes sharing it accept each
    /// other's nonces).
    pub nonce_secret: Vec<u8>,
    /// Seconds a nonce is valid.
    pub nonce_lifetime: u64,
    /// Most nonces remembered as used (replays of them are refused).
    pub nonce_max_tracked: usize,
    /// The digest algorithms offered, one challenge each, in this order.
    pub algorithms: Vec<Algorithm>,
    /// What every leg needs: our Via sent-by, our Contact, timers, session timers.
    pub leg: LegConfig,
    /// How long users ring when the dialplan gives no time.
    pub ring_time: Duration,
    /// How long a call waits for the PBX to act on its feature code.
    pub feature_wait: Duration,
    /// Seeds the tags, branches and Call-IDs of legs (random in production, fixed
    /// in simulations).
    pub seed: u64,
    /// The call queues (the dialplan's queues of these names put callers in them).
    pub queues: Vec<QueueSetup>,
}

impl EngineConfig {
    /// A configuration for realm `realm`, reached at `sent_by` (`host:port`), with
    /// the RFC timers, 1800 s session timers and a 30 s ring time.
    /// Fails when `sent_by` does not make a SIP URI.
    pub fn new(
        realm: &str,
        sent_by: &str,
        nonce_secret: &[u8],
        seed: u64,
    ) -> Result<EngineConfig, pbxkit_sip::ParseError> {
        let contact = Uri::parse(&format!("sip:pbx@{sent_by}"))?;
        Ok(EngineConfig {
            realm: realm.to_owned(),
            nonce_secret: nonce_secret.to_vec(),
            nonce_lifetime: 300,
            nonce_max_tracked: pbxkit_sip::digest::DEFAULT_MAX_TRACKED,
            algorithms: vec![Algorithm::Md5],
            leg: LegConfig::new(sent_by, contact),
            ring_time: Duration::from_secs(30),
            feature_wait: Duration::from_secs(10),
            seed,
            queues: Vec::new(),
        })
    }

    /// The same with these transaction timers (the legs' and the layer's).
    pub fn with_timers(mut self, timers: Timers) -> EngineConfig {
        self.leg.timers = timers;
        self
    }
}

/// What changes the course of a call from outside (the API, CTI, the ACD driver,
/// applications). More commands come as features move onto the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// End the call: CANCEL or reject what rings, BYE what is answered.
    HangUp,
    /// Answer a call that does not ring yet with an application of the PBX (a
    /// feature code's confirmation, after [`Event::Feature`]).
    Run(Application),
    /// Refuse a call that does not ring yet with this status (400–699).
    Reject(StatusCode),
    /// Record the call's audio, both parties mixed (`Some`), or stop (`None`).
    Record(Option<Recording>),
    /// Ring this number (a user or a group) for the caller of a call an
    /// application of the PBX answered (an IVR's choice): the application's media
    /// is over, the caller hears ringback, and the one who answers takes the call
    /// (nobody answering ends it).
    Divert(String),
}

/// Why a call that was not answered ended: the status its caller got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The caller hung up first (CANCEL; it got 487).
    Cancelled,
    /// The caller got this final status (404, 480, 486...).
    Refused(StatusCode),
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was answered, then ended for this reason.
    Answered(HangupCause),
    /// It was not answered.
    Unanswered(Unanswered),
}

impl Outcome {
    /// The Q.850 cause the call ended with (RFC 3398 for a status).
    pub fn q850(&self) -> u8 {
        match self {
            Outcome::Answered(cause) => cause.q850(),
            Outcome::Unanswered(Unanswered::Cancelled) => {
                pbxkit_sip::cause::cause_for_status(StatusCode::REQUEST_TERMINATED)
            }
            Outcome::Unanswered(Unanswered::Refused(status)) => {
                pbxkit_sip::cause::cause_for_status(*status)
            }
        }
    }
}

/// What happened, for the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An authenticated call arrived.
    CallCreated {
        /// The call.
        call: CallId,
        /// The Call-ID of the caller's INVITE (what the caller's phone and the CDR
        /// know the call by).
        sip_call_id: String,
        /// The calling user.
        caller: String,
        /// What it dialled.
        dialed: String,
    },
    /// A ring step's phones ring (the callee's, a group's members', a transfer
    /// target's), instead of those rung before for the call.
    CallRinging {
        /// The call.
        call: CallId,
        /// The users rung, in the step's order; empty when nothing rings for the
        /// call any more though it goes on (a transfer's target did not answer).
        users: Vec<String>,
        /// The group they are members of, when a group is dialled.
        group: Option<String>,
    },
    /// The callee answered.
    CallAnswered {
        /// The call.
        call: CallId,
        /// Who answered (the user rung).
        callee: String,
    },
    /// An INVITE's credentials were checked, for the PBX's brute-force bans.
    Authentication {
        /// Where the INVITE came from.
        source: std::net::SocketAddr,
        /// The user it claimed (credentials, else From).
        user: String,
        /// How it went.
        result: crate::auth::Authentication,
    },
    /// The caller dialled a feature code: the call waits (up to
    /// [`EngineConfig::feature_wait`], then 500) for the PBX to act on it and tell
    /// it what the caller gets: [`Command::Run`] (a confirmation) or
    /// [`Command::Reject`].
    Feature {
        /// The call.
        call: CallId,
        /// The calling user.
        user: String,
        /// What the code asks.
        action: pbxkit_dialplan::FeatureAction,
    },
    /// A transfer put `user` in the place of one of the call's parties.
    CallTransferred {
        /// The call.
        call: CallId,
        /// Who took the transferor's place.
        user: String,
        /// The transferor, who left the call (a trunk's number, or `None` when
        /// unknown).
        transferor: Option<String>,
    },
    /// A party put the other on hold (`held`), or took it off hold: its offer
    /// (re-INVITE or UPDATE) made the audio `sendonly`/`inactive` (or had the
    /// RFC 2543 `0.0.0.0` address), or sending and receiving again, and the other
    /// side accepted it.
    CallHeld {
        /// The call.
        call: CallId,
        /// The party that holds (or resumes): its phone shows the call on hold.
        user: String,
        /// On hold (`true`) or resumed.
        held: bool,
    },
    /// A trunk answers its OPTIONS again: calls go out through it.
    TrunkUp {
        /// The trunk.
        trunk: String,
    },
    /// A trunk did not answer an OPTIONS within [`QUALIFY_TIMEOUT`]: calls skip it.
    TrunkDown {
        /// The trunk.
        trunk: String,
    },
    /// The PBX registered to a trunk (reported once, not at each refresh).
    TrunkRegistered {
        /// The trunk.
        trunk: String,
    },
    /// A registration to a trunk failed; it is tried again later.
    TrunkRegistrationFailed {
        /// The trunk.
        trunk: String,
        /// What the trunk answered (`None`: no answer).
        status: Option<StatusCode>,
    },
    /// A request the PBX sent itself ([`Engine::send_request`]: a NOTIFY) got its
    /// final answer.
    RequestAnswered {
        /// Its client transaction.
        tx: ClientTx,
        /// The final status (`None`: no answer, or the transport failed).
        status: Option<StatusCode>,
    },
    /// The ACD gave a caller waiting in `queue` to `agent`, whose phone (`user`'s)
    /// answered: they are bridged.
    AgentConnected {
        /// The call.
        call: CallId,
        /// The queue.
        queue: String,
        /// The agent's number.
        agent: String,
        /// The user whose phone the agent answered on.
        user: String,
    },
    /// A line of the call centre's `queue_log` (Asterisk's format: print it with
    /// `Display`), in the order the ACD wrote them.
    QueueLog(pbxkit_acd::queue_log::Line),
    /// A queue changed (a caller came, was answered or left; an agent's state
    /// changed there): its live statistics now.
    QueueStatus(QueueStats),
    /// An agent's state changed (logged in or out, paused, ringing, on a call,
    /// wrap-up).
    AgentStatus {
        /// The agent's number.
        agent: String,
        /// Its state now.
        state: pbxkit_acd::AgentState,
    },
    /// The call is over and every leg of it released.
    CallEnded {
        /// The call.
        call: CallId,
        /// The calling user.
        caller: String,
        /// What it dialled.
        dialed: String,
        /// Who answered, if anyone.
        callee: Option<String>,
        /// How it ended.
        outcome: Outcome,
    },
}

/// A request the engine does not handle itself, for the PBX to answer with
/// [`Engine::respond`].
#[derive(Debug, Clone)]
pub struct Request {
    /// Its server transaction.
    pub tx: ServerTx,
    /// The request.
    pub request: Message,
    /// Where it came from.
    pub source: Target,
}

/// A leg and the call it belongs to.
#[derive(Debug)]
struct LegSlot {
    call: CallId,
    leg: AnyLeg,
    /// The deadline queued for it in [`Engine::timers`].
    armed: Option<Instant>,
}

/// Whose deadline a queued timer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Leg(LegId),
    Call(CallId),
}

#[derive(Debug)]
enum AnyLeg {
    Incoming(Box<IncomingLeg>),
    Outgoing(Box<OutgoingLegs>),
}

impl AnyLeg {
    fn leg(&mut self) -> &mut dyn Leg {
        match self {
            AnyLeg::Incoming(l) => l.as_mut(),
            AnyLeg::Outgoing(l) => l.as_mut(),
        }
    }
}

/// The engine. `D` tells it users' passwords and lines' contacts.
#[derive(Debug)]
pub struct Engine<D> {
    config: EngineConfig,
    layer: TransactionLayer,
    auth: Authenticator,
    directory: D,
    dialplan: Arc<Dialplan>,
    legs: Table<LegSlot>,
    calls: Table<Call>,
    routes: Routes<LegId>,
    /// Legs with outputs to collect.
    dirty: VecDeque<LegId>,
    /// Deadlines of legs and calls, earliest first. An entry whose owner has since
    /// moved its deadline (or gone) is stale and skipped: no scan of every leg.
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Calls whose deadline may have changed since they were last queued.
    touched: Vec<CallId>,
    /// ACKs of 2xx responses, sent as they are.
    acks: VecDeque<Transmit>,
    events: VecDeque<Event>,
    requests: VecDeque<Request>,
    /// Calls in progress per user: placed ones, ringing ones and answered ones.
    in_use: HashMap<String, u32>,
    /// What group strategies remember.
    history: crate::history::History,
    /// Anchors the calls' media (or not).
    media: Box<dyn Media + Send>,
    /// The trunks, with their registrations and pings.
    trunks: Vec<trunk::TrunkState>,
    /// The engine's own requests to trunks in flight.
    trunk_txs: HashMap<ClientTx, (String, trunk::TrunkRequest)>,
    /// Requests the PBX sent for itself ([`Engine::send_request`]).
    own_txs: std::collections::HashSet<ClientTx>,
    /// `Instant` and Unix seconds at the same moment: digest nonces are wall-clock.
    epoch: (Instant, u64),
    tokens: u64,
    /// Queues and agents.
    centre: queue::CallCentre,
}

impl<D: Directory> Engine<D> {
    /// An engine with no call, at `now` (which is `unix` seconds since 1970).
    pub fn new(
        config: EngineConfig,
        dialplan: Arc<Dialplan>,
        directory: D,
        now: Instant,
        unix: u64,
    ) -> Engine<D> {
        Engine {
            layer: TransactionLayer::new(config.leg.timers),
            // Nonces issued before `now` (by an earlier run) are answered stale: the
            // used-nonce table starts empty and could not refuse their replays.
            auth: Authenticator::new(
                &config.realm,
                DigestServer::new(&config.realm, &config.nonce_secret, config.nonce_lifetime)
                    .with_max_tracked(config.nonce_max_tracked)
                    .remembering_since(unix),
                config.algorithms.clone(),
            ),
            directory,
            dialplan,
            legs: Table::default(),
            calls: Table::default(),
            routes: Routes::new(),
            dirty: VecDeque::new(),
            timers: BinaryHeap::new(),
            touched: Vec::new(),
            acks: VecDeque::new(),
            events: VecDeque::new(),
            requests: VecDeque::new(),
            in_use: HashMap::new(),
            history: crate::history::History::default(),
            media: Box::new(PassThrough),
            trunks: Vec::new(),
            trunk_txs: HashMap::new(),
            own_txs: std::collections::HashSet::new(),
            epoch: (now, unix),
            tokens: config.seed,
            centre: queue::CallCentre::new(&config.queues, now, unix, config.seed),
            config,
        }
    }

    /// Anchors calls' media with `media` from now on (the SDP passes through by
    /// default).
    pub fn with_media(mut self, media: impl Media + Send + 'static) -> Engine<D> {
        self.media = Box::new(media);
        self
    }

    /// What the engine asks about users and lines.
    pub fn directory(&self) -> &D {
        &self.directory
    }

    /// The same, to change (a new configuration behind it).
    pub fn directory_mut(&mut self) -> &mut D {
        &mut self.directory
    }

    /// Runs new calls on `dialplan` from now on; calls in progress are not affected.
    pub fn set_dialplan(&mut self, dialplan: Arc<Dialplan>) {
        self.dialplan = dialplan;
    }

    /// Offers these digest algorithms from now on (a new configuration).
    pub fn set_digest_algorithms(&mut self, algorithms: Vec<Algorithm>) {
        self.auth.set_algorithms(algorithms);
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Legs in progress (every leg is released when its call ends).
    pub fn legs(&self) -> usize {
        self.legs.len()
    }

    /// Calls `user` has in progress: placed, ringing at its phones, answered.
    pub fn in_use(&self, user: &str) -> u32 {
        self.in_use.get(user).copied().unwrap_or(0)
    }

    /// Whether nothing is left: no call, no leg, no route, no transaction.
    pub fn is_idle(&self) -> bool {
        self.calls.len() == 0
            && self.legs.len() == 0
            && self.in_use.is_empty()
            && self.routes.is_empty()
            && self.layer.is_empty()
            && self.own_txs.is_empty()
            && self.centre.is_idle()
    }

    /// Whether every call counted in use (per user and per trunk) is held by a
    /// live call, ringing or talking, and no call holds one that is not counted:
    /// the invariant that keeps call limits exact. `Err` names the counts that
    /// differ. O(calls): for tests and debugging.
    pub fn check_counts(&self) -> Result<(), String> {
        let mut held: HashMap<&str, u32> = HashMap::new();
        for key in self.calls.keys() {
            let Some(c) = self.calls.get(key) else {
                continue;
            };
            let transfer = c.transfer.iter().flat_map(|t| t.holds.iter());
            for user in c.holds.iter().chain(&c.ringing_holds).chain(transfer) {
                *held.entry(user).or_default() += 1;
            }
            for user in self.agents_ringing(CallId(key)) {
                *held.entry(user).or_default() += 1;
            }
        }
        let mut wrong: Vec<String> = self
            .in_use
            .iter()
            .filter(|(user, n)| held.get(user.as_str()) != Some(n))
            .map(|(user, n)| {
                format!(
                    "{user}: {n} counted, {} held",
                    held.get(user.as_str()).unwrap_or(&0)
                )
            })
            .collect();
        wrong.extend(
            held.iter()
                .filter(|(user, _)| !self.in_use.contains_key(**user))
                .map(|(user, n)| format!("{user}: 0 counted, {n} held")),
        );
        if wrong.is_empty() {
            Ok(())
        } else {
            wrong.sort();
            Err(wrong.join("; "))
        }
    }

    /// A message received from `source`.
    pub fn handle_message(&mut self, message: Message, source: Target, now: Instant) {
        self.layer.handle_message(message, source, now);
        self.drive(now);
    }

    /// Timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.trunks_tick(now);
        self.acd_timeout(now);
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Leg(id) => {
                    let Some(slot) = self.legs.get_mut(id.0) else {
                        continue;
                    };
                    if slot.armed != Some(at) {
                        continue;
                    }
                    slot.armed = None;
                    if poll_leg_timeout(&slot.leg).is_some_and(|t| t <= now) {
                        slot.leg.leg().handle_timeout(now);
                    }
                    self.dirty.push_back(id);
                }
                Timer::Call(call) => {
                    let Some(c) = self.calls.get_mut(call.0) else {
                        continue;
                    };
                    if c.armed != Some(at) {
                        continue;
                    }
                    c.armed = None;
                    self.touched.push(call);
                    if c.deadline().is_some_and(|t| t <= now) {
                        let _in_call = self.span(call).entered();
                        self.ring_timeout(call, now);
                    }
                }
            }
        }
        self.drive(now);
    }

    /// `call`'s tracing span (none once it has ended).
    fn span(&self, call: CallId) -> tracing::Span {
        self.calls
            .get(call.0)
            .map_or_else(tracing::Span::none, |c| c.span.clone())
    }

    /// Queues a leg's next deadline, when it moved.
    fn arm_leg(&mut self, id: LegId) {
        let Some(slot) = self.legs.get_mut(id.0) else {
            return;
        };
        let at = poll_leg_timeout(&slot.leg);
        if at != slot.armed {
            slot.armed = at;
            if let Some(at) = at {
                self.timers.push(Reverse((at, Timer::Leg(id))));
            }
        }
    }

    /// Queues the deadlines of the calls touched, when they moved.
    fn arm_calls(&mut self) {
        for call in std::mem::take(&mut self.touched) {
            let Some(c) = self.calls.get_mut(call.0) else {
                continue;
            };
            let at = c.deadline();
            if at != c.armed {
                c.armed = at;
                if let Some(at) = at {
                    self.timers.push(Reverse((at, Timer::Call(call))));
                }
            }
        }
    }

    /// Applies `command` to `call` (unknown or ended calls ignore it).
    pub fn command(&mut self, call: CallId, command: Command, now: Instant) {
        self.touched.push(call);
        let _in_call = self.span(call).entered();
        match command {
            Command::HangUp => self.hang_up_call(call, HangupCause::Pbx, now),
            Command::Run(app) => {
                if self.calls.get(call.0).is_some_and(Call::is_unanswered_idle) {
                    self.run_application(call, &app, now);
                }
            }
            Command::Record(recording) => {
                let legs = self.calls.get(call.0).map(|c| (c.a, c.b));
                if let Some((Some(a), Some(b))) = legs {
                    let sdps = [self.remote_sdp(a), self.remote_sdp(b)];
                    let _ = self.media.record(
                        call,
                        recording.as_ref(),
                        [sdps[0].as_ref(), sdps[1].as_ref()],
                    );
                }
            }
            Command::Divert(number) => {
                if let Some(c) = self.calls.get_mut(call.0)
                    && c.is_application()
                {
                    c.application_left();
                    self.divert(call, &number, now);
                }
            }
            Command::Reject(status) => {
                if status.as_u16() >= 400
                    && self.calls.get(call.0).is_some_and(Call::is_unanswered_idle)
                {
                    self.refuse(call, status, now);
                }
            }
        }
        self.drive(now);
    }

    /// Ends every call (the PBX is stopping): CANCEL or reject what rings, BYE what
    /// is answered. Keep driving the engine until [`Engine::calls`] is 0.
    pub fn hang_up_all(&mut self, now: Instant) {
        let calls: Vec<CallId> = self.calls.keys().map(CallId).collect();
        for call in calls {
            self.touched.push(call);
            self.hang_up_call(call, HangupCause::Pbx, now);
        }
        self.drive(now);
    }

    /// Sends a request of the PBX's own (a NOTIFY of a subscription it accepted);
    /// its final answer comes as [`Event::RequestAnswered`].
    ///
    /// # Errors
    ///
    /// As the transaction layer's `send_request`.
    pub fn send_request(
        &mut self,
        request: Message,
        target: Target,
        now: Instant,
    ) -> Result<ClientTx, SendError> {
        let tx = self.layer.send_request(request, target, now)?;
        self.own_txs.insert(tx);
        self.drive(now);
        Ok(tx)
    }

    /// An answer to one of [`Engine::send_request`]'s requests as an event; other
    /// events are given back.
    fn own_event(&mut self, event: TxEvent) -> Option<TxEvent> {
        let (tx, status) = match &event {
            TxEvent::Response { tx, response } => (*tx, response.status()),
            TxEvent::Timeout { tx } | TxEvent::TransportError { tx } => (*tx, None),
            _ => return Some(event),
        };
        if !self.own_txs.contains(&tx) {
            return Some(event);
        }
        if status.is_some_and(|s| s.is_provisional()) {
            return None;
        }
        self.own_txs.remove(&tx);
        self.events.push_back(Event::RequestAnswered { tx, status });
        None
    }

    /// Answers a request given by [`Engine::poll_request`].
    pub fn respond(
        &mut self,
        tx: ServerTx,
        response: Message,
        now: Instant,
    ) -> Result<(), SendError> {
        let sent = self.layer.respond(tx, response, now);
        self.drive(now);
        sent
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.acks.pop_front().or_else(|| self.layer.poll_transmit())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next request for the PBX (not an INVITE or in a dialog of ours).
    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Stale entries at the top are dropped, so that the answer is exact.
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            let live = match timer {
                Timer::Leg(id) => self.legs.get(id.0).is_some_and(|s| s.armed == Some(at)),
                Timer::Call(c) => self.calls.get(c.0).is_some_and(|c| c.armed == Some(at)),
            };
            if live {
                break;
            }
            self.timers.pop();
        }
        let mine = self.timers.peek().map(|Reverse((at, _))| *at);
        [
            mine,
            self.layer.poll_timeout(),
            self.trunks_deadline(),
            self.centre.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    /// A fresh draw for the random ring strategies.
    fn random(&mut self) -> u64 {
        self.tokens = self.tokens.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.tokens;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn token(&mut self) -> String {
        // splitmix64: distinct for distinct counters; unguessable with a random seed.
        format!("{:016x}", self.random())
    }

    /// Runs until nothing is left to do: the layer's events to their legs, the legs'
    /// outputs to the layer and to their calls.
    fn drive(&mut self, now: Instant) {
        loop {
            if let Some(id) = self.dirty.pop_front() {
                let call = self.legs.get(id.0).map(|s| s.call);
                if let Some(call) = call {
                    self.touched.push(call);
                }
                let _in_call = call.map(|c| self.span(c).entered());
                self.pump(id, now);
                self.arm_leg(id);
                if let Some(call) = call {
                    self.finish_call(call, now);
                }
                continue;
            }
            let Some(event) = self.layer.poll_event() else {
                self.arm_calls();
                break;
            };
            let Some(event) = self.trunk_event(event, now) else {
                continue;
            };
            let Some(event) = self.own_event(event) else {
                continue;
            };
            match self.routes.route(&event) {
                Some(id) => {
                    if let Some(slot) = self.legs.get_mut(id.0) {
                        slot.leg.leg().handle_event(event, now);
                        self.dirty.push_back(id);
                    }
                }
                None => self.unrouted(event, now),
            }
        }
    }

    /// Collects a leg's outputs.
    fn pump(&mut self, id: LegId, now: Instant) {
        loop {
            let Some(slot) = self.legs.get_mut(id.0) else {
                return;
            };
            let call = slot.call;
            let Some(output) = slot.leg.leg().poll_output() else {
                return;
            };
            match output {
                Output::Request {
                    key,
                    request,
                    target,
                } => self.send(id, key, request, target, now),
                Output::Response { tx, response } => {
                    let _ = self.layer.respond(tx, response, now);
                }
                Output::Ack { request, target } => self.acks.push_back(Transmit {
                    target,
                    bytes: request.to_bytes(),
                }),
                Output::Event(LegEvent::Terminated) => {
                    self.legs.remove(id.0);
                    self.routes.remove(id);
                    self.leg_gone(call, id, now);
                    return;
                }
                Output::Event(event) => self.leg_event(call, id, event, now),
                _ => {}
            }
        }
    }

    fn send(&mut self, id: LegId, key: RequestKey, request: Message, target: Target, now: Instant) {
        let sent: Result<ClientTx, SendError> = self.layer.send_request(request, target, now);
        if let Ok(tx) = &sent {
            self.routes.client(*tx, id);
        }
        if let Some(slot) = self.legs.get_mut(id.0) {
            slot.leg.leg().sent(key, sent, now);
        }
    }

    /// An event no leg takes: a new INVITE, a request for the PBX, or a stray.
    fn unrouted(&mut self, event: TxEvent, now: Instant) {
        let TxEvent::Request {
            tx,
            request,
            source,
        } = event
        else {
            return;
        };
        let in_dialog = request.to().is_ok_and(|t| t.tag().is_some());
        match request.method() {
            Some(Method::Invite) if !in_dialog => self.invite(tx, request, source, now),
            // Subscriptions are the PBX's, in their dialogs too (refreshes).
            Some(Method::Subscribe) => self.requests.push_back(Request {
                tx,
                request,
                source,
            }),
            // Requests in dialogs we don't have (a call that ended).
            _ if in_dialog => {
                let r = Message::response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
                let _ = self.layer.respond(tx, r, now);
            }
            _ => self.requests.push_back(Request {
                tx,
                request,
                source,
            }),
        }
    }

    /// Checks an INVITE's credentials; answers 401 itself when they don't hold.
    fn authenticate(
        &mut self,
        tx: ServerTx,
        request: &Message,
        source: Target,
        now: Instant,
    ) -> Option<String> {
        let unix = self.unix(now);
        let directory = &self.directory;
        let checked = self
            .auth
            .check(request, unix, |name| directory.password(name));
        self.events.push_back(Event::Authentication {
            source: source.addr,
            user: checked.user,
            result: Authentication::of(&checked.outcome),
        });
        match checked.outcome {
            Ok(verified) => Some(verified.username),
            Err(e) => {
                let token = self.token();
                let r = self.auth.challenge(request, &Err(e), unix, &token);
                let _ = self.layer.respond(tx, r, now);
                None
            }
        }
    }

    /// A new call: authenticate (a trunk is trusted by its address), take the
    /// caller's leg, ask the dialplan.
    fn invite(&mut self, tx: ServerTx, request: Message, source: Target, now: Instant) {
        let (caller, context) = match self.trunk_at(source.addr) {
            Some(trunk) => {
                let (number, name) = trunk_caller(&request);
                let caller = call::Caller {
                    number,
                    name,
                    trunk: Some(trunk.name.clone()),
                };
                (caller, trunk.context.clone())
            }
            None => {
                let Some(user) = self.authenticate(tx, &request, source, now) else {
                    return;
                };
                let name = self.directory.name(&user);
                (call::Caller::user(&user, name), "default".to_owned())
            }
        };
        let dialed = request
            .request_uri()
            .and_then(Uri::as_sip)
            .and_then(|u| u.user.as_ref().map(ToString::to_string))
            .unwrap_or_default();
        let token = self.token();
        let sip_call_id = request
            .call_id()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        let leg = IncomingLeg::new(self.config.leg.clone(), &token, tx, request, source, now);
        let key = leg.key();
        let Some(call) = self
            .calls
            .insert_with(|_| Call::new(caller.clone(), dialed.clone()))
            .map(CallId)
        else {
            return;
        };
        let Some(a) = self.add_leg(call, AnyLeg::Incoming(Box::new(leg))) else {
            self.calls.remove(call.0);
            return;
        };
        self.routes.insert(key, a);
        self.routes.server(tx, a);
        let span = tracing::info_span!(
            "call",
            call_id = %sip_call_id,
            caller = %caller.number,
            dialed = %dialed
        );
        let _in_call = span.clone().entered();
        if let Some(c) = self.calls.get_mut(call.0) {
            c.a = Some(a);
            c.span = span;
        }
        self.events.push_back(Event::CallCreated {
            call,
            sip_call_id,
            caller: caller.number.clone(),
            dialed: dialed.clone(),
        });
        // The caller's line (or trunk) has one call more, checked against its
        // call-limit (or the trunk's max_calls).
        let (counted, limit, full) = match &caller.trunk {
            Some(trunk) => {
                let max = self.trunks_max_calls(trunk).unwrap_or(u32::MAX);
                (
                    format!("trunk:{trunk}"),
                    max,
                    StatusCode::SERVICE_UNAVAILABLE,
                )
            }
            None => (
                caller.number.clone(),
                self.directory
                    .call_limit(&caller.number)
                    .unwrap_or(u32::MAX),
                StatusCode::BUSY_HERE,
            ),
        };
        let n = self.in_use.entry(counted.clone()).or_default();
        if *n >= limit {
            if *n == 0 {
                self.in_use.remove(&counted);
            }
            self.refuse(call, full, now);
            return;
        }
        *n += 1;
        if let Some(c) = self.calls.get_mut(call.0) {
            c.holds.push(counted);
        }
        if caller.trunk.is_none()
            && let Some(app) = self.directory.application(&dialed)
        {
            self.run_application(call, &app, now);
            return;
        }
        self.route(call, &context, &dialed, 0, now);
    }

    fn add_leg(&mut self, call: CallId, leg: AnyLeg) -> Option<LegId> {
        let id = self
            .legs
            .insert_with(|_| LegSlot {
                call,
                leg,
                armed: None,
            })
            .map(LegId)?;
        if let Some(c) = self.calls.get_mut(call.0) {
            c.legs += 1;
        }
        self.dirty.push_back(id);
        Some(id)
    }
}

fn poll_leg_timeout(leg: &AnyLeg) -> Option<Instant> {
    match leg {
        AnyLeg::Incoming(l) => l.poll_timeout(),
        AnyLeg::Outgoing(l) => l.poll_timeout(),
    }
}
