//! The routing configuration: serde types loadable from TOML, and
//! [`Config::validate`] which checks that everything refers to something that exists.
//!
//! The shapes follow the XiVO/Wazo administration pages (reference `000` XiVO admin
//! docs, `003` training slides "Les contextes", "Appels sortants", "Droits d'appels",
//! "Horaires"). Objects refer to each other by name.
//!
//! ```
//! use pbxkit_dialplan::config::Config;
//!
//! let config: Config = toml::from_str(r#"
//!     [[contexts]]
//!     name = "default"
//!     kind = "internal"
//!     ranges.users = [{ start = "1000", end = "1999" }]
//!
//!     [[users]]
//!     name = "alice"
//!     extension = "1000"
//!     context = "default"
//! "#)?;
//! config.validate()?;
//! assert_eq!(config.users[0].ring_time, 30);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::features::{FeatureCodeError, FeaturesConfig};
use crate::filter::CallFilterConfig;
use crate::pattern::{Pattern, PatternError};
use crate::schedule::ScheduleError;

/// The whole routing configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Dialplan contexts.
    pub contexts: Vec<ContextConfig>,
    /// Users.
    pub users: Vec<UserConfig>,
    /// Ring groups.
    pub groups: Vec<GroupConfig>,
    /// Call queues.
    pub queues: Vec<QueueConfig>,
    /// Conference rooms.
    pub conferences: Vec<ConferenceConfig>,
    /// Voicemail boxes.
    pub voicemails: Vec<VoicemailConfig>,
    /// Custom destinations (an application the PBX knows how to run).
    pub customs: Vec<CustomConfig>,
    /// Trunks, referred to by outgoing call routes.
    pub trunks: Vec<TrunkConfig>,
    /// Incoming call routes (DIDs).
    pub incalls: Vec<IncallConfig>,
    /// Outgoing call routes.
    pub outcalls: Vec<OutcallConfig>,
    /// Schedules.
    pub schedules: Vec<ScheduleConfig>,
    /// Call permissions.
    pub permissions: Vec<PermissionConfig>,
    /// Inbound caller-ID number rewrite rules, tried in order.
    pub caller_id_rules: Vec<CallerIdRuleConfig>,
    /// The caller ID sent on outgoing calls when nothing else sets one (the last
    /// step of the precedence in reference 000 "Caller ID" for interconnections).
    pub default_caller_id: Option<String>,
    /// Feature codes (`[features]`; every code has its XiVO default).
    pub features: FeaturesConfig,
    /// Boss/secretary call filters.
    pub call_filters: Vec<CallFilterConfig>,
}

/// The type of a context (reference 003 "Les contextes": interne, entrant, sortant,
/// service, autre).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContextKind {
    /// Users, groups, queues, conferences: where phones dial from.
    Internal,
    /// Incoming calls from trunks (DIDs).
    Incall,
    /// Outgoing call routes.
    Outcall,
    /// Services (feature codes and the like).
    Service,
    /// Anything else.
    Other,
}

impl fmt::Display for ContextKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Internal => "internal",
            Self::Incall => "incall",
            Self::Outcall => "outcall",
            Self::Service => "service",
            Self::Other => "other",
        })
    }
}

/// A dialplan context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// The unique name (`default`, `from-extern`, `to-extern`).
    pub name: String,
    /// What the context is for.
    pub kind: ContextKind,
    /// The number ranges objects of each type may use in this context.
    #[serde(default)]
    pub ranges: Ranges,
    /// Contexts searched, in this order, when nothing in this one matches (reference
    /// 003 "Les contextes" 3: "l'appel est renvoyé dans chacun des contextes inclus,
    /// dans l'ordre d'inclusion").
    #[serde(default)]
    pub includes: Vec<String>,
    /// Incall contexts: the number of digits the operator's DIDs are matched on
    /// ("Nombre de chiffres reçus", reference 003 "Les contextes (entrants)": "Celui-ci
    /// sera alors tronqué en fonction de ce nombre … 0123456789 avec 4 chiffres reçus
    /// donnera 6789"). A longer called number keeps only its last digits before the
    /// incalls are searched, so an operator sending ten digits reaches DIDs written
    /// with four. An incall range's own [`NumberRange::did_length`] wins for the
    /// numbers of that range. Absent: the number is matched whole.
    #[serde(default)]
    pub did_length: Option<u8>,
    /// Outcall contexts: what users dial first for an outside line (`"0"`). Every
    /// route pattern of the context is matched after it (the route `_0[1-9]XXXXXXXX`
    /// is reached by dialling `00612345678`), and it is removed before the pattern's
    /// own `strip` and `prefix` (see [`crate::outcall`]). Digits, `*` and `#` only.
    /// Absent: numbers are matched as dialled (XiVO's way: the `0` is written in
    /// each pattern, reference 003 "Appels sortants": "0 pour sortir").
    #[serde(default)]
    pub external_prefix: Option<String>,
}

/// Number ranges of a context, per object type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ranges {
    /// Users' extensions.
    pub users: Vec<NumberRange>,
    /// Groups' extensions.
    pub groups: Vec<NumberRange>,
    /// Queues' extensions.
    pub queues: Vec<NumberRange>,
    /// Conference rooms' extensions.
    pub conferences: Vec<NumberRange>,
    /// DIDs of incoming calls (incall contexts).
    pub incalls: Vec<NumberRange>,
}

/// A range of numbers of the same length, `start..=end`. Without `end` it is the
/// single number `start` (reference 003: "Si le champ de fin n'est pas renseigné,
/// cela sera considéré comme un numéro unique").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRange {
    /// The first number, digits only.
    pub start: String,
    /// The last number, digits only, as long as `start`.
    #[serde(default)]
    pub end: Option<String>,
    /// Incall ranges only: the number of digits the operator sends for the numbers
    /// of this range ("Nb de chiffres reçus", reference 003 "Les contextes
    /// (entrants)"): a called number of the range keeps its last `did_length`
    /// digits, and the incalls of the range are written with that many digits
    /// (`6789` for `0123456789` with 4). The context's
    /// [`did_length`](ContextConfig::did_length) when absent.
    #[serde(default)]
    pub did_length: Option<u8>,
}

impl NumberRange {
    /// The last number of the range.
    pub fn last(&self) -> &str {
        self.end.as_deref().unwrap_or(&self.start)
    }

    /// Whether `number` lies in the range: same length, and between the bounds.
    pub fn contains(&self, number: &str) -> bool {
        number.len() == self.start.len()
            && number.bytes().all(|b| b.is_ascii_digit())
            && self.start.as_str() <= number
            && number <= self.last()
    }

