//! The routing decision: for any call attempt, the plan the PBX executes
//! ([`Decision`]) and the rules evaluated to get there ([`TraceStep`]), for logs and
//! `pbxkit dialplan explain`.
//!
//! [`Dialplan::decide`] dispatches on the context and the entry the number reaches:
//!
//! - incall contexts: [`Dialplan::route_incall`] (caller-ID rules, DID, permissions on
//!   the caller, schedule), then the incall's destination;
//! - other contexts: an *exact* extension first (users, groups, queues, conference
//!   rooms, exact route numbers), then the feature codes of [`crate::features`] (internal
//!   contexts only), then patterns in `pbx.c` order (so a number matched by an exact
//!   extension never goes to a pattern, `DESIGN.md` §3 "exact extensions before
//!   patterns"); route patterns go through [`Dialplan::route_outcall`], then the
//!   route's schedule and permissions.
//!
//! A call to a user is evaluated in this order (the issue "routing decisions", after
//! XiVO's user dialplan):
//!
//! 1. **schedule** of the user: closed → its destination (000 "Schedules"; 000 "Call
//!    Completion" lists "Closed schedule towards Charlie" among the redirections);
//! 2. **permissions** of the calling user and its groups on the dialled number: deny →
//!    hang up, deny with password → ask it first (000 "Call Permissions": "Call
//!    permission forbidding Alice to call Bob");
//! 3. **call filter**: the user is a boss with an active filter for this origin → the
//!    filter's ring plan ([`crate::filter`]);
//! 4. **DND** → handled like busy, without the busy forward (000 "Call Completion":
//!    "Do Not Disturb mode" rejects the call);
//! 5. **unconditional forward** (`*21`) → forward (000 "Call Completion":
//!    "Unconditional call forwarding towards Charlie");
//! 6. **busy** when the user's calls in progress reach its simultaneous-calls limit
//!    (003 "Non-réponse": "Occupé : Le « Nombre d'appels simultanés » … est atteint") →
//!    the busy forward (`*23`) if on, else the busy destination;
//! 7. **ring** the user's lines for the ring time (003: "Temps de sonnerie : avant
//!    bascule en non-réponse"; 30 s by default, `DESIGN.md` §3 PBX services);
//! 8. then, by how the ringing ended, the **no-answer** forward (`*22`) or the
//!    destination of that case ("Aucune réponse", "Occupé", "Saturé", "Echoué",
//!    003 "Non-réponse"). Forwards set by the user override these destinations (003
//!    "Renvois d'appels": "Cette configuration surcharge la configuration mise en
//!    place dans l'onglet « Non-réponse »"). With no destination: the user's voicemail
//!    (busy greeting when busy, unavailable greeting otherwise), else a prompt
//!    inviting to call back (003: "Aucun : renvoi vers la messagerie de l'utilisateur
//!    s'il en possède une ou diffuse un fichier son invitant à rappeler").
//!
//! A call to a group: its schedule, the caller's permissions, then a ring plan after
//! the group's [`RingStrategy`] (one step for `ringall`, one member a step for the
//! others, each step's [`RingStep::delay`] being the group's retry delay), then the
//! group's "Non réponse" destinations (hang up without one). With nobody to ring
//! (no member, or all on a call in a group that does not ring members in use), the
//! failure or busy destination at once.
//!
//! Destinations of later steps (after ringing) are not expanded: they are
//! [`Decision::Destination`], which the PBX passes to
//! [`Dialplan::decide_destination`] when the time comes. Destinations taken at once
//! (closed schedule, busy, incall) are expanded, at most [`MAX_DEPTH`] deep.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use crate::callerid::NormalizedCallerId;
use crate::config::{
    ConferenceConfig, Config, ContextKind, CustomConfig, Destination, Forward, Forwards,
    GroupConfig, ObjectKind, OutcallConfig, QueueConfig, RingStrategy, UserConfig, VoicemailConfig,
};
use crate::context::{Dialplan, Reached, RouteError};
use crate::features::{FeatureAction, ForwardKind, ForwardTarget};
use crate::filter::{self, CallFilterConfig};
use crate::group;
use crate::incall::{IncallOutcome, IncomingCall};
use crate::outcall::{OutgoingCall, OutgoingCallerIdDecision, TrunkDial};
use crate::permission::{self, Level, PermissionDecision, Verdict};
use crate::schedule::ScheduleState;

/// How many destinations a decision follows before giving up (a closed schedule
/// sending to an extension whose schedule is closed, …).
pub const MAX_DEPTH: usize = 8;

/// One group member as a ring strategy sees it ([`LiveState::ring_order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMember {
    /// Its position in the group's definition order.
    pub position: usize,
    /// Calls of the group it completed ([`LiveState::member_calls`]).
    pub calls: u32,
    /// Time since it last ended a call of the group
    /// ([`LiveState::member_last_call`]); `None`: never.
    pub since_last_call: Option<Duration>,
}

/// What the PBX knows about users and filters at the time of the call.
pub trait LiveState: fmt::Debug {
    /// Calls the user has in progress (counted against its simultaneous-calls limit).
    fn in_use(&self, user: &str) -> u32 {
        let _ = user;
        0
    }

    /// The secretary of the filter who answered last, for serial strategies.
    fn last_answered(&self, filter: &str) -> Option<&str> {
        let _ = filter;
        None
    }

    /// The member who answered the group's last answered call, for
    /// [`RingStrategy::RoundRobinMemory`]. `None`: no history, start at the first.
    fn group_last_answered(&self, group: &str) -> Option<&str> {
        let _ = group;
        None
    }

