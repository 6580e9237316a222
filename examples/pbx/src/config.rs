//! The PBX configuration: TOML, with an embedded default so that the PBX runs with no file.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The configuration used when no file is given.
pub(crate) const DEFAULT: &str = include_str!("default.toml");

/// The whole PBX configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) sip: Sip,
    #[serde(default)]
    pub(crate) registrar: Registrar,
    #[serde(default)]
    pub(crate) pbx: Pbx,
    #[serde(default)]
    pub(crate) rtp: Rtp,
    #[serde(default)]
    pub(crate) http: Http,
    #[serde(default)]
    pub(crate) provisioning: Provisioning,
    #[serde(default)]
    pub(crate) security: Security,
    #[serde(default)]
    pub(crate) users: Vec<User>,
    /// Accounts of the tools that use the REST API (wazo-auth's service backend).
    #[serde(default)]
    pub(crate) api_users: Vec<ApiUser>,
    /// Contact sources of the directory service beside the users: CSV files
    /// (wazo-dird's `csv` back-end keys).
    #[serde(default)]
    pub(crate) directories: Vec<pbxkit_directory::CsvConfig>,
    /// Where events are POSTed as they happen.
    #[serde(default)]
    pub(crate) webhooks: Vec<Webhook>,
    /// Desk phones the provisioning server configures, by MAC.
    #[serde(default)]
    pub(crate) devices: Vec<Device>,
    #[serde(default)]
    pub(crate) extensions: Vec<Extension>,
    #[serde(default)]
    pub(crate) trunks: Vec<Trunk>,
    #[serde(default)]
    pub(crate) routes: Vec<Route>,
    #[serde(default)]
    pub(crate) incalls: Vec<Incall>,
    #[serde(default)]
    pub(crate) groups: Vec<Group>,
    #[serde(default)]
    pub(crate) queues: Vec<Queue>,
    #[serde(default)]
    pub(crate) agents: Vec<Agent>,
    #[serde(default)]
    pub(crate) conferences: Vec<Conference>,
    #[serde(default)]
    pub(crate) voicemails: Vec<Voicemail>,
    #[serde(default)]
    pub(crate) ivrs: Vec<Ivr>,
    /// Music-on-hold classes: WAV files a queue's callers hear.
    #[serde(default)]
    pub(crate) music_on_hold: Vec<MusicOnHold>,
    /// Pause reasons by the code an agent dials after `*34…*`: `1 = "lunch"`.
    /// The name is the `PAUSE`/`PAUSEALL` line's reason in the `queue_log`.
    #[serde(default)]
    pub(crate) pause_reasons: std::collections::BTreeMap<String, String>,
    /// Users by extension (position in `users`), built by [`Config::parse`].
    #[serde(skip)]
    user_index: std::collections::HashMap<String, usize>,
}

/// A ring group: an extension that rings its member users, together or one after
/// the other (XiVO/Wazo groups: the strategies of Asterisk queues).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Group {
    pub(crate) exten: String,
    pub(crate) name: String,
    /// `ringall` (default), `linear`, `leastrecent`, `fewestcalls`, `rrmemory`,
    /// `random` or `wrandom`.
    #[serde(default = "ringall")]
    pub(crate) strategy: String,
    /// Member users, by extension (the order of `linear` and `rrmemory`).
    pub(crate) members: Vec<String>,
    /// Seconds the call rings in the group before it goes to `no_answer` (no limit
    /// when absent).
    #[serde(default)]
    pub(crate) ring_time: Option<u32>,
    /// Seconds each member rings, one at a time, in the serial strategies.
    #[serde(default = "member_ring_time")]
    pub(crate) member_ring_time: u32,
    /// Seconds between two members in the serial strategies.
    #[serde(default = "retry_delay")]
    pub(crate) retry_delay: u32,
    /// Whether members already on a call ring too.
    #[serde(default = "yes")]
    pub(crate) ring_in_use: bool,
    /// An extension (user or group) for the calls no member answered: nobody
    /// registered or free, or the ring time ran out. Without it the caller gets
    /// busy or 480.
    #[serde(default)]
    pub(crate) no_answer: Option<String>,
}

/// An IVR menu (XiVO's IVR): the PBX answers, plays the menu's prompt and sends the
/// caller where the key it presses says.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ivr {
    pub(crate) exten: String,
    pub(crate) name: String,
    /// The menu's prompt (a WAV file, any rate); the built-in "please make your
    /// selection" when absent.
    #[serde(default)]
    pub(crate) prompt: Option<PathBuf>,
    /// Keys (`0`–`9`, `*`, `#`) and the user or group each leads to.
    pub(crate) choices: std::collections::BTreeMap<String, String>,
    /// Seconds the menu waits for a key after its prompt.
    #[serde(default = "ivr_timeout")]
    pub(crate) timeout: u32,
    /// Times the prompt is played at most (after no key, or a wrong one).
    #[serde(default = "ivr_retries")]
    pub(crate) retries: u32,
    /// Where a caller who chooses nothing goes (a user or group); hung up without.
    #[serde(default)]
    pub(crate) default: Option<String>,
}

fn ivr_timeout() -> u32 {
    5
}

fn ivr_retries() -> u32 {
    3
}

/// A voicemail box (XiVO's voicemails): a user's box takes the calls it does not
/// answer (no answer, busy) when the user names it (`voicemail = "<number>"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Voicemail {
    /// The box number (`*99<number>`).
    pub(crate) number: String,
    /// Digits asked before listening; a box without one is opened only from its
    /// owner's phone (`*98`).
    #[serde(default)]
    pub(crate) pin: Option<String>,
    /// Whether `*98` from the owner's phone asks the PIN (default: when there is
    /// one). `*99<number>` always asks it.
    #[serde(default)]
    pub(crate) ask_password: Option<bool>,
    /// Messages kept at most, new and old together; callers then hear that the
    /// box is full.
    #[serde(default = "max_messages")]
    pub(crate) max_messages: u32,
    /// The longest message, in seconds.
    #[serde(default = "max_message_seconds")]
    pub(crate) max_message_seconds: u32,
    /// Where new messages are mailed, their WAV attached (`[pbx] mail_command`).
    #[serde(default)]
    pub(crate) email: Option<String>,
}

fn max_messages() -> u32 {
    100
}

fn max_message_seconds() -> u32 {
    180
}

impl Voicemail {
    /// Whether `*98` asks the PIN.
    pub(crate) fn asks_pin(&self) -> bool {
        self.ask_password.unwrap_or(self.pin.is_some())
    }
}

/// A conference room (XiVO's conference rooms, Asterisk's ConfBridge): callers who
/// dial its extension talk together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Conference {
    pub(crate) exten: String,
    pub(crate) name: String,
    /// Digits a caller types (then `#`) before entering; none: anybody enters.
    #[serde(default)]
    pub(crate) pin: Option<String>,
    /// Participants at most (0: no limit); callers beyond it get 486.
    #[serde(default)]
    pub(crate) max_participants: u32,
    /// Whether the first participant hears "you are currently the only person in
    /// this conference".
    #[serde(default = "yes")]
    pub(crate) announce_only_person: bool,
    /// The music-on-hold class one alone in the room hears; the built-in melody
    /// when absent.
    #[serde(default)]
    pub(crate) music_on_hold: Option<String>,
}

/// A music-on-hold class (Asterisk's musiconhold.conf `mode=files`): the WAV files
/// of a directory, played in name order and looped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MusicOnHold {
    /// The class's name, as queues' `music_on_hold` names it.
    pub(crate) name: String,
    /// The directory of its `.wav` files (relative: to the working directory, as
    /// `data_dir`).
    pub(crate) directory: std::path::PathBuf,
}