    /// Whether `number` is the last `n` digits of a number of the range (an incall
    /// DID written the way the operator sends it, see [`Self::did_length`]).
    pub fn contains_tail(&self, number: &str, n: usize) -> bool {
        let len = self.start.len();
        if n == 0 || n > len || number.len() != n || !number.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let cut = len - n;
        let (Some((start_head, start_tail)), Some((end_head, end_tail))) =
            (split(&self.start, cut), split(self.last(), cut))
        else {
            return false;
        };
        if start_head == end_head {
            return start_tail <= number && number <= end_tail;
        }
        // The range crosses heads: the start head's tails from `start_tail` up, the
        // end head's tails up to `end_tail`, and every tail of the heads between.
        let adjacent = match (start_head.parse::<u128>(), end_head.parse::<u128>()) {
            (Ok(a), Ok(b)) => a.checked_add(1) == Some(b),
            _ => false,
        };
        !adjacent || start_tail <= number || number <= end_tail
    }

    /// Whether two ranges share a number.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.start.len() == other.start.len()
            && self.start.as_str() <= other.last()
            && other.start.as_str() <= self.last()
    }

    /// Why the range is malformed, if it is.
    fn fault(&self) -> Option<&'static str> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(&self.start) || !digits(self.last()) {
            Some("bounds must be non-empty and digits only")
        } else if self.start.len() != self.last().len() {
            Some("both bounds must have the same number of digits")
        } else if self.start.as_str() > self.last() {
            Some("start is after end")
        } else {
            None
        }
    }
}

/// `text` cut at byte `at`, when that is a character boundary.
fn split(text: &str, at: usize) -> Option<(&str, &str)> {
    Some((text.get(..at)?, text.get(at..)?))
}

impl fmt::Display for NumberRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.end {
            Some(end) => write!(f, "{}-{end}", self.start),
            None => f.write_str(&self.start),
        }
    }
}

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Destination {
    /// Ring a user.
    User {
        /// The user's name.
        name: String,
    },
    /// Ring a group.
    Group {
        /// The group's name.
        name: String,
    },
    /// Enter a queue.
    Queue {
        /// The queue's name.
        name: String,
    },
    /// Join a conference room.
    Conference {
        /// The room's name.
        name: String,
    },
    /// Leave a message in a voicemail box.
    Voicemail {
        /// The box's name.
        name: String,
    },
    /// Run a custom destination.
    Custom {
        /// The custom destination's name.
        name: String,
    },
    /// Dial an extension in a context.
    Extension {
        /// The context.
        context: String,
        /// The extension to dial there.
        exten: String,
    },
    /// Hang up.
    Hangup,
}

/// `user 'alice'`, `voicemail 'vm-sales'`, `extension 1000 in 'default'`, `hang up`.
impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::User { name } => write!(f, "user '{name}'"),
            Destination::Group { name } => write!(f, "group '{name}'"),
            Destination::Queue { name } => write!(f, "queue '{name}'"),
            Destination::Conference { name } => write!(f, "conference '{name}'"),
            Destination::Voicemail { name } => write!(f, "voicemail '{name}'"),
            Destination::Custom { name } => write!(f, "custom destination '{name}'"),
            Destination::Extension { context, exten } => {
                write!(f, "extension {exten} in '{context}'")
            }
            Destination::Hangup => write!(f, "hang up"),
        }
    }
}

/// A call forward: a number, used only when enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Forward {
    /// Whether the forward is active.
    pub enabled: bool,
    /// The number calls are forwarded to.
    pub destination: String,
}

/// The three forwards of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Forwards {
    /// Every call.
    pub unconditional: Forward,
    /// When the user is busy.
    pub busy: Forward,
    /// When the user does not answer within the ring time.
    pub no_answer: Forward,
}

/// A user's outgoing caller ID (reference 000 "Caller ID": "The Outgoing Caller ID
/// option must be set to Customize. The user can also set his outgoing caller ID to
/// anonymous"). Written `"default"`, `"anonymous"` or the caller ID itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum OutgoingCallerId {
    /// Use the route's caller ID.
    #[default]
    Default,
    /// Hide the caller ID.
    Anonymous,
    /// This caller ID, like `"Alice" <0123456789>`.
    Custom(String),
}

impl From<String> for OutgoingCallerId {
    fn from(text: String) -> Self {
        match text.as_str() {
            "" | "default" => Self::Default,
            "anonymous" => Self::Anonymous,
            _ => Self::Custom(text),
        }
    }
}

impl From<OutgoingCallerId> for String {
    fn from(cid: OutgoingCallerId) -> Self {
        match cid {
            OutgoingCallerId::Default => "default".into(),
            OutgoingCallerId::Anonymous => "anonymous".into(),
            OutgoingCallerId::Custom(text) => text,
        }
    }
}

fn default_ring_time() -> u32 {
    30
}

fn default_simultaneous_calls() -> u32 {
    5
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The unique name.
    pub name: String,
    /// The caller ID name shown for internal calls; the name when absent.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The internal extension, if the user has one.
    #[serde(default)]
    pub extension: Option<String>,
    /// The internal context of the extension.
    pub context: String,
    /// The user's lines (SIP accounts), rung together.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Seconds to ring before the no-answer forward (default 30).
    #[serde(default = "default_ring_time")]
    pub ring_time: u32,
    /// Most calls at once before the user counts as busy (default 5).
    #[serde(default = "default_simultaneous_calls")]
    pub simultaneous_calls: u32,
    /// Call forwards.
    #[serde(default)]
    pub forwards: Forwards,
    /// Do not disturb.
    #[serde(default)]
    pub dnd: bool,
    /// The user's voicemail box.
    #[serde(default)]
    pub voicemail: Option<String>,
    /// Names of the call permissions applied to the user.
    #[serde(default)]
    pub call_permissions: Vec<String>,
    /// The user's call-permission code: replaces the password of every
    /// password-protected permission for this user (reference 000 "Call
    /// Permissions": "User's Rightcall Code overwrite all password call permissions").
    #[serde(default)]
    pub call_permission_password: Option<String>,
    /// The caller ID on outgoing calls.
    #[serde(default)]
    pub outgoing_caller_id: OutgoingCallerId,
    /// A mobile phone number.
    #[serde(default)]
    pub mobile_number: Option<String>,
    /// A schedule applied to calls to the user.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Where unanswered calls go, per case (the "Non réponse" tab).
    #[serde(default)]
    pub no_answer: NoAnswerDestinations,
}

/// Where a call to a user goes when it is not answered, per case (reference 003
/// "Utilisateurs → Non-réponse": "Aucune réponse", "Occupé", "Saturé", "Echoué").
/// An absent destination means the user's voicemail if any, else a prompt inviting
/// to call back (003: "Aucun : renvoi vers la messagerie de l'utilisateur s'il en
/// possède une ou diffuse un fichier son invitant à rappeler").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoAnswerDestinations {
    /// The ring time ran out.
    pub no_answer: Option<Destination>,
    /// The user's simultaneous-calls limit is reached.
    pub busy: Option<Destination>,
    /// The device's own limit is reached.
    pub congestion: Option<Destination>,
    /// The line is not registered.
    pub failure: Option<Destination>,
}