    /// When the member last ended a call of the group, for
    /// [`RingStrategy::LeastRecent`]. `None`: never, which rings first.
    fn member_last_call(&self, group: &str, user: &str) -> Option<Timestamp> {
        let _ = (group, user);
        None
    }

    /// Calls of the group the member completed, for [`RingStrategy::FewestCalls`].
    fn member_calls(&self, group: &str, user: &str) -> u32 {
        let _ = (group, user);
        0
    }

    /// A random number for [`RingStrategy::Random`]: the PBX draws a fresh one per
    /// call; the same number gives the same order. 0 by default.
    fn random(&self) -> u64 {
        0
    }

    /// The order `strategy` rings a group's `members` in, as indices into
    /// `members` (an index left out is not rung, one out of range is ignored).
    /// `cursor` is the position after the member who answered last (Asterisk's
    /// `rrpos`), `seed` this call's [`random`](Self::random) draw.
    ///
    /// XiVO runs groups as queues, so the strategies are app_queue's, and pbxkit
    /// implements them once, in pbxkit-acd (`pbxkit_acd::strategy::ring_order`,
    /// with `MemberFacts` built from these members and no penalty): the PBX plugs
    /// it in here. This crate depends on no other pbxkit crate, so its default is
    /// the definition order.
    fn ring_order(
        &self,
        strategy: RingStrategy,
        members: &[GroupMember],
        cursor: usize,
        seed: u64,
    ) -> Vec<usize> {
        let _ = (strategy, cursor, seed);
        (0..members.len()).collect()
    }

    /// The user's services (do-not-disturb, forwards) as they are now, when the PBX
    /// keeps them apart from the configuration (feature codes and the API change them
    /// while it runs). `None`: the configured ones apply.
    fn services(&self, user: &str) -> Option<UserServices> {
        let _ = user;
        None
    }
}

/// The services of a user that change while the PBX runs: do-not-disturb and the
/// three forwards ([`LiveState::services`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserServices {
    /// Do not disturb: calls are handled as if the user were busy.
    pub dnd: bool,
    /// Unconditional, busy and no-answer forwards.
    pub forwards: Forwards,
}

impl UserServices {
    /// The services a user's configuration sets.
    pub fn of(user: &UserConfig) -> UserServices {
        UserServices {
            dnd: user.dnd,
            forwards: user.forwards.clone(),
        }
    }
}

/// Nobody is on the phone, no history.
impl LiveState for () {}

/// Calls in progress by user name.
impl LiveState for HashMap<String, u32> {
    fn in_use(&self, user: &str) -> u32 {
        self.get(user).copied().unwrap_or(0)
    }
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// The caller number.
    pub number: &'a str,
    /// The caller name.
    pub name: &'a str,
    /// The calling user, for internal calls.
    pub user: Option<&'a str>,
}

/// A call to route.
#[derive(Debug, Clone, Copy)]
pub struct CallAttempt<'a> {
    /// The context the call starts in (the caller's, or the trunk's incall context).
    pub context: &'a str,
    /// Who calls.
    pub caller: Caller<'a>,
    /// The dialled number (or DID).
    pub dialed: &'a str,
    /// When.
    pub at: Timestamp,
    /// Calls in progress and filter history, as the PBX knows them.
    pub user_state: &'a dyn LiveState,
}

/// Which voicemail greeting to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Greeting {
    /// "… is busy".
    Busy,
    /// "… is not available".
    Unavailable,
}

/// Why a call is hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HangupCause {
    /// A normal end (a hang-up destination, a closed schedule without destination).
    Normal,
    /// A call permission refuses the call.
    Forbidden,
}

/// A prompt to play, then hang up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Prompt {
    /// The person called is not available, please call back later.
    CallBackLater,
}

/// A user to ring, with the lines to ring together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingTarget<'a> {
    /// The user.
    pub user: &'a str,
    /// Its lines.
    pub lines: &'a [String],
    /// Calls the user may have at once, ringing ones included: the PBX takes one
    /// while the user's phones ring (two calls arriving together must not both
    /// pass the limit the decision checked) and keeps it when the user answers.
    pub simultaneous_calls: u32,
}

/// A step of a ring plan: after waiting `delay`, targets ringing together for
/// `timeout` (forever when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStep<'a> {
    /// Who rings.
    pub targets: Vec<RingTarget<'a>>,
    /// How long.
    pub timeout: Option<Duration>,
    /// How long to wait, the caller hearing ringback, before this step rings: a
    /// group's retry delay between members (003 "Groupes": "Délai d'attente avant
    /// rappel des utilisateurs"); zero otherwise.
    pub delay: Duration,
}

/// What to do when ringing ends without an answer, by how it ended (003
/// "Non-réponse"). Each is a shallow decision: a [`Decision::Destination`] is
/// expanded by [`Dialplan::decide_destination`] when needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallbacks<'a> {
    /// The ring time ran out.
    pub no_answer: Box<Decision<'a>>,
    /// The callee is busy.
    pub busy: Box<Decision<'a>>,
    /// The device refused (its own limit).
    pub congestion: Box<Decision<'a>>,
    /// The line is not registered.
    pub failure: Box<Decision<'a>>,
}

/// Ring steps one after the other, then the fallbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPlan<'a> {
    /// The steps.
    pub steps: Vec<RingStep<'a>>,
    /// The group whose members ring, `None` for a user or a filter: the PBX keeps
    /// the group's history (who answered, each member's calls) for [`LiveState`].
    pub group: Option<&'a str>,
    /// What then.
    pub fallbacks: Fallbacks<'a>,
}