/// A call queue (XiVO/Wazo queues, Asterisk's app_queue): callers wait with music
/// on hold while the queue rings its logged-in agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Queue {
    pub(crate) exten: String,
    /// The queue's name, as the `queue_log` and the agents' `queues` name it.
    pub(crate) name: String,
    /// Record each call from the moment an agent takes it (the sidecar names
    /// the queue and the agent).
    #[serde(default)]
    pub(crate) record: bool,
    /// `ringall` (default), `linear`, `leastrecent`, `fewestcalls`, `rrmemory`,
    /// `rrordered`, `random` or `wrandom`.
    #[serde(default = "ringall")]
    pub(crate) strategy: String,
    /// Seconds a caller waits before going to `no_answer` (0: no limit).
    #[serde(default)]
    pub(crate) timeout: u32,
    /// Seconds an agent's phone rings before the next attempt.
    #[serde(default = "member_ring_time")]
    pub(crate) member_ring_time: u32,
    /// Seconds between two attempts.
    #[serde(default = "retry_delay")]
    pub(crate) retry_delay: u32,
    /// Seconds an agent rests after each call before it is rung again.
    #[serde(default)]
    pub(crate) wrap_up: u32,
    /// Callers waiting at most (0: no limit); the next one goes to `no_answer`.
    #[serde(default)]
    pub(crate) max_callers: u32,
    /// An extension (user, group or queue) for callers who time out or cannot
    /// wait; without it they are hung up (or get busy when not answered yet).
    #[serde(default)]
    pub(crate) no_answer: Option<String>,
    /// Seconds between two announcements of a caller's position (0: none); a
    /// caller is told on entry and, moving up, early.
    #[serde(default)]
    pub(crate) announce_frequency: u32,
    /// Seconds at least between two announcements.
    #[serde(default = "min_announce_frequency")]
    pub(crate) min_announce_frequency: u32,
    /// Whether the position is said.
    #[serde(default = "yes")]
    pub(crate) announce_position: bool,
    /// Whether the estimated hold time is said: `no`, `yes` or `once`.
    #[serde(default)]
    pub(crate) announce_holdtime: AnnounceHoldTime,
    /// Whether the first caller is told while an agent's phone rings for it.
    #[serde(default)]
    pub(crate) announce_to_first: bool,
    /// Whether an agent already on a call (or ringing) is rung too.
    #[serde(default)]
    pub(crate) ring_in_use: bool,
    /// The music-on-hold class its callers hear (`[[music_on_hold]]`); none: the
    /// PBX's built-in melody.
    #[serde(default)]
    pub(crate) music_on_hold: Option<String>,
    /// Whether an agent whose phone rings unanswered is paused in this queue.
    #[serde(default)]
    pub(crate) autopause: bool,
    /// Queues of a higher weight get agents they share first.
    #[serde(default)]
    pub(crate) weight: u32,
    /// app_queue's `joinempty`: callers are refused when no agent counts as
    /// present (`"paused,unavailable"`..., `"strict"`, `"loose"`; default never).
    #[serde(default)]
    pub(crate) join_empty: String,
    /// app_queue's `leavewhenempty`: callers waiting leave when no agent counts.
    #[serde(default)]
    pub(crate) leave_when_empty: String,
    /// Callers are sent to `no_answer` on arrival when the expected wait is over
    /// this many seconds (XiVO's `waittime` diversion; 0: never).
    #[serde(default)]
    pub(crate) divert_wait_time: u32,
    /// ... or when (callers waiting + 1) / agents logged in is over this (XiVO's
    /// `waitratio`; 0: never).
    #[serde(default)]
    pub(crate) divert_wait_ratio: f64,
    /// Seconds within which an answered call counts for the service level.
    #[serde(default = "service_level")]
    pub(crate) service_level: u32,
    /// XiVO skill rules, tried in order: the first that selects a logged-in agent
    /// rings those it selects (`"WT < 60, english > 50"`, then `"english > 0"`).
    #[serde(default)]
    pub(crate) skill_rules: Vec<String>,
}

impl Queue {
    /// The skill rules as the ACD runs them (`None`: routing without skills), or
    /// the first that does not parse, by index.
    pub(crate) fn skill_rule_set(
        &self,
    ) -> Result<Option<pbxkit_acd::skills::RuleSet>, (usize, pbxkit_acd::skills::SkillRuleError)>
    {
        if self.skill_rules.is_empty() {
            return Ok(None);
        }
        let rules = self
            .skill_rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.parse().map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(pbxkit_acd::skills::RuleSet { rules }))
    }
}

fn service_level() -> u32 {
    15
}

/// When a queue's callers hear the estimated hold time.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AnnounceHoldTime {
    /// Never.
    #[default]
    No,
    /// In every announcement.
    Yes,
    /// In the first only.
    Once,
}

fn min_announce_frequency() -> u32 {
    15
}

/// A call-centre agent: logs in on any user's phone (`*31<number>`), which then
/// rings for the queues the agent is a member of.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Agent {
    /// Digits.
    pub(crate) number: String,
    /// Asked at login (`*31<number>*<password>`) when set.
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// The queues (by name) the agent takes calls from.
    pub(crate) queues: Vec<String>,
    /// The agent's penalty in its queues: the lowest penalty is rung first.
    #[serde(default)]
    pub(crate) penalty: u32,
    /// Skills and their levels (`{ english = 90 }`), read by queues' skill rules.
    #[serde(default)]
    pub(crate) skills: std::collections::BTreeMap<String, i64>,
}

fn call_limit() -> u32 {
    10
}

fn ringall() -> String {
    "ringall".into()
}

fn member_ring_time() -> u32 {
    15
}

fn retry_delay() -> u32 {
    5
}

/// The ring strategies a group may have.
const STRATEGIES: &[&str] = &[
    "ringall",
    "linear",
    "leastrecent",
    "fewestcalls",
    "rrmemory",
    "random",
    "wrandom",
];

/// A SIP trunk: a provider or another PBX that calls go out through and come in from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trunk {
    pub(crate) name: String,
    /// A disabled trunk is left out of routes, and its address is not trusted.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// Host name or IP address.
    pub(crate) host: String,
    #[serde(default = "sip_port")]
    pub(crate) port: u16,
    /// Credentials for the trunk's digest challenges.
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Most calls at once through this trunk (no limit when absent).
    #[serde(default)]
    pub(crate) max_calls: Option<u32>,
    /// Register to the trunk with the credentials (outbound registration).
    #[serde(default)]
    pub(crate) register: bool,
    /// Seconds between OPTIONS pings; a trunk that does not answer is skipped by
    /// calls until it answers again. 0 turns it off.
    #[serde(default = "qualify_every")]
    pub(crate) qualify: u64,
}

fn qualify_every() -> u64 {
    60
}

fn yes() -> bool {
    true
}

fn sip_port() -> u16 {
    5060
}

/// An outgoing route: numbers matching its patterns go out through its trunks, the
/// first one that takes the call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) patterns: Vec<RoutePattern>,
    /// Trunk names in failover order.
    pub(crate) trunks: Vec<String>,
    /// Lower is tried first when patterns of several routes match.
    #[serde(default)]
    pub(crate) priority: u32,
}

/// A pattern of a route (Asterisk syntax) and how the number is changed before it is
/// sent: `strip` digits removed at the front, then `prefix` added.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoutePattern {
    pub(crate) pattern: String,
    #[serde(default)]
    pub(crate) strip: usize,
    #[serde(default)]
    pub(crate) prefix: String,
}

/// An incoming route: calls from trunks to `did` ring `user`, `group` or wait in
/// `queue` (each by extension).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Incall {
    pub(crate) did: String,
    #[serde(default)]
    pub(crate) user: Option<String>,
    #[serde(default)]
    pub(crate) group: Option<String>,
    #[serde(default)]
    pub(crate) queue: Option<String>,
    #[serde(default)]
    pub(crate) conference: Option<String>,
}

impl Incall {
    /// The extension it goes to (a checked configuration has exactly one).
    pub(crate) fn target(&self) -> Option<&String> {
        self.user
            .as_ref()
            .or(self.group.as_ref())
            .or(self.queue.as_ref())
            .or(self.conference.as_ref())
    }
}