/// A ring group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The unique name.
    pub name: String,
    /// The extension; groups used only for call permissions have none.
    #[serde(default)]
    pub extension: Option<String>,
    /// The internal context.
    pub context: String,
    /// Names of the member users.
    #[serde(default)]
    pub members: Vec<String>,
    /// Names of the call permissions applied to the members.
    #[serde(default)]
    pub call_permissions: Vec<String>,
    /// A schedule applied to calls to the group.
    #[serde(default)]
    pub schedule: Option<String>,
    /// How the members ring (003 "Groupes": "Stratégie de sonnerie"; all together
    /// by default).
    #[serde(default)]
    pub strategy: RingStrategy,
    /// Seconds the call rings in the group before its no-answer destination (003
    /// "Groupes": "Temps de sonnerie : avant bascule en non-réponse"); no limit when
    /// absent or 0, as Asterisk's queue timeout.
    #[serde(default)]
    pub ring_time: Option<u32>,
    /// Seconds each member rings in the serial strategies (003 "Groupes": "Délai
    /// d'attente pour joindre un utilisateur"; Wazo's `user_timeout`, default 15).
    #[serde(default = "default_member_ring_time")]
    pub member_ring_time: u32,
    /// Seconds between two members in the serial strategies (003 "Groupes": "Délai
    /// d'attente avant rappel des utilisateurs"; Wazo's `retry_delay`, default 5).
    #[serde(default = "default_retry_delay")]
    pub retry_delay: u32,
    /// Whether members already on a call are rung (003 "Groupes": "Appeler un
    /// membre déjà en communication"; Asterisk's `ringinuse`, on by default).
    #[serde(default = "default_true")]
    pub ring_in_use: bool,
    /// Where unanswered calls go, per case (the group's "Non réponse" tab); hang up
    /// when absent.
    #[serde(default)]
    pub no_answer: NoAnswerDestinations,
}

fn default_member_ring_time() -> u32 {
    15
}

fn default_retry_delay() -> u32 {
    5
}

fn default_true() -> bool {
    true
}

/// How a group's members ring. To Asterisk a group is a queue (003 "Groupes": "D'un
/// point de vue Asterisk, un groupe est une file d'attente"), so the strategies and
/// their names are the queue strategies of 004 "Queues" / 000 "Queues", which 003
/// "Groupes" lists for groups.
///
/// `ringall` rings every member in one step. The others ring one member at a time
/// for the group's `member_ring_time`, `retry_delay` apart, in the order below; with
/// a group `ring_time` they go round again until it runs out, without one each
/// member is rung once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RingStrategy {
    /// All members at the same time ("Tous").
    #[default]
    #[serde(rename = "ringall")]
    RingAll,
    /// In definition order, starting from the first member for every call ("Dans
    /// l'ordre de leur définition").
    #[serde(rename = "linear")]
    Linear,
    /// The member who least recently ended a call of the group first ("Le moins
    /// récent"); see [`LiveState::member_last_call`](crate::LiveState::member_last_call).
    #[serde(rename = "leastrecent")]
    LeastRecent,
    /// The member with the fewest completed calls of the group first ("Le moins
    /// d'appels"); see [`LiveState::member_calls`](crate::LiveState::member_calls).
    #[serde(rename = "fewestcalls")]
    FewestCalls,
    /// In definition order, starting after the member who answered last
    /// ("Répartition cyclique mémorisée"); see
    /// [`LiveState::group_last_answered`](crate::LiveState::group_last_answered).
    #[serde(rename = "rrmemory")]
    RoundRobinMemory,
    /// In an order drawn at random ("Aléatoire"); see
    /// [`LiveState::random`](crate::LiveState::random).
    #[serde(rename = "random")]
    Random,
    /// Random weighted by the members' penalties ("Aléatoire pondéré par les
    /// pénalités"), app_queue's `rand % ((1 + penalty) × 1000)`. Group members
    /// have no penalty here, so all weigh the same and, for the same draw, this
    /// orders as [`Random`](Self::Random) (see
    /// [`LiveState::ring_order`](crate::LiveState::ring_order)).
    #[serde(rename = "wrandom")]
    WeightedRandom,
}

/// A call queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The unique name.
    pub name: String,
    /// The extension.
    #[serde(default)]
    pub extension: Option<String>,
    /// The internal context.
    pub context: String,
    /// A schedule applied to calls to the queue.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// A conference room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConferenceConfig {
    /// The unique name.
    pub name: String,
    /// The extension.
    #[serde(default)]
    pub extension: Option<String>,
    /// The internal context.
    pub context: String,
}

/// A voicemail box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailConfig {
    /// The unique name.
    pub name: String,
    /// The box number.
    pub number: String,
    /// The voicemail context.
    #[serde(default)]
    pub context: Option<String>,
}

/// A custom destination: an application the PBX runs, given as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomConfig {
    /// The unique name.
    pub name: String,
    /// What to run, for the PBX to interpret.
    pub command: String,
}

/// A trunk outgoing calls can use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// The unique name.
    pub name: String,
}

/// How an incoming call's caller ID name is changed (reference 004 "CallerID for
/// incoming calls": "The Incoming Call's caller_id_mode can prepend, append or
/// overwrite the incoming CallerID").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerIdMode {
    /// `value` then the name.
    Prepend,
    /// The name then `value`.
    Append,
    /// `value` replaces the name.
    Overwrite,
}

/// An incoming call's caller ID change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncallCallerId {
    /// How `value` is applied.
    pub mode: CallerIdMode,
    /// The text (include your own separator, e.g. `"Sales - "`).
    pub value: String,
}

/// An incoming call route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncallConfig {
    /// The DID: an exact number or an Asterisk pattern (`_0320495XXX`).
    pub did: String,
    /// The incall context.
    pub context: String,
    /// Where the call goes.
    pub destination: Destination,
    /// A caller ID change.
    #[serde(default)]
    pub caller_id: Option<IncallCallerId>,
    /// A schedule.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Names of the call permissions, matched against the *caller's* number
    /// (reference 000 "Call Permissions").
    #[serde(default)]
    pub call_permissions: Vec<String>,
}

/// A pattern of an outgoing call route, with its number transformation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcallPatternConfig {
    /// An exact number or Asterisk pattern (`_0[1-9]XXXXXXXX`).
    pub pattern: String,
    /// Digits removed from the front of the dialled number.
    #[serde(default)]
    pub strip: usize,
    /// Text added in front, after stripping.
    #[serde(default)]
    pub prefix: String,
    /// The caller ID for calls through this pattern.
    #[serde(default)]
    pub caller_id: Option<String>,
}