/// The plan the PBX executes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<'a> {
    /// Ring users.
    Ring(RingPlan<'a>),
    /// Dial `destination` from `context` instead (a user's forward).
    Forward {
        /// The number (owned when it comes from the live state, not the configuration).
        destination: Cow<'a, str>,
        /// The context to dial it from (the forwarding user's).
        context: &'a str,
        /// Which forward.
        reason: ForwardKind,
    },
    /// Leave a message.
    Voicemail {
        /// The box.
        mailbox: &'a VoicemailConfig,
        /// The greeting; the box's default when `None`.
        greeting: Option<Greeting>,
    },
    /// Enter a queue.
    Queue(&'a QueueConfig),
    /// Join a conference room.
    Conference(&'a ConferenceConfig),
    /// Dial out through trunks, in order.
    Trunks {
        /// The route.
        route: &'a OutcallConfig,
        /// The trunks and numbers, in failover order.
        dial: Vec<TrunkDial<'a>>,
        /// The caller ID to present.
        caller_id: OutgoingCallerIdDecision,
    },
    /// Run a custom destination.
    Custom(&'a CustomConfig),
    /// A feature code.
    Feature {
        /// What to do.
        action: FeatureAction,
        /// The user it applies to (the caller).
        user: Option<&'a str>,
    },
    /// Play a prompt and hang up.
    Play {
        /// The prompt.
        prompt: Prompt,
    },
    /// Hang up.
    Hangup {
        /// Why.
        cause: HangupCause,
    },
    /// Ask for a password; on the right one, go on with `then`, else hang up.
    Password {
        /// The expected password.
        password: String,
        /// The plan once it is entered.
        then: Box<Decision<'a>>,
    },
    /// Continue at a configured destination: ask [`Dialplan::decide_destination`].
    Destination(&'a Destination),
}

/// A rule of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The number looked up in the context.
    Lookup,
    /// Feature codes.
    Feature,
    /// An incoming call route.
    Incall,
    /// An outgoing call route.
    Outcall,
    /// A schedule.
    Schedule,
    /// Call permissions.
    Permission,
    /// A boss/secretary filter.
    CallFilter,
    /// Do not disturb.
    Dnd,
    /// The unconditional forward.
    UnconditionalForward,
    /// The busy check and busy forward.
    Busy,
    /// Ringing.
    Ring,
    /// A destination followed.
    Destination,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lookup => "lookup",
            Self::Feature => "feature",
            Self::Incall => "incall",
            Self::Outcall => "outcall",
            Self::Schedule => "schedule",
            Self::Permission => "permission",
            Self::CallFilter => "call filter",
            Self::Dnd => "dnd",
            Self::UnconditionalForward => "unconditional forward",
            Self::Busy => "busy",
            Self::Ring => "ring",
            Self::Destination => "destination",
        })
    }
}

/// What a rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Checked; the evaluation goes on.
    Pass,
    /// This rule chose the decision (or the next destination).
    Decided,
}

/// One rule evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// The rule.
    pub rule: Rule,
    /// What it did.
    pub outcome: Outcome,
    /// Details for people (names, numbers, states).
    pub detail: String,
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.outcome {
            Outcome::Pass => "pass",
            Outcome::Decided => "DECIDED",
        };
        write!(f, "{:<22} {mark:<7} {}", self.rule.to_string(), self.detail)
    }
}

/// A decision and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<'a> {
    /// What to do.
    pub decision: Decision<'a>,
    /// The rules evaluated, in order.
    pub trace: Vec<TraceStep>,
    /// For incoming calls, the caller ID after the caller-ID rules and the incall's
    /// caller-ID mode.
    pub caller: Option<NormalizedCallerId>,
}

impl fmt::Display for Routed<'_> {
    /// The trace, one rule a line (the `explain` output).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.trace {
            writeln!(f, "{step}")?;
        }
        write!(f, "=> {}", self.decision)
    }
}

/// What the PBX will do, in words (the last line of `explain`); `{:?}` has every
/// field.
impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Ring(plan) => write!(f, "{plan}"),
            Decision::Forward {
                destination,
                context,
                reason,
            } => write!(
                f,
                "forward ({reason}) to {destination} from context '{context}'"
            ),
            Decision::Voicemail { mailbox, greeting } => {
                write!(f, "voicemail box '{}'", mailbox.name)?;
                match greeting {
                    Some(Greeting::Busy) => write!(f, " with the busy greeting"),
                    Some(Greeting::Unavailable) => write!(f, " with the unavailable greeting"),
                    None => Ok(()),
                }
            }
            Decision::Queue(queue) => write!(f, "queue '{}'", queue.name),
            Decision::Conference(room) => write!(f, "conference '{}'", room.name),
            Decision::Trunks {
                route,
                dial,
                caller_id,
            } => {
                write!(f, "dial out by route '{}': ", route.name)?;
                for (i, d) in dial.iter().enumerate() {
                    let then = if i == 0 { "" } else { ", else " };
                    write!(f, "{then}{} on trunk '{}'", d.number, d.trunk)?;
                }
                match caller_id {
                    OutgoingCallerIdDecision::Present { caller_id, .. } => {
                        write!(f, "; caller ID {caller_id}")
                    }
                    _ => write!(f, "; caller ID hidden"),
                }
            }
            Decision::Custom(custom) => write!(f, "custom destination '{}'", custom.name),
            Decision::Feature { action, user } => {
                write!(f, "feature {action:?}")?;
                match user {
                    Some(user) => write!(f, " for user '{user}'"),
                    None => Ok(()),
                }
            }
            Decision::Play {
                prompt: Prompt::CallBackLater,
            } => write!(f, "play \"call back later\", then hang up"),
            Decision::Hangup { cause } => match cause {
                HangupCause::Normal => write!(f, "hang up"),
                HangupCause::Forbidden => write!(f, "hang up (forbidden)"),
            },
            Decision::Password { then, .. } => write!(f, "ask for the password, then {then}"),
            Decision::Destination(d) => write!(f, "go on at {d}"),
        }
    }
}