/// SIP listener (UDP and TCP on the same address).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sip {
    pub(crate) listen: SocketAddr,
    #[serde(default = "default_realm")]
    pub(crate) realm: String,
    /// Session timer interval (RFC 4028) in seconds the PBX asks for and applies on
    /// every leg whose phone does not choose one; 0 turns session timers off.
    #[serde(default = "default_session_expires")]
    pub(crate) session_expires: u32,
    /// The shortest session interval accepted (422 below it).
    #[serde(default = "default_min_se")]
    pub(crate) min_se: u32,
    /// The secret digest nonces are signed with (at least 32 characters). Nodes that
    /// share it accept each other's nonces; a random one per start when absent.
    #[serde(default)]
    pub(crate) nonce_secret: Option<String>,
    /// The round-trip estimate T1 in milliseconds (RFC 3261 §17.1.1.1):
    /// retransmission intervals and transaction timeouts (64×T1) scale with it.
    #[serde(default = "default_t1_ms")]
    pub(crate) t1_ms: u64,
    /// The digest algorithms offered, one challenge each, in this order (`MD5`,
    /// `SHA-256`). MD5 alone by default: baresip 1.0 (libre 1.1) refuses a 401 that
    /// carries any algorithm it does not know, even beside MD5.
    #[serde(default = "default_digest_algorithms")]
    pub(crate) digest_algorithms: Vec<String>,
    /// How many digest nonces are remembered against replay (the oldest are forgotten
    /// first, and nonces older than a forgotten one are then answered stale).
    #[serde(default = "default_nonce_max_tracked")]
    pub(crate) nonce_max_tracked: usize,
}

fn default_digest_algorithms() -> Vec<String> {
    vec!["MD5".into()]
}

fn default_nonce_max_tracked() -> usize {
    pbxkit_sip::digest::DEFAULT_MAX_TRACKED
}

impl Sip {
    /// The digest algorithms to challenge with, in order (checked at parse time).
    pub(crate) fn digest_algorithms(&self) -> Vec<pbxkit_sip::digest::Algorithm> {
        self.digest_algorithms
            .iter()
            .filter_map(|a| pbxkit_sip::digest::Algorithm::parse(Some(a)))
            .collect()
    }
}

fn default_t1_ms() -> u64 {
    500
}

impl Sip {
    /// The transaction timers: T1 as configured; T2 and T4 keep their defaults
    /// unless T1 outgrows T2.
    pub(crate) fn timers(&self) -> pbxkit_sip::transaction::Timers {
        let t1 = std::time::Duration::from_millis(self.t1_ms);
        pbxkit_sip::transaction::Timers {
            t1,
            t2: std::time::Duration::from_secs(4).max(t1),
            ..pbxkit_sip::transaction::Timers::default()
        }
    }

    /// The secret digest nonces are signed with: the configured one (nodes sharing
    /// it accept each other's nonces), else a random one for this run.
    pub(crate) fn nonce_key(&self) -> Vec<u8> {
        self.nonce_secret
            .as_ref()
            .map_or_else(|| crate::ids::secret().to_vec(), |s| s.as_bytes().to_vec())
    }
}

impl Default for Sip {
    fn default() -> Self {
        Sip {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            realm: default_realm(),
            session_expires: default_session_expires(),
            min_se: default_min_se(),
            nonce_secret: None,
            t1_ms: default_t1_ms(),
            digest_algorithms: default_digest_algorithms(),
            nonce_max_tracked: default_nonce_max_tracked(),
        }
    }
}

fn default_session_expires() -> u32 {
    1800
}

fn default_min_se() -> u32 {
    90
}

fn default_realm() -> String {
    "pbxkit".into()
}

/// Registration expiry bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Registrar {
    pub(crate) min_expires: u32,
    pub(crate) default_expires: u32,
    pub(crate) max_expires: u32,
}

impl Registrar {
    /// The expiry bounds as pbxkit-sip's registrar takes them.
    pub(crate) fn bounds(&self) -> pbxkit_sip::registrar::RegistrarConfig {
        pbxkit_sip::registrar::RegistrarConfig {
            min_expires: self.min_expires,
            default_expires: self.default_expires,
            max_expires: self.max_expires,
            ..pbxkit_sip::registrar::RegistrarConfig::default()
        }
    }
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar {
            min_expires: 60,
            default_expires: 120,
            max_expires: 3600,
        }
    }
}

/// PBX-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Pbx {
    pub(crate) data_dir: PathBuf,
    pub(crate) ring_time: u64,
    /// The country whose call-progress tones the PBX plays (`fr`, `us`, `uk`, `de`).
    pub(crate) tones: String,
    /// Threads that run the PBX; 0: one per core.
    pub(crate) workers: usize,
    /// This node's name, in the Contact of every leg it places, so that requests for
    /// its calls can be routed back to it when several nodes share the work.
    pub(crate) node_id: String,
    /// The sendmail-compatible program (and its arguments) that mails new
    /// voicemail messages to their box's `email`; none: no mail.
    pub(crate) mail_command: Vec<String>,
    /// The From of those mails.
    pub(crate) mail_from: String,
    /// The name of call recordings under `data_dir/recordings/` (`.wav` added):
    /// `{srcnum}`, `{dstnum}`, `{timestamp}` (Unix seconds) and `{callid}`.
    pub(crate) recording_template: String,
}

impl Default for Pbx {
    fn default() -> Self {
        Pbx {
            data_dir: PathBuf::from("pbxkit-data"),
            ring_time: 30,
            tones: "fr".into(),
            workers: 0,
            node_id: "pbx".into(),
            mail_command: Vec::new(),
            mail_from: "pbxkit@localhost".into(),
            recording_template: "user-{srcnum}-{dstnum}-{timestamp}".into(),
        }
    }
}

impl Pbx {
    /// The tone of `kind` in the configured country's plan.
    pub(crate) fn tone(
        &self,
        kind: pbxkit_rtp::tones::CallProgress,
    ) -> pbxkit_rtp::tones::ToneSpec {
        pbxkit_rtp::tones::Country::from_code(&self.tones)
            .unwrap_or(pbxkit_rtp::tones::Country::Fr)
            .tone(kind)
    }
}

/// Banning sources that keep failing authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Security {
    /// Failed authentications of one user from one address within `window` that ban
    /// that (address, user) pair (0: no banning at all).
    pub(crate) max_auth_failures: u32,
    /// Seconds.
    pub(crate) window: u64,
    /// Seconds a banned pair or address is ignored.
    pub(crate) ban_time: u64,
    /// Different users failing from one address within `window` that ban the whole
    /// address as a scanner (0: never), unless a user authenticated from it.
    pub(crate) scanner_users: u32,
    /// Requests without credentials from one address within `window` above which the
    /// whole address is banned as a flood (0: never), unless a user authenticated from it.
    pub(crate) max_challenges: u32,
}

impl Security {
    /// The ban policy these settings make.
    pub(crate) fn ban_policy(&self) -> crate::ban::Policy {
        crate::ban::Policy {
            max_failures: self.max_auth_failures,
            window: std::time::Duration::from_secs(self.window),
            ban_time: std::time::Duration::from_secs(self.ban_time),
            scanner_users: self.scanner_users,
            max_challenges: self.max_challenges,
        }
    }
}

impl Default for Security {
    fn default() -> Self {
        Security {
            max_auth_failures: 10,
            window: 60,
            ban_time: 600,
            scanner_users: 5,
            max_challenges: 1000,
        }
    }
}

/// The media relay's port pool and media timeout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Rtp {
    pub(crate) port_min: u16,
    pub(crate) port_max: u16,
    /// Seconds without media from a phone that is not on hold before its call is
    /// hung up (Asterisk's `rtptimeout`; Wazo's default 7200); 0: never.
    pub(crate) rtp_timeout: u64,
}

impl Default for Rtp {
    fn default() -> Self {
        Rtp {
            port_min: 10000,
            port_max: 20000,
            rtp_timeout: 7200,
        }
    }
}

impl Rtp {
    /// The silence after which a call is hung up, if any.
    pub(crate) fn timeout(&self) -> Option<std::time::Duration> {
        (self.rtp_timeout > 0).then(|| std::time::Duration::from_secs(self.rtp_timeout))
    }
}

/// The REST API listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Http {
    pub(crate) listen: SocketAddr,
    /// Seconds a token is good for when its client does not say.
    pub(crate) token_expiration: u64,
    /// The longest a client may ask for.
    pub(crate) max_token_expiration: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 9486)),
            token_expiration: 7200,
            max_token_expiration: 86_400,
        }
    }
}

/// A webhook: the events (by name, `*` for all) POSTed as JSON to `url`
/// (`http://host:port/path`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    #[serde(default = "every_event")]
    pub(crate) events: Vec<String>,
}

fn every_event() -> Vec<String> {
    vec!["*".to_owned()]
}

/// A desk phone: its MAC, the user whose line it gets, and the provisioning
/// plugin (`xivo-yealink`...) when the phone's requests can't tell it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Device {
    pub(crate) mac: String,
    pub(crate) user: String,
    #[serde(default)]
    pub(crate) plugin: Option<String>,
}