/// An outgoing call route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcallConfig {
    /// The unique name.
    pub name: String,
    /// The outcall context holding the route.
    pub context: String,
    /// Lower numbers are tried first (reference 003 "Appels sortants": priorities
    /// let a narrower route, priority 4, take numbers from a wider one, priority 5).
    #[serde(default)]
    pub priority: u32,
    /// Send the caller's own caller ID (reference 000 "Caller ID": "the caller's
    /// caller ID will be forwarded to the trunk").
    #[serde(default)]
    pub internal: bool,
    /// Trunks in failover order.
    pub trunks: Vec<String>,
    /// The patterns.
    pub patterns: Vec<OutcallPatternConfig>,
    /// Names of the call permissions on this route.
    #[serde(default)]
    pub call_permissions: Vec<String>,
    /// A schedule.
    #[serde(default)]
    pub schedule: Option<String>,
}

/// An opening or closing period: each field narrows it; an absent field allows all.
///
/// Lists are written like XiVO's calendar widget stores them: `"1-5"`, `"1,3,5-7"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeriodConfig {
    /// `"HH:MM-HH:MM"`, both minutes included (`"09:00-18:00"` covers 18:00:59).
    pub hours: Option<String>,
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub weekdays: Option<String>,
    /// Days of the month, 1–31.
    pub month_days: Option<String>,
    /// Months, 1–12.
    pub months: Option<String>,
}

/// An exceptional closed period, with its own destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosedPeriodConfig {
    /// When.
    #[serde(flatten)]
    pub period: PeriodConfig,
    /// Where calls go meanwhile; the schedule's closed destination when absent.
    #[serde(default)]
    pub destination: Option<Destination>,
}

/// A schedule (reference 000 "Schedules", 003 "Horaires").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The unique name.
    pub name: String,
    /// IANA time zone, like `Europe/Paris`.
    pub timezone: String,
    /// Opening periods.
    #[serde(default)]
    pub open: Vec<PeriodConfig>,
    /// Exceptional closed periods (holidays, lunch), checked first.
    #[serde(default)]
    pub closed: Vec<ClosedPeriodConfig>,
    /// Where calls go outside the opening periods.
    #[serde(default)]
    pub closed_destination: Option<Destination>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authorization {
    /// The call may go through.
    Allow,
    /// The call is refused (or challenged for the password).
    Deny,
}

/// A call permission (reference 003 "Droits d'appels").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    /// The unique name.
    pub name: String,
    /// Allow or deny.
    pub authorization: Authorization,
    /// With a deny: the caller may still call after entering this password.
    #[serde(default)]
    pub password: Option<String>,
    /// Exact extensions and patterns. Written as in XiVO (`07XXXXX`) or with the
    /// Asterisk `_` (`_07XXXXX`): see [`crate::permission::parse_extension`].
    pub extensions: Vec<String>,
}

/// An inbound caller-ID rewrite rule (a section of `xivo_in_callerid.conf`,
/// reference 000/004 "Incoming caller number display").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerIdRuleConfig {
    /// A regular expression matched at the start of the caller number.
    pub callerid: String,
    /// Characters removed from the front.
    #[serde(default)]
    pub strip: usize,
    /// Text added in front, after stripping.
    #[serde(default)]
    pub add: String,
}

/// The kind of a named configuration object, in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A context.
    Context,
    /// A user.
    User,
    /// A group.
    Group,
    /// A queue.
    Queue,
    /// A conference room.
    Conference,
    /// A voicemail box.
    Voicemail,
    /// A custom destination.
    Custom,
    /// A trunk.
    Trunk,
    /// An incoming call route (named by its DID).
    Incall,
    /// An outgoing call route.
    Outcall,
    /// A schedule.
    Schedule,
    /// A call permission.
    Permission,
    /// An inbound caller-ID rule (named by its position, from 0).
    CallerIdRule,
    /// A boss/secretary call filter.
    CallFilter,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Context => "context",
            Self::User => "user",
            Self::Group => "group",
            Self::Queue => "queue",
            Self::Conference => "conference",
            Self::Voicemail => "voicemail",
            Self::Custom => "custom destination",
            Self::Trunk => "trunk",
            Self::Incall => "incall",
            Self::Outcall => "outcall",
            Self::Schedule => "schedule",
            Self::Permission => "call permission",
            Self::CallerIdRule => "caller-ID rule",
            Self::CallFilter => "call filter",
        })
    }
}

/// A configuration object, named in an error: "user 'alice'".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// What it is.
    pub kind: ObjectKind,
    /// Its name (a DID for incalls, a position for caller-ID rules).
    pub name: String,
}

impl ObjectRef {
    pub(crate) fn new(kind: ObjectKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.kind, self.name)
    }
}