/// `ring 1001 for 30 s; then ring 1002, 1003 for 20 s; no answer: …`.
impl fmt::Display for RingPlan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(group) = self.group {
            write!(f, "group '{group}': ")?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                write!(f, "; then ")?;
            }
            if !step.delay.is_zero() {
                write!(f, "after {} s, ", step.delay.as_secs())?;
            }
            write!(f, "ring ")?;
            for (j, target) in step.targets.iter().enumerate() {
                let sep = if j == 0 { "" } else { ", " };
                write!(f, "{sep}{}", target.user)?;
            }
            match step.timeout {
                Some(t) => write!(f, " for {} s", t.as_secs())?,
                None => write!(f, " until answered")?,
            }
        }
        let fb = &self.fallbacks;
        write!(
            f,
            "; no answer: {}; busy: {}; congestion: {}; failure: {}",
            fb.no_answer, fb.busy, fb.congestion, fb.failure
        )
    }
}

/// Name indexes the decisions need (built once with the [`Dialplan`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    groups: HashMap<String, usize>,
    queues: HashMap<String, usize>,
    conferences: HashMap<String, usize>,
    voicemails: HashMap<String, usize>,
    customs: HashMap<String, usize>,
    filters_by_boss: HashMap<String, usize>,
}

fn positions<T>(items: &[T], name: impl Fn(&T) -> &str) -> HashMap<String, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (name(item).to_owned(), i))
        .collect()
}

impl Index {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            groups: positions(&config.groups, |o| &o.name),
            queues: positions(&config.queues, |o| &o.name),
            conferences: positions(&config.conferences, |o| &o.name),
            voicemails: positions(&config.voicemails, |o| &o.name),
            customs: positions(&config.customs, |o| &o.name),
            filters_by_boss: positions(&config.call_filters, |o| &o.boss),
        }
    }
}

/// The four ways ringing can end without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    NoAnswer,
    Busy,
    Congestion,
    Failure,
}

/// An evaluation in progress.
struct Eval<'a, 'c> {
    call: &'c CallAttempt<'c>,
    /// The call comes from outside (an incall).
    external: bool,
    trace: Vec<TraceStep>,
    depth: usize,
    _dialplan: std::marker::PhantomData<&'a ()>,
}

impl Eval<'_, '_> {
    fn note(&mut self, rule: Rule, outcome: Outcome, detail: impl Into<String>) {
        self.trace.push(TraceStep {
            rule,
            outcome,
            detail: detail.into(),
        });
    }
}

impl Dialplan {
    /// Decides what to do with a call. See the [module documentation](crate::decision).
    ///
    /// # Errors
    ///
    /// A [`RouteError`]: unknown context, no match, a number reaching something the
    /// context's type cannot route, or destinations nested deeper than [`MAX_DEPTH`].
    pub fn decide<'c>(&self, call: &'c CallAttempt<'c>) -> Result<Routed<'_>, RouteError> {
        let mut eval = Eval {
            call,
            external: false,
            trace: Vec::with_capacity(8),
            depth: 0,
            _dialplan: std::marker::PhantomData,
        };
        let mut caller = None;
        let decision = self.decide_number(&mut eval, call.context, call.dialed, &mut caller)?;
        Ok(Routed {
            decision,
            trace: eval.trace,
            caller,
        })
    }