/// A REST API account for a tool: its ACL patterns (`confd.users.read`, `#` for
/// everything) say what its tokens may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiUser {
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) acl: Vec<String>,
}

/// The phone provisioning server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provisioning {
    pub(crate) http_listen: SocketAddr,
}

impl Default for Provisioning {
    fn default() -> Self {
        Provisioning {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8667)),
        }
    }
}

/// A user with one SIP line whose username is the extension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct User {
    pub(crate) exten: String,
    pub(crate) name: String,
    pub(crate) password: String,
    /// Seconds this user's phones ring; `[pbx] ring_time` when absent.
    #[serde(default)]
    pub(crate) ring_time: Option<u32>,
    /// Do not disturb: calls are refused like busy ones (without the busy forward).
    #[serde(default)]
    pub(crate) dnd: bool,
    /// Calls at once before the user counts as busy (XiVO's default: 5).
    #[serde(default)]
    pub(crate) simultaneous_calls: Option<u32>,
    /// Calls at once on the user's line, placed or received, beyond which the calls it
    /// places are refused with 486 (the line's call-limit; 10 by default).
    #[serde(default = "call_limit")]
    pub(crate) call_limit: u32,
    /// Forward every call to this number.
    #[serde(default)]
    pub(crate) forward_unconditional: Option<String>,
    /// Forward calls to this number when the user is busy.
    #[serde(default)]
    pub(crate) forward_busy: Option<String>,
    /// Forward calls to this number when the user does not answer in time.
    #[serde(default)]
    pub(crate) forward_no_answer: Option<String>,
    /// The user's voicemail box (a `[[voicemails]]` number): it takes the calls
    /// the user does not answer or is busy for, unless a forward does.
    #[serde(default)]
    pub(crate) voicemail: Option<String>,
    /// Record the calls the user answers, and those it places.
    #[serde(default)]
    pub(crate) record_incoming: bool,
    #[serde(default)]
    pub(crate) record_outgoing: bool,
}

/// A service extension: the PBX answers it itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Extension {
    pub(crate) exten: String,
    pub(crate) app: App,
    /// The prompt a playback extension plays (a WAV file, any rate, converted); a
    /// built-in one (three beeps) when absent.
    #[serde(default)]
    pub(crate) file: Option<PathBuf>,
}

/// What a service extension does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum App {
    /// Sends the caller's audio back (echo test).
    Echo,
    /// Plays a prompt, then hangs up (playback test).
    Playback,
}

impl App {
    /// What users see in the start-up banner.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            App::Echo => "echo test: you hear yourself",
            App::Playback => "playback test: you hear a prompt, then the PBX hangs up",
        }
    }
}

/// A configuration error with the place it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) message: String,
    /// 1-based line and column, when known.
    pub(crate) at: Option<(usize, usize)>,
}