/// Why a configuration is not usable. Each variant names the object at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Two objects of the same kind share a name.
    #[error("{object} is defined twice")]
    Duplicate {
        /// The second definition.
        object: ObjectRef,
    },
    /// A reference to an object that does not exist.
    #[error("{referrer} refers to unknown {missing}")]
    Unknown {
        /// The object holding the reference.
        referrer: ObjectRef,
        /// What it refers to.
        missing: ObjectRef,
    },
    /// An object placed in a context of the wrong type.
    #[error("{referrer} is in context '{context}' of type {found}, expected {expected}")]
    WrongContextKind {
        /// The object.
        referrer: ObjectRef,
        /// The context.
        context: String,
        /// The type the object needs.
        expected: ContextKind,
        /// The context's type.
        found: ContextKind,
    },
    /// A malformed number range.
    #[error("context '{context}': range {range} of {kind}s: {reason}")]
    BadRange {
        /// The context.
        context: String,
        /// The object type the range is for.
        kind: ObjectKind,
        /// The range.
        range: NumberRange,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two ranges of one context share numbers.
    #[error(
        "context '{context}': range {first} of {first_kind}s overlaps range {second} of {second_kind}s"
    )]
    OverlappingRanges {
        /// The context.
        context: String,
        /// The object type of the first range.
        first_kind: ObjectKind,
        /// The first range (boxed: keeps the error small).
        first: Box<NumberRange>,
        /// The object type of the second range.
        second_kind: ObjectKind,
        /// The second range.
        second: Box<NumberRange>,
    },
    /// An extension outside every range of its type in its context (reference 003:
    /// "Un numéro non-renseigné dans les contextes ne pourra pas être utilisé").
    #[error(
        "{object}: extension '{extension}' is outside the {object_kind} ranges of context '{context}'"
    )]
    OutsideRange {
        /// The object.
        object: ObjectRef,
        /// Its object type, naming the ranges checked.
        object_kind: ObjectKind,
        /// The extension.
        extension: String,
        /// The context.
        context: String,
    },
    /// Two entries of one context handle the same extension.
    #[error("context '{context}': {second} uses extension '{extension}' already used by {first}")]
    DuplicateExtension {
        /// The context.
        context: String,
        /// The extension as the second object wrote it.
        extension: String,
        /// The first object.
        first: ObjectRef,
        /// The second object.
        second: ObjectRef,
    },
    /// Contexts that include each other.
    #[error("include cycle: {}", .path.join(" -> "))]
    IncludeCycle {
        /// The contexts of the cycle, the first repeated at the end.
        path: Vec<String>,
    },
    /// An extension or pattern that does not parse.
    #[error("{object}: bad extension or pattern '{text}': {source}")]
    BadPattern {
        /// The object holding it.
        object: ObjectRef,
        /// The text.
        text: String,
        /// The fault and its byte offset in `text`.
        source: PatternError,
    },
    /// A schedule that cannot be used.
    #[error("{object}: {source}")]
    Schedule {
        /// The schedule.
        object: ObjectRef,
        /// What is wrong.
        source: ScheduleError,
    },
    /// A caller-ID rule whose regular expression does not compile.
    #[error("{object}: bad regular expression '{regex}': {source}")]
    BadRegex {
        /// The rule.
        object: ObjectRef,
        /// The expression.
        regex: String,
        /// The regex crate's error.
        source: Box<regex::Error>,
    },
    /// A bad feature code.
    #[error("{0}")]
    FeatureCode(#[from] FeatureCodeError),
    /// A call filter whose boss or secretaries are not usable.
    #[error("{object}: {reason}")]
    CallFilter {
        /// The filter.
        object: ObjectRef,
        /// What is wrong.
        reason: &'static str,
    },
    /// A setting with a value it cannot take, or on an object it does not apply to.
    #[error("{object}: {setting}: {reason}")]
    BadSetting {
        /// The object holding the setting.
        object: ObjectRef,
        /// The setting, as written in the configuration.
        setting: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// An outgoing call route without trunks or without patterns.
    #[error("{object} has no {missing}")]
    Empty {
        /// The route.
        object: ObjectRef,
        /// `"trunks"` or `"patterns"`.
        missing: &'static str,
    },
}

/// Per context: (object type, range) pairs.
type RangeList<'a> = Vec<(ObjectKind, &'a NumberRange)>;