    /// Expands a configured destination (a [`Decision::Destination`] of a ring plan's
    /// fallbacks, say) for the call it belongs to.
    ///
    /// # Errors
    ///
    /// As [`decide`](Self::decide).
    pub fn decide_destination<'a, 'c>(
        &'a self,
        destination: &'a Destination,
        call: &'c CallAttempt<'c>,
    ) -> Result<Routed<'a>, RouteError> {
        let mut eval = Eval {
            call,
            external: call.caller.user.is_none(),
            trace: Vec::with_capacity(8),
            depth: 0,
            _dialplan: std::marker::PhantomData,
        };
        let decision = self.follow(&mut eval, destination)?;
        Ok(Routed {
            decision,
            trace: eval.trace,
            caller: None,
        })
    }

    fn decide_number<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        context: &str,
        number: &str,
        caller: &mut Option<NormalizedCallerId>,
    ) -> Result<Decision<'a>, RouteError> {
        let kind = self
            .context_kind(context)
            .ok_or_else(|| RouteError::UnknownContext {
                context: context.to_owned(),
            })?;
        if kind == ContextKind::Incall {
            return self.decide_incall(eval, context, number, caller);
        }
        let hit = self.lookup(context, number);
        if let Ok(hit) = &hit
            && !hit.pattern.is_pattern()
        {
            eval.note(
                Rule::Lookup,
                Outcome::Pass,
                format!(
                    "'{number}' in '{}': exact {}",
                    hit.context,
                    hit.reached.object()
                ),
            );
            return self.decide_reached(eval, context, number, hit.reached);
        }
        if kind == ContextKind::Internal
            && let Some(action) = self.features.parse_dialed(number)
        {
            return Ok(self.decide_feature(eval, number, action));
        }
        let hit = hit?;
        eval.note(
            Rule::Lookup,
            Outcome::Pass,
            format!(
                "'{number}' in '{}': pattern {} -> {}",
                hit.context,
                hit.pattern,
                hit.reached.object()
            ),
        );
        self.decide_reached(eval, context, number, hit.reached)
    }

    fn decide_reached<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        context: &str,
        number: &str,
        reached: Reached<'a>,
    ) -> Result<Decision<'a>, RouteError> {
        match reached {
            Reached::User(user) => self.decide_user(eval, user, number),
            Reached::Group(group) => self.decide_group(eval, group, number),
            Reached::Queue(queue) => {
                if let Some(decision) = self.check_schedule(eval, queue.schedule.as_deref())? {
                    return Ok(decision);
                }
                self.with_permissions(eval, number, &[], |_, _| Ok(Decision::Queue(queue)))
            }
            Reached::Conference(room) => {
                self.with_permissions(eval, number, &[], |_, _| Ok(Decision::Conference(room)))
            }
            Reached::Outcall(..) => self.decide_outcall(eval, context, number),
            Reached::Incall(_) => {
                let mut caller = None;
                self.decide_incall(eval, context, number, &mut caller)
            }
        }
    }

    fn decide_feature<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        number: &str,
        action: FeatureAction,
    ) -> Decision<'a> {
        let user = eval.call.caller.user.and_then(|name| self.user(name));
        let action = match action {
            FeatureAction::SetForward {
                kind,
                destination: ForwardTarget::Toggle,
            } => {
                let on = user.is_some_and(|u| {
                    let f = services(eval, u).1;
                    match kind {
                        ForwardKind::Unconditional => f.unconditional.enabled,
                        ForwardKind::NoAnswer => f.no_answer.enabled,
                        ForwardKind::Busy => f.busy.enabled,
                    }
                });
                FeatureAction::SetForward {
                    kind,
                    destination: if on {
                        ForwardTarget::Off
                    } else {
                        ForwardTarget::Ask
                    },
                }
            }
            other => other,
        };
        eval.note(
            Rule::Feature,
            Outcome::Decided,
            format!("'{number}': {action:?}"),
        );
        Decision::Feature {
            action,
            user: user.map(|u| u.name.as_str()),
        }
    }

    /// The configured user named `name` (looked up by name, not by scanning).
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.user_index
            .get(name)
            .and_then(|&i| self.config.users.get(i))
    }

    /// The user decision, steps 1–8 of the module documentation.
    fn decide_user<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        user: &'a UserConfig,
        number: &str,
    ) -> Result<Decision<'a>, RouteError> {
        if let Some(decision) = self.check_schedule(eval, user.schedule.as_deref())? {
            return Ok(decision);
        }
        self.with_permissions(eval, number, &[], |this, eval| {
            this.decide_user_services(eval, user)
        })
    }

    /// Steps 3–8, once schedule and permissions let the call through.
    fn decide_user_services<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        user: &'a UserConfig,
    ) -> Result<Decision<'a>, RouteError> {
        let caller = eval.call.caller.user;
        if let Some(filter) = self
            .index
            .filters_by_boss
            .get(&user.name)
            .and_then(|&i| self.config.call_filters.get(i))
        {
            if filter::applies(filter, eval.external, caller) {
                eval.note(
                    Rule::CallFilter,
                    Outcome::Decided,
                    format!("filter '{}' ({:?})", filter.name, filter.strategy),
                );
                return Ok(self.filter_plan(eval, filter, user));
            }
            eval.note(
                Rule::CallFilter,
                Outcome::Pass,
                format!("filter '{}' does not apply", filter.name),
            );
        }
        let (dnd, forwards) = services(eval, user);
        if dnd {
            eval.note(Rule::Dnd, Outcome::Decided, "on: handled as busy");
            return self.expand(eval, self.destination_for(user, Case::Busy));
        }
        if let Some(d) = forward_to(&forwards, |f| &f.unconditional) {
            eval.note(
                Rule::UnconditionalForward,
                Outcome::Decided,
                format!("to '{d}'"),
            );
            return Ok(Decision::Forward {
                destination: d,
                context: &user.context,
                reason: ForwardKind::Unconditional,
            });
        }
        let in_use = eval.call.user_state.in_use(&user.name);
        if in_use >= user.simultaneous_calls {
            eval.note(
                Rule::Busy,
                Outcome::Decided,
                format!("{in_use} calls, limit {}", user.simultaneous_calls),
            );
            let next = self.fallback(user, &forwards, Case::Busy);
            return self.expand(eval, next);
        }
        if user.lines.is_empty() {
            eval.note(Rule::Ring, Outcome::Decided, "no line: failure");
            return self.expand(eval, self.fallback(user, &forwards, Case::Failure));
        }
        eval.note(
            Rule::Ring,
            Outcome::Decided,
            format!("'{}' for {} s", user.name, user.ring_time),
        );
        Ok(Decision::Ring(RingPlan {
            steps: vec![RingStep {
                targets: vec![RingTarget {
                    user: &user.name,
                    lines: &user.lines,
                    simultaneous_calls: user.simultaneous_calls,
                }],
                timeout: Some(Duration::from_secs(u64::from(user.ring_time))),
                delay: Duration::ZERO,
            }],
            group: None,
            fallbacks: self.fallbacks(user, &forwards, None),
        }))
    }

    fn filter_plan<'a>(
        &'a self,
        eval: &Eval<'a, '_>,
        filter: &'a CallFilterConfig,
        boss: &'a UserConfig,
    ) -> Decision<'a> {
        let last = eval.call.user_state.last_answered(&filter.name);
        let steps = filter::ring_plan(filter, last)
            .into_iter()
            .map(|step| RingStep {
                targets: step
                    .users
                    .into_iter()
                    .filter_map(|name| self.user(name))
                    .map(|u| RingTarget {
                        user: &u.name,
                        lines: &u.lines,
                        simultaneous_calls: u.simultaneous_calls,
                    })
                    .collect(),
                timeout: step.timeout,
                delay: Duration::ZERO,
            })
            .collect();
        Decision::Ring(RingPlan {
            steps,
            group: None,
            fallbacks: self.fallbacks(boss, &services(eval, boss).1, filter.no_answer.as_ref()),
        })
    }

    fn fallbacks<'a>(
        &'a self,
        user: &'a UserConfig,
        forwards: &Cow<'a, Forwards>,
        no_answer: Option<&'a Destination>,
    ) -> Fallbacks<'a> {
        let no_answer = match no_answer {
            Some(d) => Decision::Destination(d),
            None => self.fallback(user, forwards, Case::NoAnswer),
        };
        Fallbacks {
            no_answer: Box::new(no_answer),
            busy: Box::new(self.fallback(user, forwards, Case::Busy)),
            congestion: Box::new(self.fallback(user, forwards, Case::Congestion)),
            failure: Box::new(self.fallback(user, forwards, Case::Failure)),
        }
    }

    /// Where a call goes in `case`: the user's forward for it (`forwards`, as they
    /// are now), else [`destination_for`](Self::destination_for).
    fn fallback<'a>(
        &'a self,
        user: &'a UserConfig,
        forwards: &Cow<'a, Forwards>,
        case: Case,
    ) -> Decision<'a> {
        let forward = match case {
            Case::NoAnswer => {
                forward_to(forwards, |f| &f.no_answer).map(|d| (d, ForwardKind::NoAnswer))
            }
            Case::Busy => forward_to(forwards, |f| &f.busy).map(|d| (d, ForwardKind::Busy)),
            Case::Congestion | Case::Failure => None,
        };
        match forward {
            Some((destination, reason)) => Decision::Forward {
                destination,
                context: &user.context,
                reason,
            },
            None => self.destination_for(user, case),
        }
    }

    /// The "Non-réponse" destination of `case`; without one, the user's voicemail,
    /// else the call-back-later prompt (003 "Aucun").
    fn destination_for<'a>(&'a self, user: &'a UserConfig, case: Case) -> Decision<'a> {
        let n = &user.no_answer;
        let configured = match case {
            Case::NoAnswer => n.no_answer.as_ref(),
            Case::Busy => n.busy.as_ref(),
            Case::Congestion => n.congestion.as_ref(),
            Case::Failure => n.failure.as_ref(),
        };
        if let Some(destination) = configured {
            return Decision::Destination(destination);
        }
        let mailbox = user
            .voicemail
            .as_ref()
            .and_then(|name| self.index.voicemails.get(name))
            .and_then(|&i| self.config.voicemails.get(i));
        match mailbox {
            Some(mailbox) => Decision::Voicemail {
                mailbox,
                greeting: Some(if case == Case::Busy {
                    Greeting::Busy
                } else {
                    Greeting::Unavailable
                }),
            },
            None => Decision::Play {
                prompt: Prompt::CallBackLater,
            },
        }
    }

    /// Follows a [`Decision::Destination`] at once; other decisions are returned.
    fn expand<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        decision: Decision<'a>,
    ) -> Result<Decision<'a>, RouteError> {
        match decision {
            Decision::Destination(destination) => self.follow(eval, destination),
            other => Ok(other),
        }
    }

    /// Expands a configured destination, one level deeper.
    fn follow<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        destination: &'a Destination,
    ) -> Result<Decision<'a>, RouteError> {
        eval.depth += 1;
        if eval.depth > MAX_DEPTH {
            return Err(RouteError::TooDeep { limit: MAX_DEPTH });
        }
        eval.note(Rule::Destination, Outcome::Pass, destination.to_string());
        let missing = |kind, name: &str| RouteError::Missing {
            object: crate::config::ObjectRef::new(kind, name),
        };
        let by_name = |map: &HashMap<String, usize>, name: &str| map.get(name).copied();
        let c = &self.config;
        match destination {
            Destination::User { name } => {
                let user = self
                    .user(name)
                    .ok_or_else(|| missing(ObjectKind::User, name))?;
                let number = user.extension.as_deref().unwrap_or(name);
                self.decide_user(eval, user, number)
            }
            Destination::Group { name } => {
                let group = by_name(&self.index.groups, name)
                    .and_then(|i| c.groups.get(i))
                    .ok_or_else(|| missing(ObjectKind::Group, name))?;
                let number = group.extension.as_deref().unwrap_or(name);
                self.decide_group(eval, group, number)
            }
            Destination::Queue { name } => by_name(&self.index.queues, name)
                .and_then(|i| c.queues.get(i))
                .map(Decision::Queue)
                .ok_or_else(|| missing(ObjectKind::Queue, name)),
            Destination::Conference { name } => by_name(&self.index.conferences, name)
                .and_then(|i| c.conferences.get(i))
                .map(Decision::Conference)
                .ok_or_else(|| missing(ObjectKind::Conference, name)),
            Destination::Voicemail { name } => by_name(&self.index.voicemails, name)
                .and_then(|i| c.voicemails.get(i))
                .map(|mailbox| Decision::Voicemail {
                    mailbox,
                    greeting: None,
                })
                .ok_or_else(|| missing(ObjectKind::Voicemail, name)),
            Destination::Custom { name } => by_name(&self.index.customs, name)
                .and_then(|i| c.customs.get(i))
                .map(Decision::Custom)
                .ok_or_else(|| missing(ObjectKind::Custom, name)),
            Destination::Extension { context, exten } => {
                let mut caller = None;
                self.decide_number(eval, context, exten, &mut caller)
            }
            Destination::Hangup => Ok(Decision::Hangup {
                cause: HangupCause::Normal,
            }),
        }
    }

    /// A call to a group: schedule, the caller's permissions, then the ring plan of
    /// the group's strategy ([`crate::group`]) and its "Non réponse" destinations.
    fn decide_group<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        group: &'a GroupConfig,
        number: &str,
    ) -> Result<Decision<'a>, RouteError> {
        if let Some(decision) = self.check_schedule(eval, group.schedule.as_deref())? {
            return Ok(decision);
        }
        self.with_permissions(eval, number, &[], |this, eval| {
            let order = group::member_order(group, eval.call.user_state, eval.call.at);
            let fallbacks = this.group_fallbacks(group);
            if order.is_empty() {
                // Nobody to ring: busy when members are all on a call (and the group
                // does not ring members in use), else a failure.
                let (case, next) = if group.members.is_empty() {
                    ("no member: failure", fallbacks.failure)
                } else {
                    ("every member in use: busy", fallbacks.busy)
                };
                eval.note(
                    Rule::Ring,
                    Outcome::Decided,
                    format!("group '{}': {case}", group.name),
                );
                return this.expand(eval, *next);
            }
            let target = |name: &str| {
                this.user(name).map(|u| RingTarget {
                    user: &u.name,
                    lines: &u.lines,
                    simultaneous_calls: u.simultaneous_calls,
                })
            };
            let steps: Vec<RingStep<'a>> = if group.strategy == RingStrategy::RingAll {
                vec![RingStep {
                    targets: order.iter().filter_map(|m| target(m)).collect(),
                    timeout: group
                        .ring_time
                        .filter(|&t| t > 0)
                        .map(|t| Duration::from_secs(u64::from(t))),
                    delay: Duration::ZERO,
                }]
            } else {
                group::serial_steps(group, &order)
                    .into_iter()
                    .map(|step| RingStep {
                        targets: target(step.user).into_iter().collect(),
                        timeout: Some(step.timeout),
                        delay: step.delay,
                    })
                    .collect()
            };
            eval.note(
                Rule::Ring,
                Outcome::Decided,
                format!(
                    "group '{}' {:?}: {} members, {} steps",
                    group.name,
                    group.strategy,
                    order.len(),
                    steps.len()
                ),
            );
            Ok(Decision::Ring(RingPlan {
                steps,
                group: Some(&group.name),
                fallbacks,
            }))
        })
    }

    /// A group's destinations when ringing ends, per case; hang up without one.
    fn group_fallbacks<'a>(&'a self, group: &'a GroupConfig) -> Fallbacks<'a> {
        let n = &group.no_answer;
        let next = |d: &'a Option<Destination>| {
            Box::new(match d {
                Some(d) => Decision::Destination(d),
                None => Decision::Hangup {
                    cause: HangupCause::Normal,
                },
            })
        };
        Fallbacks {
            no_answer: next(&n.no_answer),
            busy: next(&n.busy),
            congestion: next(&n.congestion),
            failure: next(&n.failure),
        }
    }

    fn decide_incall<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        context: &str,
        number: &str,
        caller: &mut Option<NormalizedCallerId>,
    ) -> Result<Decision<'a>, RouteError> {
        eval.external = true;
        let decision = self.route_incall(&IncomingCall {
            context,
            did: number,
            caller_number: eval.call.caller.number,
            caller_name: eval.call.caller.name,
            now: eval.call.at,
        })?;
        eval.note(
            Rule::Incall,
            Outcome::Pass,
            format!(
                "DID '{number}' as '{}' matched '{}'",
                decision.did, decision.matched
            ),
        );
        *caller = Some(decision.caller);
        match decision.outcome {
            IncallOutcome::Destination(destination) => self.follow(eval, destination),
            IncallOutcome::Closed { destination, .. } => {
                eval.note(Rule::Schedule, Outcome::Decided, "incall schedule closed");
                self.closed(eval, destination)
            }
            IncallOutcome::Restricted(rights) => {
                let incall = decision.incall;
                self.restricted(eval, rights, |this, eval| {
                    this.follow(eval, &incall.destination)
                })
            }
        }
    }

    fn decide_outcall<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        context: &str,
        number: &str,
    ) -> Result<Decision<'a>, RouteError> {
        let caller = &eval.call.caller;
        let own = format!("\"{}\" <{}>", caller.name, caller.number);
        let decision = self.route_outcall(&OutgoingCall {
            context,
            number,
            user: caller.user,
            caller_id: &own,
            now: eval.call.at,
        })?;
        eval.note(
            Rule::Outcall,
            Outcome::Pass,
            format!(
                "route '{}' pattern '{}'",
                decision.route.name, decision.matched
            ),
        );
        if let ScheduleState::Closed { destination, .. } = decision.schedule {
            eval.note(Rule::Schedule, Outcome::Decided, "route schedule closed");
            return self.closed(eval, destination);
        }
        let route = decision.route;
        let dial = decision.dial;
        let caller_id = decision.caller_id;
        self.restricted(eval, decision.permission, move |_, _| {
            Ok(Decision::Trunks {
                route,
                dial,
                caller_id,
            })
        })
    }

    /// The decision of a closed schedule.
    fn closed<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        destination: Option<&'a Destination>,
    ) -> Result<Decision<'a>, RouteError> {
        match destination {
            Some(destination) => self.follow(eval, destination),
            None => Ok(Decision::Hangup {
                cause: HangupCause::Normal,
            }),
        }
    }

    /// A schedule's decision when it is closed.
    fn check_schedule<'a>(
        &'a self,
        eval: &mut Eval<'a, '_>,
        schedule: Option<&str>,
    ) -> Result<Option<Decision<'a>>, RouteError> {
        let Some(name) = schedule else {
            return Ok(None);
        };
        match self.schedule_state(Some(name), eval.call.at) {
            ScheduleState::Open => {
                eval.note(Rule::Schedule, Outcome::Pass, format!("'{name}' open"));
                Ok(None)
            }
            ScheduleState::Closed {
                destination,
                exceptional,
            } => {
                let why = if exceptional {
                    "exceptionally closed"
                } else {
                    "closed"
                };
                eval.note(Rule::Schedule, Outcome::Decided, format!("'{name}' {why}"));
                self.closed(eval, destination).map(Some)
            }
        }
    }

    /// Checks the calling user's (and its groups') permissions on `number`, plus
    /// `extra` route permissions, then continues with `then`.
    fn with_permissions<'a, 'e>(
        &'a self,
        eval: &mut Eval<'a, 'e>,
        number: &str,
        extra: &[String],
        then: impl FnOnce(&'a Self, &mut Eval<'a, 'e>) -> Result<Decision<'a>, RouteError>,
    ) -> Result<Decision<'a>, RouteError> {
        let rights = self.caller_permissions(eval.call.caller.user, number, extra);
        self.restricted(eval, rights, then)
    }

    fn restricted<'a, 'e>(
        &'a self,
        eval: &mut Eval<'a, 'e>,
        rights: PermissionDecision,
        then: impl FnOnce(&'a Self, &mut Eval<'a, 'e>) -> Result<Decision<'a>, RouteError>,
    ) -> Result<Decision<'a>, RouteError> {
        let rule = match &rights.rule {
            Some((name, ext)) => format!("'{name}' ({ext})"),
            None => "none applies".to_owned(),
        };
        match rights.verdict {
            Verdict::Allowed => {
                eval.note(Rule::Permission, Outcome::Pass, format!("allowed: {rule}"));
                then(self, eval)
            }
            Verdict::Denied => {
                eval.note(
                    Rule::Permission,
                    Outcome::Decided,
                    format!("denied: {rule}"),
                );
                Ok(Decision::Hangup {
                    cause: HangupCause::Forbidden,
                })
            }
            Verdict::Password(password) => {
                eval.note(Rule::Permission, Outcome::Pass, format!("password: {rule}"));
                let then = then(self, eval)?;
                Ok(Decision::Password {
                    password,
                    then: Box::new(then),
                })
            }
        }
    }
}