impl ConfigError {
    /// `FILE:LINE:COL: message` (or `FILE: message`).
    pub(crate) fn describe(&self, file: &str) -> String {
        match self.at {
            Some((line, col)) => format!("{file}:{line}:{col}: {}", self.message),
            None => format!("{file}: {}", self.message),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    /// Parses a configuration, checking what serde cannot.
    pub(crate) fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError {
            message: e.message().to_owned(),
            at: e.span().map(|s| line_col(text, s.start)),
        })?;
        // The index first: the checks below look users up.
        config.user_index = config
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.exten.clone(), i))
            .collect();
        // The first place `key` appears outside a comment.
        let at_key = |key: &str| {
            text.match_indices(key)
                .map(|(o, _)| o)
                .find(|&o| {
                    let line_start = text[..o].rfind('\n').map_or(0, |n| n + 1);
                    !text[line_start..o].contains('#')
                })
                .map(|o| line_col(text, o))
        };
        if config.rtp.port_min > config.rtp.port_max {
            return Err(ConfigError {
                message: format!(
                    "rtp: port_min {} is above port_max {}",
                    config.rtp.port_min, config.rtp.port_max
                ),
                at: at_key("port_min"),
            });
        }
        // Durations become timers and Instants: bounded, so that none can overflow.
        const YEAR: u64 = 365 * 86_400;
        let durations = [
            ("window", config.security.window),
            ("ban_time", config.security.ban_time),
            ("ring_time", config.pbx.ring_time),
            ("rtp_timeout", config.rtp.rtp_timeout),
            ("session_expires", u64::from(config.sip.session_expires)),
            ("token_expiration", config.http.token_expiration),
            ("max_token_expiration", config.http.max_token_expiration),
        ]
        .into_iter()
        .chain(config.trunks.iter().map(|t| ("qualify", t.qualify)));
        for (key, seconds) in durations {
            if seconds > YEAR {
                return Err(ConfigError {
                    message: format!("{key}: at most one year ({YEAR} s)"),
                    at: at_key(key),
                });
            }
        }
        if config.http.token_expiration == 0
            || config.http.token_expiration > config.http.max_token_expiration
        {
            return Err(ConfigError {
                message: "http: need 0 < token_expiration <= max_token_expiration".into(),
                at: at_key("token_expiration"),
            });
        }
        // A token request names an account: a user's extension or an API user's
        // name, never both.
        for api_user in &config.api_users {
            if config.user_index.contains_key(&api_user.name)
                || config
                    .api_users
                    .iter()
                    .filter(|a| a.name == api_user.name)
                    .count()
                    > 1
            {
                return Err(ConfigError {
                    message: format!(
                        "api_users: {:?} is already the name of a user or another API user",
                        api_user.name
                    ),
                    at: at_key(&format!("{:?}", api_user.name)),
                });
            }
        }
        for hook in &config.webhooks {
            let uri = hook.url.parse::<axum::http::Uri>().ok();
            if !uri.is_some_and(|u| u.scheme_str() == Some("http") && u.host().is_some()) {
                return Err(ConfigError {
                    message: format!(
                        "webhooks: {:?} is not an http://host[:port]/path URL",
                        hook.url
                    ),
                    at: at_key(&format!("{:?}", hook.url)),
                });
            }
        }
        for device in &config.devices {
            let at = at_key(&format!("{:?}", device.mac));
            if pbxkit_provisioning::mac::Mac::parse(&device.mac).is_err() {
                return Err(ConfigError {
                    message: format!("devices: {:?} is not a MAC address", device.mac),
                    at,
                });
            }
            if !config.user_index.contains_key(&device.user) {
                return Err(ConfigError {
                    message: format!("devices: {}: no user {:?}", device.mac, device.user),
                    at,
                });
            }
        }
        if pbxkit_rtp::tones::Country::from_code(&config.pbx.tones).is_none() {
            return Err(ConfigError {
                message: format!(
                    "pbx: tones {:?} is not one of fr, us, uk, de",
                    config.pbx.tones
                ),
                at: at_key("tones"),
            });
        }
        let sip = &config.sip;
        if sip.min_se == 0 || (sip.session_expires != 0 && sip.session_expires < sip.min_se) {
            return Err(ConfigError {
                message: "sip: need 0 < min_se <= session_expires (or session_expires = 0)".into(),
                at: at_key("min_se").or_else(|| at_key("session_expires")),
            });
        }
        let r = &config.registrar;
        if !(r.min_expires <= r.default_expires && r.default_expires <= r.max_expires) {
            return Err(ConfigError {
                message: "registrar: need min_expires <= default_expires <= max_expires".into(),
                at: at_key("min_expires"),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for user in &config.users {
            if !seen.insert(user.exten.as_str()) {
                return Err(ConfigError {
                    message: format!("users: extension {} is defined twice", user.exten),
                    at: at_key(&format!("exten = \"{}\"", user.exten)).map(|_| {
                        let second = text
                            .match_indices(&format!("exten = \"{}\"", user.exten))
                            .nth(1)
                            .map_or(0, |(o, _)| o);
                        line_col(text, second)
                    }),
                });
            }
            if user.password.len() < 8 {
                return Err(ConfigError {
                    message: format!(
                        "users: the password of {} is shorter than 8 characters",
                        user.exten
                    ),
                    at: at_key(&format!("exten = \"{}\"", user.exten)),
                });
            }
        }
        let mut classes = std::collections::HashSet::new();
        for class in &config.music_on_hold {
            if class.name.is_empty() || !classes.insert(class.name.as_str()) {
                return Err(ConfigError {
                    message: format!(
                        "music_on_hold: the name {:?} is empty or used twice",
                        class.name
                    ),
                    at: at_key(&format!("name = \"{}\"", class.name)),
                });
            }
        }
        let mut trunk_names = std::collections::HashSet::new();
        for trunk in &config.trunks {
            if !trunk_names.insert(trunk.name.as_str()) {
                return Err(ConfigError {
                    message: format!("trunks: {} is defined twice", trunk.name),
                    at: at_key(&format!("name = \"{}\"", trunk.name)),
                });
            }
        }
        for route in &config.routes {
            for p in &route.patterns {
                if let Err(e) = pbxkit_dialplan::Pattern::parse(&p.pattern) {
                    return Err(ConfigError {
                        message: format!("routes: {}: pattern {:?}: {e}", route.name, p.pattern),
                        at: at_key(&format!("pattern = \"{}\"", p.pattern)),
                    });
                }
            }
            if let Some(unknown) = route
                .trunks
                .iter()
                .find(|t| !trunk_names.contains(t.as_str()))
            {
                return Err(ConfigError {
                    message: format!(
                        "routes: {} uses trunk {unknown}, which is not defined",
                        route.name
                    ),
                    at: at_key(&format!("name = \"{}\"", route.name)),
                });
            }
        }
        for incall in &config.incalls {
            let digits = incall.did.strip_prefix('+').unwrap_or(&incall.did);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError {
                    message: format!("incalls: DID {:?} must be digits", incall.did),
                    at: at_key(&format!("did = \"{}\"", incall.did)),
                });
            }
            let target = match (
                &incall.user,
                &incall.group,
                &incall.queue,
                &incall.conference,
            ) {
                (Some(user), None, None, None) => config.user(user).map(|_| ()).ok_or(user),
                (None, Some(group), None, None) => config.group(group).map(|_| ()).ok_or(group),
                (None, None, Some(queue), None) => config.queue(queue).map(|_| ()).ok_or(queue),
                (None, None, None, Some(room)) => config.conference(room).map(|_| ()).ok_or(room),
                _ => {
                    return Err(ConfigError {
                        message: format!(
                            "incalls: DID {} needs one of user, group, queue and conference",
                            incall.did
                        ),
                        at: at_key(&format!("did = \"{}\"", incall.did)),
                    });
                }
            };
            if let Err(missing) = target {
                return Err(ConfigError {
                    message: format!(
                        "incalls: DID {} goes to {missing}, which is not defined",
                        incall.did
                    ),
                    at: at_key(&format!("did = \"{}\"", incall.did)),
                });
            }
        }
        for group in &config.groups {
            let at = at_key(&format!("exten = \"{}\"", group.exten));
            let fail = |message: String| Err(ConfigError { message, at });
            if !seen.insert(group.exten.as_str()) {
                return fail(format!(
                    "groups: {} is already a user or a group",
                    group.exten
                ));
            }
            if !STRATEGIES.contains(&group.strategy.as_str()) {
                return fail(format!(
                    "groups: {}: strategy {:?} is not one of {}",
                    group.exten,
                    group.strategy,
                    STRATEGIES.join(", ")
                ));
            }
            if let Some(m) = group.members.iter().find(|m| config.user(m).is_none()) {
                return fail(format!("groups: {}: member {m} is not a user", group.exten));
            }
            if let Some(to) = &group.no_answer
                && config.user(to).is_none()
                && config.group(to).is_none()
            {
                return fail(format!(
                    "groups: {}: no_answer {to} is not a user or a group",
                    group.exten
                ));
            }
            let year = 365 * 86_400;
            if [
                group.ring_time.unwrap_or(0),
                group.member_ring_time,
                group.retry_delay,
            ]
            .iter()
            .any(|s| *s > year)
            {
                return fail(format!(
                    "groups: {}: durations are at most one year",
                    group.exten
                ));
            }
        }
        let mut queue_names = std::collections::HashSet::new();
        for queue in &config.queues {
            let at = at_key(&format!("exten = \"{}\"", queue.exten));
            let fail = |message: String| Err(ConfigError { message, at });
            if !seen.insert(queue.exten.as_str()) {
                return fail(format!(
                    "queues: {} is already a user, a group or a queue",
                    queue.exten
                ));
            }
            if !queue_names.insert(queue.name.as_str()) {
                return fail(format!("queues: the name {} is used twice", queue.name));
            }
            if queue.strategy.parse::<pbxkit_acd::Strategy>().is_err() {
                return fail(format!(
                    "queues: {}: strategy {:?} is not one of ringall, linear, leastrecent, \
                     fewestcalls, rrmemory, rrordered, random, wrandom",
                    queue.exten, queue.strategy
                ));
            }
            let year = 365 * 86_400;
            if [
                queue.timeout,
                queue.member_ring_time,
                queue.retry_delay,
                queue.wrap_up,
                queue.announce_frequency,
                queue.min_announce_frequency,
                queue.divert_wait_time,
                queue.service_level,
            ]
            .iter()
            .any(|s| *s > year)
            {
                return fail(format!(
                    "queues: {}: durations are at most one year",
                    queue.exten
                ));
            }
            for (key, value) in [
                ("join_empty", &queue.join_empty),
                ("leave_when_empty", &queue.leave_when_empty),
            ] {
                if let Err(word) = pbxkit_acd::EmptyConditions::parse(value) {
                    return fail(format!(
                        "queues: {}: {key}: {word:?} is not one of paused, penalty, inuse, \
                         ringing, unavailable, invalid, unknown, wrapup, strict, loose, no",
                        queue.exten
                    ));
                }
            }
            if let Err((i, e)) = queue.skill_rule_set() {
                return fail(format!(
                    "queues: {}: skill_rules[{i}] {:?}: {e}",
                    queue.exten, queue.skill_rules[i]
                ));
            }
            if !(0.0..=1e6).contains(&queue.divert_wait_ratio) {
                return fail(format!(
                    "queues: {}: divert_wait_ratio is between 0 and 1000000",
                    queue.exten
                ));
            }
        }
        for queue in &config.queues {
            if let Some(class) = &queue.music_on_hold
                && !config.music_on_hold.iter().any(|m| &m.name == class)
            {
                return Err(ConfigError {
                    message: format!(
                        "queues: {}: music_on_hold {class:?} is not a [[music_on_hold]] class",
                        queue.exten
                    ),
                    at: at_key(&format!("music_on_hold = \"{class}\"")),
                });
            }
            if let Some(to) = &queue.no_answer
                && config.user(to).is_none()
                && config.group(to).is_none()
                && config.queue(to).is_none()
            {
                return Err(ConfigError {
                    message: format!(
                        "queues: {}: no_answer {to} is not a user, a group or a queue",
                        queue.exten
                    ),
                    at: at_key(&format!("exten = \"{}\"", queue.exten)),
                });
            }
        }
        let mut boxes = std::collections::HashSet::new();
        for vm in &config.voicemails {
            let at = at_key(&format!("number = \"{}\"", vm.number));
            let fail = |message: String| Err(ConfigError { message, at });
            if vm.number.is_empty() || !vm.number.bytes().all(|b| b.is_ascii_digit()) {
                return fail(format!("voicemails: number {:?} must be digits", vm.number));
            }
            if !boxes.insert(vm.number.as_str()) {
                return fail(format!("voicemails: box {} is defined twice", vm.number));
            }
            if let Some(pin) = &vm.pin
                && (pin.is_empty() || pin.len() > 16 || !pin.bytes().all(|b| b.is_ascii_digit()))
            {
                return fail(format!(
                    "voicemails: {}: the PIN is 1 to 16 digits",
                    vm.number
                ));
            }
            if !(1..=10_000).contains(&vm.max_messages) {
                return fail(format!(
                    "voicemails: {}: max_messages is 1 to 10000",
                    vm.number
                ));
            }
            if let Some(email) = &vm.email {
                if !crate::mail::is_address(email) {
                    return fail(format!(
                        "voicemails: {}: email {email:?} is not one address",
                        vm.number
                    ));
                }
                if config.pbx.mail_command.is_empty() {
                    return fail(format!(
                        "voicemails: {}: email needs [pbx] mail_command (a sendmail-compatible program)",
                        vm.number
                    ));
                }
            }
            if !(1..=3600).contains(&vm.max_message_seconds) {
                return fail(format!(
                    "voicemails: {}: max_message_seconds is 1 to 3600",
                    vm.number
                ));
            }
        }
        for user in &config.users {
            if let Some(vm) = &user.voicemail
                && !boxes.contains(vm.as_str())
            {
                return Err(ConfigError {
                    message: format!(
                        "users: {}: voicemail {vm} is not a [[voicemails]] box",
                        user.exten
                    ),
                    at: at_key(&format!("exten = \"{}\"", user.exten)),
                });
            }
        }
        for ivr in &config.ivrs {
            let at = at_key(&format!("exten = \"{}\"", ivr.exten));
            let fail = |message: String| Err(ConfigError { message, at });
            if ivr.exten.is_empty() || !ivr.exten.bytes().all(|b| b.is_ascii_digit()) {
                return fail(format!("ivrs: extension {:?} must be digits", ivr.exten));
            }
            if !seen.insert(ivr.exten.as_str()) || config.extension(&ivr.exten).is_some() {
                return fail(format!("ivrs: {} is already another extension", ivr.exten));
            }
            let reachable = |to: &String| config.user(to).is_some() || config.group(to).is_some();
            for (key, to) in &ivr.choices {
                if key.len() != 1
                    || !key
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
                {
                    return fail(format!(
                        "ivrs: {}: choice {key:?} is not one key (0-9, *, #)",
                        ivr.exten
                    ));
                }
                if !reachable(to) {
                    return fail(format!(
                        "ivrs: {}: choice {key} leads to {to}, which is not a user or a group",
                        ivr.exten
                    ));
                }
            }
            if let Some(to) = &ivr.default
                && !reachable(to)
            {
                return fail(format!(
                    "ivrs: {}: default {to} is not a user or a group",
                    ivr.exten
                ));
            }
            if !(1..=60).contains(&ivr.timeout) || !(1..=10).contains(&ivr.retries) {
                return fail(format!(
                    "ivrs: {}: timeout is 1 to 60 s, retries 1 to 10",
                    ivr.exten
                ));
            }
            if let Some(prompt) = &ivr.prompt
                && !prompt.is_file()
            {
                return fail(format!(
                    "ivrs: {}: prompt {} is not a file",
                    ivr.exten,
                    prompt.display()
                ));
            }
        }
        let mut rooms = std::collections::HashSet::new();
        for room in &config.conferences {
            let at = at_key(&format!("exten = \"{}\"", room.exten));
            let fail = |message: String| Err(ConfigError { message, at });
            if room.exten.is_empty() || !room.exten.bytes().all(|b| b.is_ascii_digit()) {
                return fail(format!(
                    "conferences: extension {:?} must be digits",
                    room.exten
                ));
            }
            if !seen.insert(room.exten.as_str()) {
                return fail(format!(
                    "conferences: {} is already a user, a group, a queue or a room",
                    room.exten
                ));
            }
            if room.name.is_empty() || !rooms.insert(room.name.as_str()) {
                return fail(format!(
                    "conferences: the name {:?} is empty or used twice",
                    room.name
                ));
            }
            if let Some(pin) = &room.pin
                && (pin.is_empty() || pin.len() > 16 || !pin.bytes().all(|b| b.is_ascii_digit()))
            {
                return fail(format!(
                    "conferences: {}: the PIN is 1 to 16 digits",
                    room.exten
                ));
            }
            if room.max_participants > 1000 {
                return fail(format!(
                    "conferences: {}: max_participants is at most 1000",
                    room.exten
                ));
            }
            if let Some(class) = &room.music_on_hold
                && !classes.contains(class.as_str())
            {
                return fail(format!(
                    "conferences: {}: music_on_hold {class:?} is not a music_on_hold class",
                    room.exten
                ));
            }
        }
        for (code, name) in &config.pause_reasons {
            let at = at_key("[pause_reasons]");
            if code.is_empty() || code.len() > 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError {
                    message: format!("pause_reasons: code {code:?} must be 1 to 4 digits"),
                    at,
                });
            }
            // The reason is a queue_log field: no separator, no line break.
            if name.is_empty() || name.len() > 64 || name.contains(['|', '\n', '\r']) {
                return Err(ConfigError {
                    message: format!(
                        "pause_reasons: {code}: the name is 1 to 64 characters without '|' \
                         or line breaks"
                    ),
                    at,
                });
            }
        }
        let mut agents = std::collections::HashSet::new();
        for agent in &config.agents {
            let at = at_key(&format!("number = \"{}\"", agent.number));
            let fail = |message: String| Err(ConfigError { message, at });
            if agent.number.is_empty() || !agent.number.bytes().all(|b| b.is_ascii_digit()) {
                return fail(format!("agents: number {:?} must be digits", agent.number));
            }
            if !agents.insert(agent.number.as_str()) {
                return fail(format!("agents: {} is defined twice", agent.number));
            }
            if let Some(q) = agent
                .queues
                .iter()
                .find(|q| !queue_names.contains(q.as_str()))
            {
                return fail(format!(
                    "agents: {}: queue {q} is not defined",
                    agent.number
                ));
            }
            if agent
                .password
                .as_ref()
                .is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
            {
                return fail(format!(
                    "agents: {}: a password is digits (dialled on the phone)",
                    agent.number
                ));
            }
        }
        for ext in &config.extensions {
            if !seen.insert(ext.exten.as_str()) {
                let key = format!("exten = \"{}\"", ext.exten);
                return Err(ConfigError {
                    message: format!(
                        "extensions: {} is already a user, a group or an extension",
                        ext.exten
                    ),
                    at: text
                        .match_indices(&key)
                        .nth(1)
                        .map(|(o, _)| line_col(text, o)),
                });
            }
        }
        if config
            .sip
            .nonce_secret
            .as_ref()
            .is_some_and(|s| s.len() < 32)
        {
            return Err(ConfigError {
                message: "sip: nonce_secret needs at least 32 characters".into(),
                at: at_key("nonce_secret"),
            });
        }
        let algorithms = &config.sip.digest_algorithms;
        let known = config.sip.digest_algorithms();
        if algorithms.is_empty()
            || known.len() != algorithms.len()
            || (1..known.len()).any(|i| known[..i].contains(&known[i]))
        {
            return Err(ConfigError {
                message: "sip: digest_algorithms must list MD5 and/or SHA-256, each once".into(),
                at: at_key("digest_algorithms"),
            });
        }
        if !(1..=10_000_000).contains(&config.sip.nonce_max_tracked) {
            return Err(ConfigError {
                message: "sip: nonce_max_tracked must be between 1 and 10000000".into(),
                at: at_key("nonce_max_tracked"),
            });
        }
        if !(10..=10_000).contains(&config.sip.t1_ms) {
            return Err(ConfigError {
                message: "sip: t1_ms must be between 10 and 10000".into(),
                at: at_key("t1_ms"),
            });
        }
        if config.pbx.node_id.is_empty()
            || !config
                .pbx
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ConfigError {
                message: "pbx: node_id must be letters, digits and '-'".into(),
                at: at_key("node_id"),
            });
        }
        Ok(config)
    }

    /// A user by extension.
    pub(crate) fn user(&self, exten: &str) -> Option<&User> {
        self.users.get(*self.user_index.get(exten)?)
    }

    /// The services (DND, forwards) a user's configuration gives it.
    pub(crate) fn services(user: &User) -> pbxkit_dialplan::UserServices {
        let forward = |to: &Option<String>| pbxkit_dialplan::config::Forward {
            enabled: to.is_some(),
            destination: to.clone().unwrap_or_default(),
        };
        pbxkit_dialplan::UserServices {
            dnd: user.dnd,
            forwards: pbxkit_dialplan::config::Forwards {
                unconditional: forward(&user.forward_unconditional),
                busy: forward(&user.forward_busy),
                no_answer: forward(&user.forward_no_answer),
            },
        }
    }

    /// A group by extension.
    pub(crate) fn group(&self, exten: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.exten == exten)
    }

    /// The queue of this extension.
    pub(crate) fn queue(&self, exten: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.exten == exten)
    }

    /// The IVR menu of this extension.
    pub(crate) fn ivr(&self, exten: &str) -> Option<&Ivr> {
        self.ivrs.iter().find(|i| i.exten == exten)
    }

    /// The voicemail box of this number.
    pub(crate) fn voicemail(&self, number: &str) -> Option<&Voicemail> {
        self.voicemails.iter().find(|v| v.number == number)
    }

    /// The conference room of this extension.
    pub(crate) fn conference(&self, exten: &str) -> Option<&Conference> {
        self.conferences.iter().find(|c| c.exten == exten)
    }

    /// The agent of this number.
    pub(crate) fn agent(&self, number: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.number == number)
    }

    /// The trunk named `name`.
    pub(crate) fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The service extension `exten`, if there is one.
    pub(crate) fn extension(&self, exten: &str) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.exten == exten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_with_ten_users() {
        let config = Config::parse(DEFAULT).unwrap();
        let extens: Vec<&str> = config.users.iter().map(|u| u.exten.as_str()).collect();
        assert_eq!(
            extens,
            [
                "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009"
            ]
        );
        assert_eq!(config.sip.listen.port(), 5060);
        assert_eq!((config.rtp.port_min, config.rtp.port_max), (10000, 20000));
        assert_eq!(
            config.rtp.timeout(),
            Some(std::time::Duration::from_secs(7200))
        );
        assert_eq!(config.registrar.max_expires, 3600);
        // A [rtp] table of an older configuration, without the timeout, still parses.
        let older = DEFAULT.replace("rtp_timeout = 7200\n", "");
        assert_ne!(older, DEFAULT);
        assert_eq!(Config::parse(&older).unwrap().rtp.rtp_timeout, 7200);
        let off = DEFAULT.replace("rtp_timeout = 7200", "rtp_timeout = 0");
        assert_eq!(Config::parse(&off).unwrap().rtp.timeout(), None);
    }

    #[test]
    fn ivr_menus_are_checked() {
        let menu =
            |body: &str| format!("{DEFAULT}\n[[ivrs]]\nexten = \"5000\"\nname = \"r\"\n{body}\n");
        let good =
            Config::parse(&menu("choices = { \"1\" = \"1001\" }\ndefault = \"1000\"")).unwrap();
        let ivr = good.ivr("5000").unwrap();
        assert_eq!((ivr.timeout, ivr.retries), (5, 3));
        for (body, message) in [
            (
                "choices = { \"12\" = \"1001\" }",
                "ivrs: 5000: choice \"12\" is not one key (0-9, *, #)",
            ),
            (
                "choices = { \"1\" = \"4242\" }",
                "ivrs: 5000: choice 1 leads to 4242, which is not a user or a group",
            ),
            (
                "choices = {}\ndefault = \"4242\"",
                "ivrs: 5000: default 4242 is not a user or a group",
            ),
            (
                "choices = {}\ntimeout = 0",
                "ivrs: 5000: timeout is 1 to 60 s, retries 1 to 10",
            ),
            (
                "choices = {}\nprompt = \"/nonexistent.wav\"",
                "ivrs: 5000: prompt /nonexistent.wav is not a file",
            ),
        ] {
            assert_eq!(
                Config::parse(&menu(body)).unwrap_err().message,
                message,
                "{body}"
            );
        }
        let taken =
            DEFAULT.to_owned() + "\n[[ivrs]]\nexten = \"9000\"\nname = \"r\"\nchoices = {}\n";
        assert_eq!(
            Config::parse(&taken).unwrap_err().message,
            "ivrs: 9000 is already another extension"
        );
    }

    #[test]
    fn voicemail_boxes_are_checked() {
        let config = Config::parse(DEFAULT).unwrap();
        assert_eq!(
            config.user("1001").unwrap().voicemail.as_deref(),
            Some("1001")
        );
        let vm = config.voicemail("1001").unwrap();
        assert_eq!((vm.max_messages, vm.max_message_seconds), (100, 180));
        // No PIN: *98 from the owner's phone does not ask one.
        assert!(!vm.asks_pin());
        let with_pin =
            DEFAULT.replace("number = \"1001\"\n", "number = \"1001\"\npin = \"2580\"\n");
        assert!(
            Config::parse(&with_pin)
                .unwrap()
                .voicemail("1001")
                .unwrap()
                .asks_pin()
        );
        for (from, to, message) in [
            (
                "number = \"1001\"\n",
                "number = \"1001\"\npin = \"25a\"\n",
                "voicemails: 1001: the PIN is 1 to 16 digits",
            ),
            (
                "number = \"1001\"\n",
                "number = \"1001\"\nmax_messages = 0\n",
                "voicemails: 1001: max_messages is 1 to 10000",
            ),
            (
                "number = \"1002\"\n",
                "number = \"1001\"\n",
                "voicemails: box 1001 is defined twice",
            ),
            (
                "voicemail = \"1003\"",
                "voicemail = \"7777\"",
                "users: 1003: voicemail 7777 is not a [[voicemails]] box",
            ),
        ] {
            let text = DEFAULT.replacen(from, to, 1);
            assert_ne!(text, DEFAULT);
            assert_eq!(Config::parse(&text).unwrap_err().message, message);
        }
    }

    #[test]
    fn conference_rooms_are_checked() {
        let room = |body: &str| format!("{DEFAULT}\n[[conferences]]\n{body}\n");
        let good = Config::parse(&room(
            "exten = \"4001\"\nname = \"board\"\npin = \"0042\"\nmax_participants = 8",
        ))
        .unwrap();
        let board = good.conference("4001").unwrap();
        assert_eq!(
            (board.pin.as_deref(), board.max_participants),
            (Some("0042"), 8)
        );
        assert!(good.conference("4000").unwrap().announce_only_person);
        for (body, message) in [
            (
                "exten = \"1000\"\nname = \"x\"",
                "conferences: 1000 is already a user, a group, a queue or a room",
            ),
            (
                "exten = \"4001\"\nname = \"meeting\"",
                "conferences: the name \"meeting\" is empty or used twice",
            ),
            (
                "exten = \"40a\"\nname = \"x\"",
                "conferences: extension \"40a\" must be digits",
            ),
            (
                "exten = \"4001\"\nname = \"x\"\npin = \"12*4\"",
                "conferences: 4001: the PIN is 1 to 16 digits",
            ),
            (
                "exten = \"4001\"\nname = \"x\"\nmax_participants = 5000",
                "conferences: 4001: max_participants is at most 1000",
            ),
            (
                "exten = \"4001\"\nname = \"x\"\nmusic_on_hold = \"jazz\"",
                "conferences: 4001: music_on_hold \"jazz\" is not a music_on_hold class",
            ),
        ] {
            let e = Config::parse(&room(body)).unwrap_err();
            assert_eq!(e.message, message);
            assert!(e.at.is_some(), "{message}");
        }
        let e = Config::parse(&format!(
            "{DEFAULT}\n[[incalls]]\ndid = \"0140\"\nconference = \"4999\"\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.message,
            "incalls: DID 0140 goes to 4999, which is not defined"
        );
    }

    #[test]
    fn errors_say_where() {
        let text = DEFAULT.replace("port_min = 10000", "port_min = 30000");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("port_min 30000"), "{err:?}");
        let (line, _) = err.at.unwrap();
        assert_eq!(
            text.lines().nth(line - 1).unwrap().trim(),
            "port_min = 30000"
        );

        let text = DEFAULT.replace("ring_time = 30", "ring_time = \"long\"");
        let err = Config::parse(&text).unwrap_err();
        let (line, col) = err.at.unwrap();
        assert!(
            text.lines().nth(line - 1).unwrap().contains("ring_time"),
            "{err:?}"
        );
        assert!(
            err.describe("pbx.toml")
                .starts_with(&format!("pbx.toml:{line}:{col}: "))
        );

        let text = DEFAULT.replace("[[extensions]]", "[[extension]]");
        assert!(
            Config::parse(&text)
                .unwrap_err()
                .message
                .contains("unknown field")
        );

        let text = DEFAULT.replace("rtp_timeout = 7200", "rtp_timeout = 99999999999");
        let err = Config::parse(&text).unwrap_err();
        assert!(
            err.message.starts_with("rtp_timeout: at most one year"),
            "{err:?}"
        );
        let (line, _) = err.at.unwrap();
        assert!(
            text.lines()
                .nth(line - 1)
                .unwrap()
                .starts_with("rtp_timeout")
        );

        let text = DEFAULT.replace("ban_time = 600", "ban_time = 99999999999");
        let err = Config::parse(&text).unwrap_err();
        assert!(
            err.message.starts_with("ban_time: at most one year"),
            "{err:?}"
        );

        let group =
            |body: &str| format!("{DEFAULT}\n[[groups]]\nexten = \"3000\"\nname = \"G\"\n{body}");
        for (body, expected) in [
            (
                "members = [\"1001\", \"4321\"]",
                "member 4321 is not a user",
            ),
            (
                "members = []\nstrategy = \"sometimes\"",
                "strategy \"sometimes\" is not one of",
            ),
            (
                "members = []\nno_answer = \"77\"",
                "no_answer 77 is not a user or a group",
            ),
            ("members = []\nring_time = 99999999", "at most one year"),
        ] {
            let text = group(body);
            let err = Config::parse(&text).unwrap_err();
            assert!(err.message.contains(expected), "{err:?}");
            let (line, _) = err.at.unwrap();
            assert_eq!(text.lines().nth(line - 1).unwrap(), "exten = \"3000\"");
        }
        let text = format!(
            "{}\nexten = \"1001\"\nname = \"G\"\nmembers = []\n",
            "[[groups]]"
        );
        let err = Config::parse(&format!("{DEFAULT}\n{text}")).unwrap_err();
        assert!(err.message.contains("1001 is already a user"), "{err:?}");
        let incall = |to: &str| {
            format!(
                "{}\n[[incalls]]\ndid = \"0123\"\n{to}",
                group("members = [\"1001\"]")
            )
        };
        assert!(Config::parse(&incall("group = \"3000\"")).is_ok());
        assert!(
            Config::parse(&incall("group = \"3001\""))
                .unwrap_err()
                .message
                .contains("3001, which is not defined")
        );
        assert!(
            Config::parse(&incall("user = \"1001\"\ngroup = \"3000\""))
                .unwrap_err()
                .message
                .contains("one of user, group, queue and conference")
        );
        assert!(Config::parse(&incall("queue = \"3100\"")).is_ok());
        assert!(
            Config::parse(&incall("queue = \"3199\""))
                .unwrap_err()
                .message
                .contains("3199, which is not defined")
        );

        // The default's queue 3100 "support" and its agents 1 and 2.
        let queue = |body: &str| {
            format!("{DEFAULT}\n[[queues]]\nexten = \"3101\"\nname = \"sales\"\n{body}")
        };
        for (body, expected) in [
            (
                "strategy = \"sometimes\"",
                "strategy \"sometimes\" is not one of",
            ),
            (
                "no_answer = \"77\"",
                "no_answer 77 is not a user, a group or a queue",
            ),
            ("timeout = 99999999", "at most one year"),
            ("announce_frequency = 99999999", "at most one year"),
            (
                "join_empty = \"paused,sometimes\"",
                "join_empty: \"sometimes\" is not",
            ),
            ("divert_wait_ratio = -1.0", "divert_wait_ratio is between"),
            (
                "skill_rules = [\"english > 0\", \"english >\"]",
                "skill_rules[1] \"english >\": column 10:",
            ),
        ] {
            let text = queue(body);
            let err = Config::parse(&text).unwrap_err();
            assert!(err.message.contains(expected), "{err:?}");
            let (line, _) = err.at.unwrap();
            assert_eq!(text.lines().nth(line - 1).unwrap(), "exten = \"3101\"");
        }
        assert!(Config::parse(&queue("no_answer = \"3100\"")).is_ok());
        let text = queue("announce_holdtime = \"sometimes\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("`no`, `yes`, `once`"), "{err:?}");
        let (line, _) = err.at.unwrap();
        assert!(
            text.lines()
                .nth(line - 1)
                .unwrap()
                .starts_with("announce_holdtime")
        );
        let text = DEFAULT.replace(
            "name = \"support\"",
            "name = \"support\"\n[[queues]]\nexten = \"3102\"\nname = \"support\"",
        );
        let err = Config::parse(&text).unwrap_err();
        assert!(
            err.message.contains("the name support is used twice"),
            "{err:?}"
        );
        let agent = |body: &str| format!("{DEFAULT}\n[[agents]]\n{body}");
        for (body, expected) in [
            ("number = \"x1\"\nqueues = []", "must be digits"),
            ("number = \"1\"\nqueues = []", "1 is defined twice"),
            (
                "number = \"3\"\nqueues = [\"sales\"]",
                "queue sales is not defined",
            ),
            (
                "number = \"3\"\nqueues = []\npassword = \"abc\"",
                "a password is digits",
            ),
        ] {
            let err = Config::parse(&agent(body)).unwrap_err();
            assert!(err.message.contains(expected), "{err:?}");
            assert!(err.at.is_some());
        }
        for (bad, expected) in [
            ("x1 = \"lunch\"", "1 to 4 digits"),
            ("12345 = \"lunch\"", "1 to 4 digits"),
            ("4 = \"a|b\"", "without '|'"),
            ("4 = \"\"", "1 to 64 characters"),
        ] {
            let text = DEFAULT.replace("1 = \"lunch\"", bad);
            let err = Config::parse(&text).unwrap_err();
            assert!(err.message.contains(expected), "{bad}: {err:?}");
            let (line, _) = err.at.unwrap();
            assert_eq!(text.lines().nth(line - 1), Some("[pause_reasons]"));
        }

        let text = DEFAULT.replace("min_se = 90", "min_se = 3600");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("min_se <= session_expires"), "{err:?}");
        let (line, _) = err.at.unwrap();
        assert!(text.lines().nth(line - 1).unwrap().contains("min_se"));

        let text = DEFAULT.replace("_0XXXXXXXXX", "_0[X");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("routes: external: pattern"), "{err:?}");
        let (line, _) = err.at.unwrap();
        assert!(text.lines().nth(line - 1).unwrap().contains("_0[X"));

        let text = DEFAULT.replace("exten = \"9000\"", "exten = \"1005\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("1005 is already a user"), "{err:?}");
        assert!(err.at.is_some());

        let text = DEFAULT.replace("exten = \"1001\"", "exten = \"1000\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("1000 is defined twice"));
    }

    #[test]
    fn omitted_sections_take_their_defaults() {
        let config = Config::parse(
            "[[users]]\nexten = \"1000\"\nname = \"A\"\npassword = \"a long secret\"\n",
        )
        .unwrap();
        assert_eq!(config.sip.listen.port(), 5060);
        assert_eq!(config.rtp.port_min, 10000);
        assert_eq!(config.http.listen.ip().to_string(), "127.0.0.1");
        assert_eq!(config.pbx.node_id, "pbx");
        assert_eq!(config.user("1000").map(|u| u.name.as_str()), Some("A"));
        assert!(config.user("1001").is_none());
    }

    #[test]
    fn nonce_secret_and_node_id_are_checked() {
        let text = DEFAULT.replace("min_se = 90", "min_se = 90\nnonce_secret = \"short\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("32 characters"), "{err:?}");
        let text = DEFAULT.replace("node_id = \"pbx\"", "node_id = \"a b\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("node_id"), "{err:?}");
        assert!(err.at.is_some());
    }

    #[test]
    fn digest_algorithms_are_checked_and_kept_in_order() {
        use pbxkit_sip::digest::Algorithm;
        let config = Config::parse(DEFAULT).unwrap();
        assert_eq!(config.sip.digest_algorithms(), [Algorithm::Md5]);
        let both = DEFAULT.replace(
            "digest_algorithms = [\"MD5\"]",
            "digest_algorithms = [\"SHA-256\", \"md5\"]",
        );
        let config = Config::parse(&both).unwrap();
        assert_eq!(
            config.sip.digest_algorithms(),
            [Algorithm::Sha256, Algorithm::Md5]
        );
        for bad in ["[]", "[\"SHA-1\"]", "[\"MD5\", \"MD5\"]"] {
            let text = DEFAULT.replace(
                "digest_algorithms = [\"MD5\"]",
                &format!("digest_algorithms = {bad}"),
            );
            let err = Config::parse(&text).unwrap_err();
            assert!(err.message.contains("digest_algorithms"), "{bad}: {err:?}");
            assert!(err.at.is_some());
        }
        let text = DEFAULT.replace("nonce_max_tracked = 100000", "nonce_max_tracked = 0");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.message.contains("nonce_max_tracked"), "{err:?}");
    }
}