impl Config {
    /// Checks the configuration without a time-zone database: everything but the
    /// time-zone names of schedules, which [`crate::Dialplan::new`] resolves.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let names = Names::collect(self)?;
        self.validate_contexts(&names)?;
        self.validate_objects(&names)?;
        self.validate_routes(&names)?;
        self.features.validate()?;
        self.validate_filters(&names)?;
        Ok(())
    }

    fn validate_contexts(&self, names: &Names<'_>) -> Result<(), ConfigError> {
        for context in &self.contexts {
            let referrer = ObjectRef::new(ObjectKind::Context, &context.name);
            for include in &context.includes {
                names.require(&referrer, ObjectKind::Context, include)?;
            }
            context.check_settings(&referrer)?;
            let ranges = context.ranges.list();
            for (kind, range) in &ranges {
                let fault = range.fault().or_else(|| match range.did_length {
                    Some(_) if *kind != ObjectKind::Incall => {
                        Some("did_length applies to incall ranges only")
                    }
                    Some(n) if n == 0 || usize::from(n) > range.start.len() => {
                        Some("did_length must be from 1 to the numbers' length")
                    }
                    _ => None,
                });
                if let Some(reason) = fault {
                    return Err(ConfigError::BadRange {
                        context: context.name.clone(),
                        kind: *kind,
                        range: (*range).clone(),
                        reason,
                    });
                }
            }
            for (i, (first_kind, first)) in ranges.iter().enumerate() {
                for (second_kind, second) in ranges.iter().skip(i + 1) {
                    if first.overlaps(second) {
                        return Err(ConfigError::OverlappingRanges {
                            context: context.name.clone(),
                            first_kind: *first_kind,
                            first: Box::new((*first).clone()),
                            second_kind: *second_kind,
                            second: Box::new((*second).clone()),
                        });
                    }
                }
            }
        }
        if let Some(path) = find_include_cycle(&self.contexts) {
            return Err(ConfigError::IncludeCycle { path });
        }
        Ok(())
    }

    fn validate_objects(&self, names: &Names<'_>) -> Result<(), ConfigError> {
        for user in &self.users {
            let me = ObjectRef::new(ObjectKind::User, &user.name);
            self.check_extension(names, &me, user.extension.as_deref(), &user.context)?;
            if let Some(vm) = &user.voicemail {
                names.require(&me, ObjectKind::Voicemail, vm)?;
            }
            for permission in &user.call_permissions {
                names.require(&me, ObjectKind::Permission, permission)?;
            }
            if let Some(schedule) = &user.schedule {
                names.require(&me, ObjectKind::Schedule, schedule)?;
            }
            let n = &user.no_answer;
            for destination in [&n.no_answer, &n.busy, &n.congestion, &n.failure]
                .into_iter()
                .flatten()
            {
                names.require_destination(&me, destination)?;
            }
        }
        for group in &self.groups {
            let me = ObjectRef::new(ObjectKind::Group, &group.name);
            self.check_extension(names, &me, group.extension.as_deref(), &group.context)?;
            for member in &group.members {
                names.require(&me, ObjectKind::User, member)?;
            }
            for permission in &group.call_permissions {
                names.require(&me, ObjectKind::Permission, permission)?;
            }
            if let Some(schedule) = &group.schedule {
                names.require(&me, ObjectKind::Schedule, schedule)?;
            }
            if group.member_ring_time == 0 {
                return Err(ConfigError::BadSetting {
                    object: me,
                    setting: "member_ring_time",
                    reason: "must be at least 1 second",
                });
            }
            let n = &group.no_answer;
            for destination in [&n.no_answer, &n.busy, &n.congestion, &n.failure]
                .into_iter()
                .flatten()
            {
                names.require_destination(&me, destination)?;
            }
        }
        for queue in &self.queues {
            let me = ObjectRef::new(ObjectKind::Queue, &queue.name);
            self.check_extension(names, &me, queue.extension.as_deref(), &queue.context)?;
            if let Some(schedule) = &queue.schedule {
                names.require(&me, ObjectKind::Schedule, schedule)?;
            }
        }
        for room in &self.conferences {
            let me = ObjectRef::new(ObjectKind::Conference, &room.name);
            self.check_extension(names, &me, room.extension.as_deref(), &room.context)?;
        }
        for permission in &self.permissions {
            let me = ObjectRef::new(ObjectKind::Permission, &permission.name);
            for text in &permission.extensions {
                crate::permission::parse_extension(text).map_err(|source| {
                    ConfigError::BadPattern {
                        object: me.clone(),
                        text: text.clone(),
                        source,
                    }
                })?;
            }
        }
        for schedule in &self.schedules {
            let me = ObjectRef::new(ObjectKind::Schedule, &schedule.name);
            crate::schedule::check_periods(schedule).map_err(|source| ConfigError::Schedule {
                object: me.clone(),
                source,
            })?;
            let closed = schedule
                .closed
                .iter()
                .filter_map(|c| c.destination.as_ref());
            for destination in schedule.closed_destination.iter().chain(closed) {
                names.require_destination(&me, destination)?;
            }
        }
        for (index, rule) in self.caller_id_rules.iter().enumerate() {
            crate::callerid::compile_rule(rule).map_err(|source| ConfigError::BadRegex {
                object: ObjectRef::new(ObjectKind::CallerIdRule, index.to_string()),
                regex: rule.callerid.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    fn validate_routes(&self, names: &Names<'_>) -> Result<(), ConfigError> {
        for incall in &self.incalls {
            let me = ObjectRef::new(ObjectKind::Incall, &incall.did);
            names.require_context(&me, &incall.context, ContextKind::Incall)?;
            let pattern = parse_pattern(&me, &incall.did)?;
            if !pattern.is_pattern() {
                self.check_in_range(&me, ObjectKind::Incall, &incall.did, &incall.context)?;
            }
            names.require_destination(&me, &incall.destination)?;
            if let Some(schedule) = &incall.schedule {
                names.require(&me, ObjectKind::Schedule, schedule)?;
            }
            for permission in &incall.call_permissions {
                names.require(&me, ObjectKind::Permission, permission)?;
            }
        }
        for outcall in &self.outcalls {
            let me = ObjectRef::new(ObjectKind::Outcall, &outcall.name);
            names.require_context(&me, &outcall.context, ContextKind::Outcall)?;
            if outcall.trunks.is_empty() {
                return Err(ConfigError::Empty {
                    object: me,
                    missing: "trunks",
                });
            }
            if outcall.patterns.is_empty() {
                return Err(ConfigError::Empty {
                    object: me,
                    missing: "patterns",
                });
            }
            for trunk in &outcall.trunks {
                names.require(&me, ObjectKind::Trunk, trunk)?;
            }
            for pattern in &outcall.patterns {
                parse_pattern(&me, &pattern.pattern)?;
            }
            for permission in &outcall.call_permissions {
                names.require(&me, ObjectKind::Permission, permission)?;
            }
            if let Some(schedule) = &outcall.schedule {
                names.require(&me, ObjectKind::Schedule, schedule)?;
            }
        }
        Ok(())
    }

    /// Call filters: known users in one context, a boss in one filter only
    /// (reference 003 "Un patron est unique"; 000 2017.LTS1 notes: "Boss and
    /// secretary users associated with a call filter must necessarily be in the same
    /// context").
    fn validate_filters(&self, names: &Names<'_>) -> Result<(), ConfigError> {
        let mut bosses = HashSet::new();
        let mut filters = HashSet::new();
        for filter in &self.call_filters {
            let me = ObjectRef::new(ObjectKind::CallFilter, &filter.name);
            if !filters.insert(filter.name.as_str()) {
                return Err(ConfigError::Duplicate { object: me });
            }
            names.require(&me, ObjectKind::User, &filter.boss)?;
            let context_of = |name: &str| {
                self.users
                    .iter()
                    .find(|u| u.name == name)
                    .map(|u| u.context.as_str())
            };
            let fault = |reason| ConfigError::CallFilter {
                object: me.clone(),
                reason,
            };
            if filter.secretaries.is_empty() {
                return Err(fault("no secretary"));
            }
            for secretary in &filter.secretaries {
                names.require(&me, ObjectKind::User, secretary)?;
                if *secretary == filter.boss {
                    return Err(fault("the boss is also a secretary"));
                }
                if context_of(secretary) != context_of(&filter.boss) {
                    return Err(fault("boss and secretaries must be in the same context"));
                }
            }
            if !bosses.insert(filter.boss.as_str()) {
                return Err(fault("the boss already has a filter"));
            }
            if let Some(destination) = &filter.no_answer {
                names.require_destination(&me, destination)?;
            }
        }
        Ok(())
    }

    /// An object's extension: parses, its context is internal, and it lies in a range.
    fn check_extension(
        &self,
        names: &Names<'_>,
        object: &ObjectRef,
        extension: Option<&str>,
        context: &str,
    ) -> Result<(), ConfigError> {
        names.require_context(object, context, ContextKind::Internal)?;
        if let Some(extension) = extension {
            let pattern = parse_pattern(object, extension)?;
            if pattern.is_pattern() {
                return Err(ConfigError::BadPattern {
                    object: object.clone(),
                    text: extension.to_owned(),
                    source: PatternError::InvalidChar {
                        position: 0,
                        ch: '_',
                    },
                });
            }
            let exten = pattern.exact().unwrap_or(extension);
            self.check_in_range(object, object.kind, exten, context)?;
        }
        Ok(())
    }

    fn check_in_range(
        &self,
        object: &ObjectRef,
        kind: ObjectKind,
        extension: &str,
        context: &str,
    ) -> Result<(), ConfigError> {
        let inside = self.contexts.iter().filter(|c| c.name == context).any(|c| {
            c.ranges.list().into_iter().any(|(k, range)| {
                // A DID may be written with the digits the operator sends.
                let tail = || {
                    k == ObjectKind::Incall
                        && range
                            .did_length
                            .or(c.did_length)
                            .is_some_and(|n| range.contains_tail(extension, n.into()))
                };
                k == kind && (range.contains(extension) || tail())
            })
        });
        if inside {
            Ok(())
        } else {
            Err(ConfigError::OutsideRange {
                object: object.clone(),
                object_kind: kind,
                extension: extension.to_owned(),
                context: context.to_owned(),
            })
        }
    }
}

impl ContextConfig {
    /// The settings that apply to one kind of context only, and their values.
    fn check_settings(&self, me: &ObjectRef) -> Result<(), ConfigError> {
        let bad = |setting, reason| {
            Err(ConfigError::BadSetting {
                object: me.clone(),
                setting,
                reason,
            })
        };
        match self.did_length {
            Some(_) if self.kind != ContextKind::Incall => {
                return bad("did_length", "applies to incall contexts only");
            }
            Some(0) => return bad("did_length", "must be at least 1"),
            _ => {}
        }
        match self.external_prefix.as_deref() {
            Some(_) if self.kind != ContextKind::Outcall => {
                bad("external_prefix", "applies to outcall contexts only")
            }
            Some(prefix)
                if prefix.is_empty()
                    || !prefix
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') =>
            {
                bad("external_prefix", "must be digits, '*' or '#'")
            }
            _ => Ok(()),
        }
    }

    /// The number of digits an incall context matches `did` on: the did_length of
    /// the first incall range holding `did`, else the context's.
    pub(crate) fn did_length_for(&self, did: &str) -> Option<u8> {
        self.ranges
            .incalls
            .iter()
            .find(|r| r.contains(did))
            .and_then(|r| r.did_length)
            .or(self.did_length)
    }
}

impl Ranges {
    fn list(&self) -> RangeList<'_> {
        let all = [
            (ObjectKind::User, &self.users),
            (ObjectKind::Group, &self.groups),
            (ObjectKind::Queue, &self.queues),
            (ObjectKind::Conference, &self.conferences),
            (ObjectKind::Incall, &self.incalls),
        ];
        all.into_iter()
            .flat_map(|(kind, ranges)| ranges.iter().map(move |r| (kind, r)))
            .collect()
    }
}

pub(crate) fn parse_pattern(object: &ObjectRef, text: &str) -> Result<Pattern, ConfigError> {
    Pattern::parse(text).map_err(|source| ConfigError::BadPattern {
        object: object.clone(),
        text: text.to_owned(),
        source,
    })
}

/// The first include cycle, as a path of context names, if any (depth-first, each
/// context visited once).
fn find_include_cycle(contexts: &[ContextConfig]) -> Option<Vec<String>> {
    let by_name: HashMap<&str, &ContextConfig> =
        contexts.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut done: HashSet<&str> = HashSet::new();
    for start in contexts {
        // Iterative DFS: a stack of (context, next include index), and the path.
        let mut stack: Vec<(&str, usize)> = vec![(start.name.as_str(), 0)];
        let mut on_path: HashSet<&str> = HashSet::from([start.name.as_str()]);
        if done.contains(start.name.as_str()) {
            continue;
        }
        while let Some((name, next)) = stack.pop() {
            let includes = by_name
                .get(name)
                .map(|c| c.includes.as_slice())
                .unwrap_or(&[]);
            match includes.get(next) {
                None => {
                    on_path.remove(name);
                    done.insert(name);
                }
                Some(include) => {
                    stack.push((name, next + 1));
                    let include = include.as_str();
                    if on_path.contains(include) {
                        let mut path: Vec<String> = stack
                            .iter()
                            .map(|(n, _)| *n)
                            .skip_while(|n| *n != include)
                            .map(str::to_owned)
                            .collect();
                        path.push(include.to_owned());
                        return Some(path);
                    }
                    if !done.contains(include) && by_name.contains_key(include) {
                        on_path.insert(include);
                        stack.push((include, 0));
                    }
                }
            }
        }
    }
    None
}

/// The names of every object, by kind, for reference checks.
struct Names<'a> {
    by_kind: HashMap<ObjectKind, HashSet<&'a str>>,
    contexts: HashMap<&'a str, ContextKind>,
}

impl<'a> Names<'a> {
    fn collect(config: &'a Config) -> Result<Self, ConfigError> {
        let mut names = Self {
            by_kind: HashMap::new(),
            contexts: HashMap::new(),
        };
        let lists: [(ObjectKind, Vec<&'a str>); 10] = [
            (
                ObjectKind::Context,
                config.contexts.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::User,
                config.users.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Group,
                config.groups.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Queue,
                config.queues.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Conference,
                config.conferences.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Voicemail,
                config.voicemails.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Custom,
                config.customs.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Trunk,
                config.trunks.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Schedule,
                config.schedules.iter().map(|o| o.name.as_str()).collect(),
            ),
            (
                ObjectKind::Permission,
                config.permissions.iter().map(|o| o.name.as_str()).collect(),
            ),
        ];
        let outcalls = (
            ObjectKind::Outcall,
            config.outcalls.iter().map(|o| o.name.as_str()).collect(),
        );
        for (kind, list) in lists.into_iter().chain([outcalls]) {
            let set = names.by_kind.entry(kind).or_default();
            for name in list {
                if !set.insert(name) {
                    return Err(ConfigError::Duplicate {
                        object: ObjectRef::new(kind, name),
                    });
                }
            }
        }
        names.contexts = config
            .contexts
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        Ok(names)
    }

    fn require(
        &self,
        referrer: &ObjectRef,
        kind: ObjectKind,
        name: &str,
    ) -> Result<(), ConfigError> {
        if self
            .by_kind
            .get(&kind)
            .is_some_and(|set| set.contains(name))
        {
            Ok(())
        } else {
            Err(ConfigError::Unknown {
                referrer: referrer.clone(),
                missing: ObjectRef::new(kind, name),
            })
        }
    }

    fn require_context(
        &self,
        referrer: &ObjectRef,
        context: &str,
        expected: ContextKind,
    ) -> Result<(), ConfigError> {
        match self.contexts.get(context) {
            None => Err(ConfigError::Unknown {
                referrer: referrer.clone(),
                missing: ObjectRef::new(ObjectKind::Context, context),
            }),
            Some(&found) if found != expected => Err(ConfigError::WrongContextKind {
                referrer: referrer.clone(),
                context: context.to_owned(),
                expected,
                found,
            }),
            Some(_) => Ok(()),
        }
    }

    fn require_destination(
        &self,
        referrer: &ObjectRef,
        destination: &Destination,
    ) -> Result<(), ConfigError> {
        let (kind, name) = match destination {
            Destination::User { name } => (ObjectKind::User, name),
            Destination::Group { name } => (ObjectKind::Group, name),
            Destination::Queue { name } => (ObjectKind::Queue, name),
            Destination::Conference { name } => (ObjectKind::Conference, name),
            Destination::Voicemail { name } => (ObjectKind::Voicemail, name),
            Destination::Custom { name } => (ObjectKind::Custom, name),
            Destination::Extension { context, exten } => {
                Pattern::parse(exten).map_err(|source| ConfigError::BadPattern {
                    object: referrer.clone(),
                    text: exten.clone(),
                    source,
                })?;
                (ObjectKind::Context, context)
            }
            Destination::Hangup => return Ok(()),
        };
        self.require(referrer, kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        toml::from_str(
            r#"
            [[contexts]]
            name = "default"
            kind = "internal"
            includes = ["to-extern"]
            [contexts.ranges]
            users = [{ start = "1000", end = "1999" }]
            groups = [{ start = "3000", end = "3099" }]
            queues = [{ start = "3200", end = "3299" }]

            [[contexts]]
            name = "to-extern"
            kind = "outcall"

            [[contexts]]
            name = "from-extern"
            kind = "incall"
            ranges.incalls = [{ start = "0320495000", end = "0320495999" }]

            [[users]]
            name = "alice"
            extension = "1000"
            context = "default"
            forwards.busy = { enabled = true, destination = "1001" }
            outgoing_caller_id = "anonymous"

            [[users]]
            name = "bob"
            extension = "1001"
            context = "default"
            ring_time = 15

            [[groups]]
            name = "sales"
            extension = "3000"
            context = "default"
            members = ["alice", "bob"]

            [[trunks]]
            name = "trunksip"

            [[outcalls]]
            name = "national"
            context = "to-extern"
            trunks = ["trunksip"]
            patterns = [{ pattern = "_0[1-9]XXXXXXXX" }]

            [[incalls]]
            did = "0320495000"
            context = "from-extern"
            destination = { type = "group", name = "sales" }
            "#,
        )
        .expect("valid TOML")
    }

    #[test]
    fn example_loads_with_defaults() {
        let config = base();
        config.validate().expect("valid");
        assert_eq!(config.users[0].ring_time, 30);
        assert_eq!(config.users[1].ring_time, 15);
        assert_eq!(config.users[0].simultaneous_calls, 5);
        assert!(config.users[0].forwards.busy.enabled);
        assert!(!config.users[0].forwards.unconditional.enabled);
        assert_eq!(
            config.users[0].outgoing_caller_id,
            OutgoingCallerId::Anonymous
        );
        assert_eq!(
            config.users[1].outgoing_caller_id,
            OutgoingCallerId::Default
        );
    }

    #[test]
    fn range_semantics() {
        let r = NumberRange {
            start: "1000".into(),
            end: Some("1999".into()),
            did_length: None,
        };
        assert!(r.contains("1000") && r.contains("1999") && r.contains("1500"));
        assert!(!r.contains("999") && !r.contains("2000") && !r.contains("10000"));
        // No end: a single number (reference 003 "Les contextes").
        let single = NumberRange {
            start: "0359083093".into(),
            end: None,
            did_length: None,
        };
        assert!(single.contains("0359083093") && !single.contains("0359083094"));
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let mut config = base();
        config.contexts[0].ranges.groups.push(NumberRange {
            start: "1900".into(),
            end: Some("1950".into()),
            did_length: None,
        });
        let err = config.validate().expect_err("overlap");
        assert!(
            matches!(err, ConfigError::OverlappingRanges { ref context, .. } if context == "default"),
            "{err}"
        );
        assert!(err.to_string().contains("1000-1999"), "{err}");
    }

    #[test]
    fn bad_ranges_are_refused() {
        for (start, end) in [
            ("12a", None),
            ("1000", Some("999")),
            ("2000", Some("1000")),
            ("", None),
        ] {
            let mut config = base();
            config.contexts[0].ranges.users = vec![NumberRange {
                start: start.into(),
                end: end.map(Into::into),
                did_length: None,
            }];
            let err = config.validate().expect_err("bad range");
            assert!(
                matches!(err, ConfigError::BadRange { .. }),
                "{start:?} {end:?}: {err}"
            );
        }
    }

    #[test]
    fn extension_outside_range() {
        let mut config = base();
        config.users[1].extension = Some("2000".into());
        let err = config.validate().expect_err("outside");
        assert!(
            matches!(err, ConfigError::OutsideRange { ref extension, .. } if extension == "2000"),
            "{err}"
        );
        // A user extension in a *group* range is outside the user ranges.
        config.users[1].extension = Some("3001".into());
        assert!(matches!(
            config.validate(),
            Err(ConfigError::OutsideRange { .. })
        ));
        // DIDs outside the incall ranges too.
        let mut config = base();
        config.incalls[0].did = "0320496000".into();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::OutsideRange { .. })
        ));
    }

    #[test]
    fn unknown_references() {
        let mut config = base();
        config.groups[0].members.push("carol".into());
        let err = config.validate().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "group 'sales' refers to unknown user 'carol'"
        );

        let mut config = base();
        config.incalls[0].destination = Destination::Queue {
            name: "support".into(),
        };
        assert!(
            matches!(config.validate(), Err(ConfigError::Unknown { missing, .. }) if missing.kind == ObjectKind::Queue)
        );

        let mut config = base();
        config.outcalls[0].trunks.push("dahdi/g0".into());
        assert!(
            matches!(config.validate(), Err(ConfigError::Unknown { missing, .. }) if missing.kind == ObjectKind::Trunk)
        );

        let mut config = base();
        config.users[0].schedule = Some("office".into());
        assert!(
            matches!(config.validate(), Err(ConfigError::Unknown { missing, .. }) if missing.kind == ObjectKind::Schedule)
        );

        let mut config = base();
        config.contexts[0].includes.push("nowhere".into());
        assert!(
            matches!(config.validate(), Err(ConfigError::Unknown { missing, .. }) if missing.kind == ObjectKind::Context)
        );
    }

    #[test]
    fn wrong_context_kind() {
        let mut config = base();
        config.users[0].context = "from-extern".into();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::WrongContextKind {
                expected: ContextKind::Internal,
                found: ContextKind::Incall,
                ..
            })
        ));
    }

    #[test]
    fn include_cycles_are_found() {
        let mut config = base();
        config.contexts[1].includes.push("from-extern".into());
        config.contexts[2].includes.push("default".into());
        let err = config.validate().expect_err("cycle");
        let ConfigError::IncludeCycle { path } = &err else {
            panic!("{err}");
        };
        assert_eq!(path.first(), path.last());
        assert_eq!(path.len(), 4, "{path:?}");
        // Self-inclusion.
        let mut config = base();
        config.contexts[0].includes = vec!["default".into()];
        assert!(
            matches!(config.validate(), Err(ConfigError::IncludeCycle { path }) if path == ["default", "default"])
        );
        // A diamond is not a cycle.
        let mut config = base();
        config.contexts[2].includes.push("to-extern".into());
        config.contexts[0].includes.push("from-extern".into());
        config.validate().expect("diamond");
    }

    #[test]
    fn bad_patterns_carry_their_position() {
        let mut config = base();
        config.outcalls[0].patterns[0].pattern = "_0[1-9XXX".into();
        let err = config.validate().expect_err("bad pattern");
        let ConfigError::BadPattern { source, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(source.position(), 2);
        assert!(err.to_string().contains("outcall 'national'"), "{err}");
    }

    #[test]
    fn duplicates_and_empty_routes() {
        let mut config = base();
        let alice = config.users[0].clone();
        config.users.push(alice);
        assert!(
            matches!(config.validate(), Err(ConfigError::Duplicate { object }) if object.name == "alice")
        );
        let mut config = base();
        config.outcalls[0].trunks.clear();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Empty {
                missing: "trunks",
                ..
            })
        ));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            toml::from_str::<Config>("[[users]]\nname = \"a\"\ncontext = \"x\"\nringtime = 3\n")
                .expect_err("typo");
        assert!(err.to_string().contains("ringtime"), "{err}");
    }

    #[test]
    fn round_trips_through_toml() {
        let config = base();
        let text = toml::to_string(&config).expect("serialize");
        let back: Config = toml::from_str(&text).expect("parse");
        assert_eq!(back, config);
    }
}