/// A forward's destination when it is on and has one.
fn enabled(forward: &Forward) -> Option<&str> {
    Some(forward.destination.as_str()).filter(|d| forward.enabled && !d.is_empty())
}

/// A user's do-not-disturb and forwards as they are now: the live state's when the
/// PBX keeps them, else the configured ones (borrowed, no copy).
fn services<'a>(eval: &Eval<'a, '_>, user: &'a UserConfig) -> (bool, Cow<'a, Forwards>) {
    match eval.call.user_state.services(&user.name) {
        Some(live) => (live.dnd, Cow::Owned(live.forwards)),
        None => (user.dnd, Cow::Borrowed(&user.forwards)),
    }
}

/// The destination of the forward `pick` chooses, when it is on.
fn forward_to<'a>(
    forwards: &Cow<'a, Forwards>,
    pick: impl Fn(&Forwards) -> &Forward,
) -> Option<Cow<'a, str>> {
    match forwards {
        Cow::Borrowed(f) => enabled(pick(f)).map(Cow::Borrowed),
        Cow::Owned(f) => enabled(pick(f)).map(|d| Cow::Owned(d.to_owned())),
    }
}

impl Dialplan {
    /// The permissions of `user` and its groups, and `route`'s, on `number`.
    pub(crate) fn caller_permissions(
        &self,
        user: Option<&str>,
        number: &str,
        route: &[String],
    ) -> PermissionDecision {
        let config = user.and_then(|name| self.user(name));
        let own = config
            .into_iter()
            .flat_map(|u| u.call_permissions.iter().map(|p| (Level::User, p)));
        let groups = user
            .and_then(|name| self.user_groups.get(name))
            .into_iter()
            .flatten()
            .filter_map(|&g| self.config.groups.get(g))
            .flat_map(|g| g.call_permissions.iter().map(|p| (Level::Group, p)));
        let route = route.iter().map(|p| (Level::Route, p));
        let applicable = own
            .chain(groups)
            .chain(route)
            .filter_map(|(level, name)| self.permissions.get(name).map(|p| (level, p)));
        let code = config.and_then(|u| u.call_permission_password.as_deref());
        permission::check(number, applicable, code)
    }
}
