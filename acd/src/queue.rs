//! The queue engine: a sans-IO state machine over queues, agents and calls.
//!
//! Feed it [`Input`]s with [`handle_input`](Acd::handle_input), fire its timers with
//! [`handle_timeout`](Acd::handle_timeout) at [`poll_timeout`](Acd::poll_timeout), and
//! drain [`poll_output`](Acd::poll_output) after each: ring these members, stop ringing,
//! connect, announce a position, turn a caller away or take it out of the queue. Every
//! event is also written to the [`Sink`] as a `queue_log` line.
//!
//! Behaviour follows app_queue (Asterisk 20, `apps/app_queue.c`): `calc_metric`,
//! `ring_one`/`find_best` (lowest metric first; ringall rings every member sharing it),
//! `store_next_rr`/`store_next_lin` after each attempt, `is_our_turn` with autofill,
//! `can_ring_entry` (paused, ringinuse, wrap-up, weight), `get_member_status` for
//! joinempty/leavewhenempty, `recalc_holdtime` (EWT = (3 × old + last) / 4); and XiVO's
//! `check_diversion` (hold time first, then ratio; nobody waiting → accepted).
//!
//! Each caller has a penalty range that its [penalty rules](crate::penalty) move as it
//! waits, and may have a [skill rule set](crate::skills::RuleSet) (its own or the
//! queue's): at each attempt it rings only the members in its range that the first
//! rule selecting a logged-in member selects, with its current `WT` and the queue's
//! `EWT`. [`poll_timeout`](Acd::poll_timeout) includes the times at which a rule
//! changes, so a caller widens when its wait reaches the threshold.
//!
//! Agents log in on lines declared with [`add_line`](Acd::add_line), following
//! XiVO-CC's rules (see [`Input::AgentLogin`]). [`queue_live`](Acd::queue_live) and
//! [`agent_live`](Acd::agent_live) give the [real-time statistics](crate::live).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::live::{AgentLive, AgentTimes, QueueCounters, QueueLive};
use crate::member::{AgentId, AgentState, CallId, DeviceState, EmptyConditions, QueueId};
use crate::penalty::{PenaltyLimits, PenaltyRules};
use crate::queue_log::{Event, Exit, LineRef, Sink};
use crate::skills::RuleSet;
use crate::strategy::{MemberFacts, Rng, Strategy, metric};

/// The configuration of one queue.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// The queue name (as logged).
    pub name: QueueId,
    /// How members are chosen.
    pub strategy: Strategy,
    /// How long a member rings before the attempt gives up (app_queue `timeout`, 15 s).
    pub member_timeout: Duration,
    /// The pause between two attempts (app_queue `retry`, 5 s).
    pub retry: Duration,
    /// Wrap-up after each call (app_queue `wrapuptime`, 0).
    pub wrap_up: Duration,
    /// At most this many waiting callers; 0 is unlimited (app_queue `maxlen`).
    pub max_len: usize,
    /// Queues of higher weight get shared members first (app_queue `weight`).
    pub weight: u32,
    /// A caller leaves after this long (`Queue()`'s timeout; `EXITWITHTIMEOUT`).
    pub timeout: Option<Duration>,
    /// Whether a member on a call (or ringing) may be rung (app_queue `ringinuse`, no).
    pub ring_in_use: bool,
    /// Pause a member in this queue when it rings without answering (`autopause`).
    pub autopause: bool,
    /// Refuse callers when no member counts as present (`joinempty`).
    pub join_empty: EmptyConditions,
    /// Take callers out when no member counts as present (`leavewhenempty`).
    pub leave_when_empty: EmptyConditions,
    /// Divert arriving callers when the expected wait is over this (XiVO `waittime`).
    pub divert_hold_time: Option<Duration>,
    /// Divert arriving callers when (waiting + 1) / logged-in agents is over this
    /// (XiVO `waitratio`).
    pub divert_ratio: Option<f64>,
    /// The penalty rules of callers that bring none (app_queue `defaultrule`).
    pub penalty_rules: PenaltyRules,
    /// The skill rule set of callers that bring none; `None` routes without skills.
    pub skill_rules: Option<RuleSet>,
    /// The service-level threshold of the live statistics (15 s).
    pub service_level: Duration,
    /// What waiting callers are told of their position and wait, and how often.
    pub announcements: Announcements,
}

impl QueueConfig {
    /// A queue with app_queue's defaults and the given name and strategy.
    pub fn new(name: &str, strategy: Strategy) -> Self {
        Self {
            name: name.into(),
            strategy,
            member_timeout: Duration::from_secs(15),
            retry: Duration::from_secs(5),
            wrap_up: Duration::ZERO,
            max_len: 0,
            weight: 0,
            timeout: None,
            ring_in_use: false,
            autopause: false,
            join_empty: EmptyConditions::NEVER,
            leave_when_empty: EmptyConditions::NEVER,
            divert_hold_time: None,
            divert_ratio: None,
            penalty_rules: PenaltyRules::default(),
            skill_rules: None,
            service_level: Duration::from_secs(15),
            announcements: Announcements::default(),
        }
    }
}

/// What waiting callers hear of their place in the queue (app_queue's
/// `announce-frequency`, `min-announce-frequency`, `announce-position`,
/// `announce-holdtime` and `announce-to-first-user`). A caller is told on entry and
/// every `frequency` after; moving up (or down) is told early, but never sooner than
/// `min_frequency` after the last announcement. The default announces nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcements {
    /// How often; `None` never (app_queue's 0).
    pub frequency: Option<Duration>,
    /// The least time between two announcements (15 s).
    pub min_frequency: Duration,
    /// Whether the position is said (yes).
    pub position: bool,
    /// When the expected wait is said (never).
    pub hold_time: HoldTimeAnnouncement,
    /// Whether the first caller is told while a member rings for it, which may
    /// delay the moment they talk (no).
    pub to_first: bool,
}

impl Default for Announcements {
    fn default() -> Self {
        Self {
            frequency: None,
            min_frequency: Duration::from_secs(15),
            position: true,
            hold_time: HoldTimeAnnouncement::Never,
            to_first: false,
        }
    }
}

/// When a waiting caller is told the expected wait (app_queue `announce-holdtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HoldTimeAnnouncement {
    /// Never (`no`).
    #[default]
    Never,
    /// In every announcement (`yes`).
    Always,
    /// In the first announcement only (`once`).
    Once,
}

/// What a caller brings when it joins, besides its queue: app_queue's
/// `QUEUE_MAX_PENALTY`/`QUEUE_MIN_PENALTY` and `rule` argument, XiVO's skill rule set
/// and its `$variables`. The default uses the queue's rules with no penalty limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// Members with a higher penalty are not rung (until a penalty rule changes it).
    pub max_penalty: Option<u32>,
    /// Members with a lower penalty are not rung (until a penalty rule changes it).
    pub min_penalty: Option<u32>,
    /// Penalty rules instead of the queue's.
    pub penalty_rules: Option<PenaltyRules>,
    /// A skill rule set instead of the queue's.
    pub skill_rules: Option<RuleSet>,
    /// The rule set's arguments: `$name` in a rule reads `skill_variables["name"]`.
    pub skill_variables: BTreeMap<String, String>,
}

/// Something that happened, for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// A caller asks to join a queue.
    CallArrived {
        /// The caller's id.
        call: CallId,
        /// The queue.
        queue: QueueId,
        /// The caller-ID number (logged).
        caller_id: String,
        /// Higher priorities queue ahead of lower ones.
        priority: i32,
        /// Penalty limits and rules, skill rules.
        options: CallOptions,
    },
    /// The caller hung up (waiting: `ABANDON`; connected: `COMPLETECALLER`).
    CallerHungUp {
        /// The call.
        call: CallId,
    },
    /// The caller pressed a key that leaves the queue (`EXITWITHKEY`).
    CallerLeftWithKey {
        /// The call.
        call: CallId,
        /// The key(s).
        key: String,
    },
    /// The member hung up a connected call (`COMPLETEAGENT`).
    AgentHungUp {
        /// The call.
        call: CallId,
    },
    /// A rung member answered.
    MemberAnswered {
        /// The call.
        call: CallId,
        /// The member.
        agent: AgentId,
        /// The unique id of the member's channel (logged in `CONNECT`).
        member_uniqueid: String,
    },
    /// A rung member refused, was busy or failed before answering.
    MemberNoAnswer {
        /// The call.
        call: CallId,
        /// The member.
        agent: AgentId,
    },
    /// An agent logs in on a line, becoming a member of these queues with these
    /// penalties. As XiVO-CC: a line not declared with [`Acd::add_line`] is refused
    /// ([`AcdError::UnknownLine`]); an agent already logged in on this line stays so
    /// (nothing changes); on another line, it is refused and stays where it is
    /// ([`AcdError::LoggedInElsewhere`]); a line held by another agent is taken over,
    /// that agent being logged off ([`Output::AgentLoggedOff`]).
    AgentLogin {
        /// The agent.
        agent: AgentId,
        /// Its line (phone number, channel or device; logged).
        channel: String,
        /// `(queue, penalty)` memberships.
        queues: Vec<(QueueId, u32)>,
    },
    /// An agent logs off, leaving every queue.
    AgentLogoff {
        /// The agent.
        agent: AgentId,
    },
    /// Pause an agent in one queue, or in all (`PAUSEALL`).
    Pause {
        /// The agent.
        agent: AgentId,
        /// One queue, or `None` for all.
        queue: Option<QueueId>,
        /// The reason (logged).
        reason: String,
    },
    /// Unpause an agent in one queue, or in all (`UNPAUSEALL`).
    Unpause {
        /// The agent.
        agent: AgentId,
        /// One queue, or `None` for all.
        queue: Option<QueueId>,
        /// The reason (logged).
        reason: String,
    },
    /// The device state of an agent's phone changed.
    DeviceState {
        /// The agent.
        agent: AgentId,
        /// Its new state.
        state: DeviceState,
    },
}

/// Why a caller was turned away before entering a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The queue is closed (`CLOSED`).
    Closed,
    /// The queue has `max_len` callers (`FULL`).
    Full,
    /// Nobody can take the call (`JOINEMPTY`).
    JoinEmpty,
    /// The expected wait is over the threshold (`DIVERT_HOLDTIME`).
    DivertHoldTime,
    /// Too many callers per agent (`DIVERT_CA_RATIO`).
    DivertRatio,
}

/// Why a waiting caller was taken out of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leave {
    /// The queue timeout expired (`EXITWITHTIMEOUT`).
    Timeout,
    /// No member counts as present any more (`EXITEMPTY`).
    Empty,
}

/// What the PBX must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Ring this member for this call.
    Ring {
        /// The call.
        call: CallId,
        /// The member.
        agent: AgentId,
    },
    /// Stop ringing this member for this call.
    StopRinging {
        /// The call.
        call: CallId,
        /// The member.
        agent: AgentId,
    },
    /// Bridge the caller with the member that answered.
    Connect {
        /// The call.
        call: CallId,
        /// The member.
        agent: AgentId,
    },
    /// The caller's position (on entry and when it moves up), with the expected wait.
    Position {
        /// The call.
        call: CallId,
        /// 1-based position.
        position: u32,
        /// The queue's expected wait.
        expected_wait: Duration,
    },
    /// Time to tell a waiting caller where it is ([`QueueConfig::announcements`]):
    /// the PBX plays its prompts over the music.
    Announce {
        /// The call.
        call: CallId,
        /// Its 1-based position, when positions are announced.
        position: Option<u32>,
        /// The queue's expected wait (app_queue's smoothed hold time; zero when
        /// no call was answered yet), when it is announced this time.
        expected_wait: Option<Duration>,
    },
    /// The caller was not let in; the PBX applies the queue's fallback.
    Refused {
        /// The call.
        call: CallId,
        /// Why.
        reason: Refusal,
    },
    /// The caller was taken out of the queue; the PBX applies the queue's fallback.
    Left {
        /// The call.
        call: CallId,
        /// Why.
        reason: Leave,
    },
    /// The call is over for the engine (after a hang-up); it forgot it.
    Ended {
        /// The call.
        call: CallId,
    },
    /// An agent's wrap-up ended.
    WrapUpEnded {
        /// The agent.
        agent: AgentId,
    },
    /// An agent was logged off because another agent logged in on its line (XiVO:
    /// the newcomer takes the line over).
    AgentLoggedOff {
        /// The agent logged off.
        agent: AgentId,
        /// The line it lost.
        line: String,
    },
}

/// An input that does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcdError {
    /// No such queue.
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    /// A queue of this name exists.
    #[error("queue {0} already exists")]
    DuplicateQueue(QueueId),
    /// No such call.
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    /// A call with this id is already in a queue.
    #[error("call {0} is already queued")]
    DuplicateCall(CallId),
    /// The agent is not logged in.
    #[error("agent {0} is not logged in")]
    NotLoggedIn(AgentId),
    /// A login on a line the engine does not know (XiVO `PhoneNumberUnknown`).
    #[error("unknown line {0:?}")]
    UnknownLine(String),
    /// The agent is logged in on another line and stays there (XiVO
    /// `LoggedInOnAnotherPhone`).
    #[error("agent {agent} is logged in on {line:?}, not {requested:?}")]
    LoggedInElsewhere {
        /// The agent.
        agent: AgentId,
        /// The line it is logged in on.
        line: String,
        /// The line it asked for.
        requested: String,
    },
    /// The agent is not a member of that queue.
    #[error("agent {agent} is not a member of queue {queue}")]
    NotAMember {
        /// The agent.
        agent: AgentId,
        /// The queue.
        queue: QueueId,
    },
    /// The member is not ringing for that call (it was cancelled meanwhile).
    #[error("agent {agent} is not ringing for call {call}")]
    NotRinging {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The call is not connected to a member.
    #[error("call {0} is not connected")]
    NotConnected(CallId),
}

#[derive(Debug, Clone)]
struct Member {
    /// The agent's number (see [`Agents`]), its name there: a member is 32 bytes,
    /// and a large queue's scans read a thousand.
    num: u32,
    penalty: u32,
    paused: bool,
    calls: u32,
    last_call: Option<Instant>,
}

#[derive(Debug)]
struct Queue {
    config: QueueConfig,
    closed: bool,
    /// Members in `queuepos` order.
    members: Vec<Member>,
    /// Callers not yet connected, in position order.
    waiting: VecDeque<CallId>,
    /// For each of `waiting`: whether it is ringing (its state is `Ringing`), so that
    /// dispatch passes over it without looking it up.
    ringing: VecDeque<bool>,
    /// For each of `waiting`: when it entered, so that the longest wait is known
    /// without looking the callers up.
    entered: VecDeque<Instant>,
    rr_pos: usize,
    rr_wrapped: bool,
    /// Smoothed hold time in seconds (app_queue `holdtime`).
    hold_time: u64,
    counters: QueueCounters,
    /// Its index in [`Queues::by_pos`], the order in which dispatch serves the queues.
    pos: usize,
}

#[derive(Debug)]
struct Agent {
    channel: String,
    login_at: Instant,
    device: DeviceState,
    /// Calls this agent rings for.
    ringing: Vec<CallId>,
    on_call: Option<CallId>,
    wrap_up_until: Option<Instant>,
    /// The queues it is a member of (in name order), so that its state is found
    /// without a scan of every queue.
    queues: Vec<QueueId>,
    /// Their dispatch positions ([`Queue::pos`]), in the same order.
    positions: Vec<usize>,
    /// In how many of them it is paused: ready when in fewer than all, known
    /// without a search of the queues' members.
    paused_in: usize,
    /// Its number (see [`Agents`]).
    num: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    Untried,
    /// Since when: in [`Attempt::rung`] (a byte here keeps a large queue's list
    /// small).
    Ringing,
    Done,
}

#[derive(Debug)]
struct Candidate {
    /// The agent's number (see [`Agents`]): a candidate list stays small (one
    /// allocation under a kilobyte for 30 members).
    agent: u32,
    /// Its index in the queue's members when the attempt started (members may leave
    /// meanwhile: checked against `agent`).
    member: u32,
    metric: i64,
    tried: Tried,
}

/// Candidate lists kept for reuse: as many as attempts ring at once in a busy
/// centre, and a bound on what they hold (a list is 24 bytes per member).
const SPARES: usize = 64;

/// The members one attempt may ring, with their metrics (app_queue's `outgoing`
/// list), and what spares a large queue's answers a scan of the whole list.
#[derive(Debug, Default)]
struct Attempt {
    candidates: Vec<Candidate>,
    /// The lowest (metric, index) when the list was built, and the lowest of the
    /// others: while they stay untried, find_best is one of them.
    best: Option<(i64, usize)>,
    runner_up: Option<(i64, usize)>,
    /// The candidates set ringing, in list order, and since when (some since
    /// done). A candidate rings at most once in an attempt.
    rung: Vec<(usize, Instant)>,
}

impl Attempt {
    /// Keeps `attempt`'s allocations for a next attempt (up to [`SPARES`] lists).
    fn keep(self, spares: &mut Vec<Attempt>) {
        if spares.len() < SPARES {
            spares.push(self);
        }
    }

    /// An empty attempt keeping the allocations of `self`.
    fn reuse(mut self, members: usize) -> Attempt {
        self.candidates.clear();
        self.candidates.reserve(members);
        self.rung.clear();
        self.best = None;
        self.runner_up = None;
        self
    }

    /// Adds a candidate (untried), keeping the two lowest.
    #[inline]
    fn push(&mut self, candidate: Candidate) {
        let ranked = Some((candidate.metric, self.candidates.len()));
        self.candidates.push(candidate);
        // Strictly lower: on a tie the earlier index stays ahead.
        let lower =
            |b: Option<(i64, usize)>| b.is_none_or(|(m, _)| ranked.is_some_and(|(r, _)| r < m));
        if lower(self.best) {
            self.runner_up = self.best;
            self.best = ranked;
        } else if lower(self.runner_up) {
            self.runner_up = ranked;
        }
    }

    /// app_queue find_best: the untried candidate with the lowest metric (the first
    /// on a tie). Mostly without a scan: the untried are a subset of the list, and
    /// of the list less its best once that one is tried.
    fn find_best(&self) -> Option<usize> {
        let untried = |i: Option<usize>| {
            i.filter(|&i| {
                self.candidates
                    .get(i)
                    .is_some_and(|c| c.tried == Tried::Untried)
            })
        };
        let (best, runner_up) = (self.best.map(|b| b.1), self.runner_up.map(|r| r.1));
        let best = match (untried(best), untried(runner_up)) {
            (Some(best), _) => Some(best),
            (None, Some(runner_up)) => Some(runner_up),
            (None, None) => find_best(&self.candidates),
        };
        debug_assert_eq!(best, find_best(&self.candidates));
        best
    }

    /// Candidate `i` rings from `now`; the number of its agent.
    fn ring(&mut self, i: usize, now: Instant) -> Option<u32> {
        let c = self.candidates.get_mut(i)?;
        c.tried = Tried::Ringing;
        let at = self.rung.partition_point(|&(j, _)| j < i);
        self.rung.insert(at, (i, now));
        Some(c.agent)
    }

    /// Whether a candidate rings now.
    fn is_ringing(&self) -> bool {
        self.rung.iter().any(|&(i, _)| {
            self.candidates
                .get(i)
                .is_some_and(|c| c.tried == Tried::Ringing)
        })
    }

    /// The ringing candidate of agent `num`, as an index, and since when.
    fn ringing_agent(&self, num: Option<u32>) -> Option<(usize, Instant)> {
        self.rung
            .iter()
            .find_map(|&(i, since)| match self.candidates.get(i) {
                Some(Candidate {
                    agent,
                    tried: Tried::Ringing,
                    ..
                }) if Some(*agent) == num => Some((i, since)),
                _ => None,
            })
    }
}

#[derive(Debug)]
enum CallState {
    /// Waiting its turn; after a failed attempt, not before `retry_at`.
    Waiting { retry_at: Option<Instant> },
    /// Ringing members until `deadline`.
    Ringing { deadline: Instant, attempt: Attempt },
    Connected {
        agent: AgentId,
        /// The agent's index in the queue's members when it answered (members may
        /// leave meanwhile: checked).
        member: u32,
        at: Instant,
        hold: u64,
    },
}

#[derive(Debug)]
struct Call {
    queue: QueueId,
    entered: Instant,
    original_position: u32,
    priority: i32,
    expires: Option<Instant>,
    lin_pos: usize,
    lin_wrapped: bool,
    state: CallState,
    /// The current penalty range and the index of the next penalty rule.
    limits: PenaltyLimits,
    next_rule: usize,
    /// The caller's own rules; `None` uses the queue's.
    penalty_rules: Option<PenaltyRules>,
    skill_rules: Option<RuleSet>,
    skill_variables: BTreeMap<String, String>,
    /// When a penalty rule or a skill rule's `WT` comparison next changes.
    wake: Option<Instant>,
    /// Whether it has penalty or skill rules at all (most calls have none: they skip
    /// the per-dispatch rule work).
    has_rules: bool,
    /// When the caller is next told its position; when it last was; whether it was
    /// told the hold time.
    announce_at: Option<Instant>,
    announced: Option<Instant>,
    hold_time_said: bool,
}

/// What dispatch reads of an agent, copied from [`Agent`] at each change so that a
/// member's availability needs no lookup by name.
#[derive(Debug, Clone, Copy)]
struct Slot {
    logged: bool,
    /// `Acd::agent_status` (`Invalid` when logged out).
    status: DeviceState,
    wrap_up_until: Option<Instant>,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            logged: false,
            status: DeviceState::Invalid,
            wrap_up_until: None,
        }
    }
}

/// The queues, stored in dispatch order (higher weight first, then by name) so that
/// dispatch and an agent's memberships reach a queue by its position ([`Queue::pos`])
/// with no search by name; inputs find it by name through an index.
#[derive(Debug, Default)]
struct Queues {
    /// In dispatch order: `by_pos[q.pos]` is `q`.
    by_pos: Vec<Queue>,
    /// The positions by name (and the names in name order).
    index: BTreeMap<QueueId, usize>,
}

impl Queues {
    fn get<N>(&self, name: &N) -> Option<&Queue>
    where
        QueueId: std::borrow::Borrow<N>,
        N: Ord + ?Sized,
    {
        self.index.get(name).and_then(|&pos| self.by_pos.get(pos))
    }

    fn get_mut<N>(&mut self, name: &N) -> Option<&mut Queue>
    where
        QueueId: std::borrow::Borrow<N>,
        N: Ord + ?Sized,
    {
        self.index
            .get(name)
            .and_then(|&pos| self.by_pos.get_mut(pos))
    }

    fn contains_key(&self, name: &QueueId) -> bool {
        self.index.contains_key(name)
    }

    /// The queue at a dispatch position.
    fn at(&self, pos: usize) -> Option<&Queue> {
        self.by_pos.get(pos)
    }

    /// The queue at a dispatch position, mutably.
    fn at_mut(&mut self, pos: usize) -> Option<&mut Queue> {
        self.by_pos.get_mut(pos)
    }

    fn len(&self) -> usize {
        self.by_pos.len()
    }

    /// The queues in dispatch order.
    fn values(&self) -> impl Iterator<Item = &Queue> {
        self.by_pos.iter()
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut Queue> {
        self.by_pos.iter_mut()
    }

    /// The names in name order.
    fn keys(&self) -> impl Iterator<Item = &QueueId> {
        self.index.keys()
    }

    /// Adds a queue (its name is new) and sorts the queues into dispatch order again:
    /// positions change.
    fn insert(&mut self, queue: Queue) {
        self.by_pos.push(queue);
        self.by_pos.sort_by(|a, b| {
            b.config
                .weight
                .cmp(&a.config.weight)
                .then_with(|| a.config.name.cmp(&b.config.name))
        });
        self.index.clear();
        for (pos, q) in self.by_pos.iter_mut().enumerate() {
            q.pos = pos;
            self.index.insert(q.config.name.clone(), pos);
        }
    }
}

/// The logged-in agents, stored by agent number so that dispatch, which knows members
/// and candidates by number, reaches them with no search by name. Every agent seen
/// keeps its number (and its name) after logging off.
#[derive(Debug, Default)]
struct Agents {
    /// By number; `None` when logged out.
    by_num: Vec<Option<Agent>>,
    /// The agents seen, by number.
    names: Vec<AgentId>,
    /// Their numbers, by name.
    numbers: HashMap<AgentId, u32>,
    /// How many are logged in.
    logged: usize,
}

impl Agents {
    /// The agent's number, given the first time it is seen.
    fn intern(&mut self, agent: &AgentId) -> u32 {
        if let Some(&n) = self.numbers.get(agent) {
            return n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(agent.clone());
        self.numbers.insert(agent.clone(), n);
        self.by_num.push(None);
        n
    }

    /// The number of an agent seen before.
    fn num<N>(&self, agent: &N) -> Option<u32>
    where
        AgentId: std::borrow::Borrow<N>,
        N: std::hash::Hash + Eq + ?Sized,
    {
        self.numbers.get(agent).copied()
    }

    /// The name of the agent numbered `num`.
    fn name(&self, num: u32) -> Option<&AgentId> {
        self.names.get(num as usize)
    }

    /// How many numbers were given.
    fn seen(&self) -> usize {
        self.names.len()
    }

    /// The logged-in agent numbered `num`.
    fn at(&self, num: u32) -> Option<&Agent> {
        self.by_num.get(num as usize).and_then(Option::as_ref)
    }

    fn at_mut(&mut self, num: u32) -> Option<&mut Agent> {
        self.by_num.get_mut(num as usize).and_then(Option::as_mut)
    }

    fn get(&self, agent: &AgentId) -> Option<&Agent> {
        self.num(agent).and_then(|n| self.at(n))
    }

    fn get_mut(&mut self, agent: &AgentId) -> Option<&mut Agent> {
        self.num(agent).and_then(|n| self.at_mut(n))
    }

    fn contains_key(&self, agent: &AgentId) -> bool {
        self.get(agent).is_some()
    }

    /// Logs an agent in (its number is `a.num`, given by [`intern`](Self::intern)).
    fn insert(&mut self, a: Agent) {
        if let Some(slot) = self.by_num.get_mut(a.num as usize) {
            if slot.is_none() {
                self.logged += 1;
            }
            *slot = Some(a);
        }
    }

    /// Logs an agent off.
    fn remove(&mut self, agent: &AgentId) -> Option<Agent> {
        let n = self.num(agent)?;
        let removed = self.by_num.get_mut(n as usize).and_then(Option::take);
        if removed.is_some() {
            self.logged -= 1;
        }
        removed
    }

    fn len(&self) -> usize {
        self.logged
    }

    /// The logged-in agents, in number order.
    fn values_mut(&mut self) -> impl Iterator<Item = &mut Agent> {
        self.by_num.iter_mut().flatten()
    }

    /// The logged-in agents in number order, with their names.
    fn iter(&self) -> impl Iterator<Item = (&AgentId, &Agent)> {
        self.names
            .iter()
            .zip(&self.by_num)
            .filter_map(|(name, a)| Some((name, a.as_ref()?)))
    }
}

/// A set of dispatch positions ([`Queue::pos`]) as bits: dispatch marks queues at
/// nearly every input, and marking or taking one allocates nothing.
#[derive(Debug, Default)]
struct PositionSet {
    words: Vec<u64>,
}

impl PositionSet {
    fn insert(&mut self, pos: usize) {
        let (word, bit) = (pos / 64, pos % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        if let Some(w) = self.words.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    fn extend(&mut self, positions: impl IntoIterator<Item = usize>) {
        for pos in positions {
            self.insert(pos);
        }
    }

    /// Removes and returns the lowest position from `from` on.
    fn take_from(&mut self, from: usize) -> Option<usize> {
        let mut word = from / 64;
        // The bits of the first word below `from` are not looked at.
        let mut mask = u64::MAX << (from % 64);
        while let Some(w) = self.words.get_mut(word) {
            let bits = *w & mask;
            if bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                *w &= !(1 << bit);
                return Some(word * 64 + bit);
            }
            word += 1;
            mask = u64::MAX;
        }
        None
    }
}

/// An agent's live statistics, kept across logins until the next reset.
#[derive(Debug)]
struct AgentStats {
    times: AgentTimes,
    answered: u64,
    unanswered: u64,
    /// The state being timed, and since when.
    state: AgentState,
    since: Instant,
}

/// The engine: queues, agents, calls. `S` receives the `queue_log` lines, `R` the
/// randomness of `random` and `wrandom`.
pub struct Acd<S, R> {
    sink: S,
    rng: R,
    start: Instant,
    start_epoch: u64,
    queues: Queues,
    agents: Agents,
    /// By id; never iterated where order shows (outputs follow ids sorted).
    calls: HashMap<CallId, Call>,
    outputs: VecDeque<Output>,
    /// Agents' skills (configuration: they outlive logins).
    skills: BTreeMap<AgentId, BTreeMap<String, i64>>,
    /// The lines agents may log in on, and who is logged in on each.
    lines: BTreeMap<String, Option<AgentId>>,
    /// By agent number.
    agent_stats: Vec<Option<AgentStats>>,
    /// Agents (by number) whose state may have changed during the current input, with
    /// repeats (sorted out by `refresh_agent_stats`; a reused buffer).
    touched: Vec<u32>,
    /// The queues (by position, [`Queue::pos`]) that dispatch must examine: those
    /// where something a turn depends on changed since they were last examined. The
    /// others would find nobody to serve and nobody to take out.
    dirty: PositionSet,
    /// Wrap-up ends not yet reached by a dispatch: the agent becomes available then.
    wrap_ends: BTreeSet<(Instant, AgentId)>,
    /// The calls with penalty or skill rules: their ranges move with time, so their
    /// queues are examined at every dispatch.
    ruled: BTreeSet<CallId>,
    /// The highest queue weight (weights only matter below it).
    max_weight: u32,
    /// The time of the last dispatch (time going backwards re-examines everything).
    last_dispatch: Option<Instant>,
    /// The agents' states that dispatch reads for each member, by agent number.
    slots: Vec<Slot>,
    /// A reused buffer of ring_one: (candidate, can ring).
    verdicts: Vec<(usize, bool)>,
    /// The candidate lists of attempts over, for the next ones: starting an attempt
    /// allocates nothing, and a connected call holds none.
    spares: Vec<Attempt>,
    /// Calls whose announcement fell due during the current input.
    announce_now: Vec<CallId>,
}

impl<S: std::fmt::Debug, R> std::fmt::Debug for Acd<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acd")
            .field("queues", &self.queues.len())
            .field("agents", &self.agents.len())
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

const NONE: &str = "NONE";

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn position_u32(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

impl<S: Sink, R: Rng> Acd<S, R> {
    /// An engine with no queue. `now` and `epoch` (Unix seconds at `now`) map the
    /// `Instant`s of the inputs to `queue_log` times.
    pub fn new(sink: S, rng: R, now: Instant, epoch: u64) -> Self {
        Self {
            sink,
            rng,
            start: now,
            start_epoch: epoch,
            queues: Queues::default(),
            agents: Agents::default(),
            calls: HashMap::new(),
            outputs: VecDeque::new(),
            skills: BTreeMap::new(),
            lines: BTreeMap::new(),
            agent_stats: Vec::new(),
            touched: Vec::new(),
            dirty: PositionSet::default(),
            wrap_ends: BTreeSet::new(),
            ruled: BTreeSet::new(),
            max_weight: 0,
            last_dispatch: None,
            verdicts: Vec::new(),
            spares: Vec::new(),
            slots: Vec::new(),
            announce_now: Vec::new(),
        }
    }

    /// Declares a line (a phone number or device) agents may log in on.
    pub fn add_line(&mut self, line: &str) {
        self.lines.entry(line.to_owned()).or_insert(None);
    }

    /// The agent logged in on a line, if any.
    pub fn line_agent(&self, line: &str) -> Option<&AgentId> {
        self.lines.get(line).and_then(Option::as_ref)
    }

    /// Sets an agent's skills (name → weight), used by skill rules from the next
    /// attempt on; an agent without skills has none.
    pub fn set_agent_skills(&mut self, agent: AgentId, skills: BTreeMap<String, i64>) {
        self.skills.insert(agent, skills);
        self.mark_all();
    }

    /// Adds a queue.
    pub fn add_queue(&mut self, config: QueueConfig) -> Result<(), AcdError> {
        if self.queues.contains_key(&config.name) {
            return Err(AcdError::DuplicateQueue(config.name));
        }
        self.queues.insert(Queue {
            config,
            closed: false,
            members: Vec::new(),
            waiting: VecDeque::new(),
            ringing: VecDeque::new(),
            entered: VecDeque::new(),
            rr_pos: 0,
            rr_wrapped: false,
            hold_time: 0,
            counters: QueueCounters::default(),
            pos: 0,
        });
        // The positions moved.
        for a in self.agents.values_mut() {
            a.positions = a
                .queues
                .iter()
                .filter_map(|name| self.queues.get(name).map(|q| q.pos))
                .collect();
        }
        self.settings_changed();
        Ok(())
    }

    /// Replaces the settings of the queue named `config.name` (a configuration
    /// reload): its members, waiting callers, round-robin position, hold time and
    /// counters stay. The new settings apply from the next decision: a caller's
    /// next ring attempt uses the new strategy, ring time and rules; the queue
    /// timeout and options each caller got on arrival stay its own.
    pub fn set_queue_config(&mut self, config: QueueConfig) -> Result<(), AcdError> {
        let q = self
            .queues
            .get_mut(&config.name)
            .ok_or_else(|| AcdError::UnknownQueue(config.name.clone()))?;
        q.config = config;
        self.settings_changed();
        Ok(())
    }

    /// After a queue was added or its settings changed: the highest weight, and
    /// every queue examined at the next dispatch.
    fn settings_changed(&mut self) {
        self.max_weight = self
            .queues
            .values()
            .map(|q| q.config.weight)
            .max()
            .unwrap_or(0);
        self.mark_all();
    }

    /// The agent's number, given the first time it is seen.
    fn intern(&mut self, agent: &AgentId) -> u32 {
        let n = self.agents.intern(agent);
        // The tables by number follow.
        self.slots.resize(self.agents.seen(), Slot::default());
        self.agent_stats.resize_with(self.agents.seen(), || None);
        n
    }

    /// Every queue must be examined at the next dispatch.
    fn mark_all(&mut self) {
        self.dirty.extend(0..self.queues.len());
    }

    /// This queue must be examined at the next dispatch.
    fn mark_queue(&mut self, queue: &QueueId) {
        if let Some(q) = self.queues.get(queue) {
            self.dirty.insert(q.pos);
        }
    }

    /// The queues of this agent must be examined at the next dispatch (its
    /// availability or state may have changed).
    fn mark_agent(&mut self, agent: &AgentId) {
        if let Some(a) = self.agents.get(agent) {
            self.dirty.extend(a.positions.iter().copied());
        }
    }

    /// Opens or closes a queue (its schedule); arriving callers get `CLOSED`.
    pub fn set_closed(&mut self, queue: &QueueId, closed: bool) -> Result<(), AcdError> {
        let q = self
            .queues
            .get_mut(queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.clone()))?;
        q.closed = closed;
        Ok(())
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, mutably (to drain it).
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Callers waiting (not yet connected) in a queue.
    pub fn waiting(&self, queue: &QueueId) -> usize {
        self.queues.get(queue).map_or(0, |q| q.waiting.len())
    }

    /// A queue's expected wait (the smoothed hold time).
    pub fn expected_wait(&self, queue: &QueueId) -> Duration {
        self.queues
            .get(queue)
            .map_or(Duration::ZERO, |q| Duration::from_secs(q.hold_time))
    }

    /// Calls the engine still tracks (waiting, ringing or connected).
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// An agent's state.
    pub fn agent_state(&self, agent: &AgentId, now: Instant) -> AgentState {
        self.agents
            .num(agent)
            .map_or(AgentState::LoggedOut, |num| self.agent_state_at(num, now))
    }

    /// The state of the agent numbered `num`.
    fn agent_state_at(&self, num: u32, now: Instant) -> AgentState {
        let Some(a) = self.agents.at(num) else {
            return AgentState::LoggedOut;
        };
        debug_assert_eq!(
            a.paused_in,
            a.positions
                .iter()
                .filter(|&&pos| self
                    .queues
                    .at(pos)
                    .is_some_and(|q| q.members.iter().any(|m| m.num == a.num && m.paused)))
                .count(),
            "paused_in of agent {num}"
        );
        if a.on_call.is_some() {
            AgentState::OnCall
        } else if !a.ringing.is_empty() {
            AgentState::Ringing
        } else if a.wrap_up_until.is_some_and(|t| t > now) {
            AgentState::WrapUp
        } else if a.paused_in < a.positions.len() {
            AgentState::Ready
        } else {
            AgentState::Paused
        }
    }

    /// A queue's real-time statistics at `now`.
    pub fn queue_live(&self, queue: &QueueId, now: Instant) -> Option<QueueLive> {
        let q = self.queues.get(queue)?;
        let longest_wait = q
            .entered
            .iter()
            .min()
            .map(|&t| now.saturating_duration_since(t))
            .unwrap_or_default();
        let (mut available, mut talking) = (0, 0);
        for m in &q.members {
            let Some(a) = self.agents.at(m.num) else {
                continue;
            };
            if a.on_call.is_some() {
                talking += 1;
            } else if !m.paused
                && a.ringing.is_empty()
                && a.wrap_up_until.is_none_or(|t| t <= now)
                && matches!(a.device, DeviceState::NotInUse | DeviceState::Unknown)
            {
                available += 1;
            }
        }
        Some(QueueLive {
            waiting: q.waiting.len(),
            longest_wait,
            expected_wait: Duration::from_secs(q.hold_time),
            logged: q.members.len(),
            available,
            talking,
            counters: q.counters,
        })
    }

    /// An agent's real-time statistics at `now`; `None` for an agent not seen since
    /// the last reset.
    pub fn agent_live(&self, agent: &AgentId, now: Instant) -> Option<AgentLive> {
        let s = self
            .agent_stats
            .get(self.agents.num(agent)? as usize)?
            .as_ref()?;
        let mut times = s.times;
        times.add(s.state, now.saturating_duration_since(s.since));
        Some(AgentLive {
            state: s.state,
            times,
            answered: s.answered,
            unanswered: s.unanswered,
        })
    }

    /// Starts a new statistics day at `now`: zeroes every queue's counters and every
    /// agent's times and counts (the current states are timed from `now`), and
    /// forgets the agents that are logged out.
    pub fn reset_live_stats(&mut self, now: Instant) {
        self.refresh_agent_stats(now);
        for q in self.queues.values_mut() {
            q.counters = QueueCounters::default();
        }
        for entry in &mut self.agent_stats {
            if entry
                .as_ref()
                .is_some_and(|s| s.state == AgentState::LoggedOut)
            {
                *entry = None;
            }
            if let Some(s) = entry {
                s.times = AgentTimes::default();
                s.answered = 0;
                s.unanswered = 0;
                s.since = now;
            }
        }
    }

    /// Times the state changes of the agents touched by the last input.
    fn refresh_agent_stats(&mut self, now: Instant) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for &num in &touched {
            let state = self.agent_state_at(num, now);
            let Some(entry) = self.agent_stats.get_mut(num as usize) else {
                continue;
            };
            let s = entry.get_or_insert(AgentStats {
                times: AgentTimes::default(),
                answered: 0,
                unanswered: 0,
                state: AgentState::LoggedOut,
                since: now,
            });
            if s.state != state {
                s.times.add(s.state, now.saturating_duration_since(s.since));
                s.state = state;
                s.since = now;
            }
        }
        touched.clear();
        self.touched = touched;
    }

    /// Notes that an agent's state may have changed: for its statistics, and for
    /// dispatch in its queues.
    fn touch(&mut self, agent: &AgentId) {
        // Numbered even if never logged in, for its statistics.
        let num = self.intern(agent);
        self.touch_num(num);
    }

    /// [`touch`](Self::touch), for the agent numbered `num`.
    fn touch_num(&mut self, num: u32) {
        self.touched.push(num);
        // sync and mark_agent with one lookup.
        let slot = match self.agents.at(num) {
            Some(a) => {
                self.dirty.extend(a.positions.iter().copied());
                Slot {
                    logged: true,
                    status: Self::agent_status(a),
                    wrap_up_until: a.wrap_up_until,
                }
            }
            None => Slot::default(),
        };
        if let Some(s) = self.slots.get_mut(num as usize) {
            *s = slot;
        }
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    ///
    /// Cheap however many calls are connected and agents logged in (a PBX asks
    /// after every message it handles): only the callers not yet connected have
    /// timers, and the wrap-ups are kept in time order.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.unconnected().flat_map(|(_, c)| Self::timers(c));
        let wrap_ups = self.wrap_ends.first().map(|(t, _)| *t);
        let next = calls.flatten().chain(wrap_ups).min();
        debug_assert!(
            {
                let every_call = self.calls.values().flat_map(Self::timers).flatten().min();
                let calls = self.unconnected().flat_map(|(_, c)| Self::timers(c));
                calls.flatten().min() == every_call
            },
            "every call with a timer is in a queue's waiting list"
        );
        debug_assert!(
            self.agents.iter().all(|(id, a)| a
                .wrap_up_until
                .is_none_or(|t| self.wrap_ends.contains(&(t, id.clone())))),
            "every wrap-up is in wrap_ends"
        );
        next
    }

    /// A call's timers (none once connected).
    fn timers(c: &Call) -> [Option<Instant>; 4] {
        let state = match &c.state {
            CallState::Waiting { retry_at } => *retry_at,
            CallState::Ringing { deadline, .. } => Some(*deadline),
            CallState::Connected { .. } => return [None; 4],
        };
        [state, c.expires, c.wake, c.announce_at]
    }

    /// The calls not connected (waiting or ringing), through the queues' waiting
    /// lists: the connected calls, most of a busy centre's, are not visited.
    fn unconnected(&self) -> impl Iterator<Item = (&CallId, &Call)> {
        self.queues
            .values()
            .flat_map(|q| q.waiting.iter())
            .filter_map(|id| self.calls.get_key_value(id))
    }

    /// The ids of the unconnected calls that `due` selects, in id order (the order
    /// their outputs come in).
    fn unconnected_due(&self, due: impl Fn(&Call) -> bool) -> Vec<CallId> {
        let mut ids: Vec<CallId> = self
            .unconnected()
            .filter(|(_, c)| due(c))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort_unstable();
        ids
    }

    fn log(&mut self, now: Instant, call: &str, queue: &str, agent: &str, event: Event) {
        let time = self.start_epoch + secs(now.saturating_duration_since(self.start));
        // Only the counted events look the queue and the agent up.
        if QueueCounters::counts(&event)
            && let Some(q) = self.queues.get_mut(queue)
        {
            q.counters.record(&event, secs(q.config.service_level));
        }
        if matches!(event, Event::Connect { .. } | Event::RingNoAnswer { .. })
            && let Some(s) = self
                .agents
                .num(agent)
                .and_then(|n| self.agent_stats.get_mut(n as usize))
                .and_then(Option::as_mut)
        {
            match event {
                Event::Connect { .. } => s.answered += 1,
                Event::RingNoAnswer { .. } => s.unanswered += 1,
                _ => {}
            }
        }
        // Borrowed: a sink that formats or drops the line copies no name.
        self.sink.write_ref(LineRef {
            time,
            call_id: call,
            queue,
            agent,
            event: &event,
        });
    }

    /// Applies one input, then distributes waiting calls.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), AcdError> {
        let result = match input {
            Input::CallArrived {
                call,
                queue,
                caller_id,
                priority,
                options,
            } => self.arrive(now, call, queue, caller_id, priority, options),
            Input::CallerHungUp { call } => self.caller_gone(now, call, None),
            Input::CallerLeftWithKey { call, key } => self.caller_gone(now, call, Some(key)),
            Input::AgentHungUp { call } => self.complete(now, &call, false),
            Input::MemberAnswered {
                call,
                agent,
                member_uniqueid,
            } => self.answered(now, call, agent, member_uniqueid),
            Input::MemberNoAnswer { call, agent } => self.no_answer(now, &call, &agent),
            Input::AgentLogin {
                agent,
                channel,
                queues,
            } => self.login(now, agent, channel, queues),
            Input::AgentLogoff { agent } => self.logoff(now, agent),
            Input::Pause {
                agent,
                queue,
                reason,
            } => self.set_paused(now, &agent, queue.as_ref(), &reason, true),
            Input::Unpause {
                agent,
                queue,
                reason,
            } => self.set_paused(now, &agent, queue.as_ref(), &reason, false),
            Input::DeviceState { agent, state } => match self.agents.get_mut(&agent) {
                Some(a) => {
                    a.device = state;
                    self.sync(&agent);
                    self.mark_agent(&agent);
                    Ok(())
                }
                None => Err(AcdError::NotLoggedIn(agent)),
            },
        };
        self.dispatch(now);
        for call in std::mem::take(&mut self.announce_now) {
            self.announce(now, &call);
        }
        self.refresh_agent_stats(now);
        result
    }

    /// Fires every timer due at `now`, then distributes waiting calls.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self.unconnected_due(|c| c.expires.is_some_and(|t| t <= now));
        for call in expired {
            self.exit_waiting(now, &call, Leave::Timeout);
        }
        let ring_over = self.unconnected_due(
            |c| matches!(c.state, CallState::Ringing { deadline, .. } if deadline <= now),
        );
        for call in ring_over {
            self.attempt_timed_out(now, &call);
        }
        let retry = self.unconnected_due(
            |c| matches!(c.state, CallState::Waiting { retry_at } if retry_at.is_some_and(|t| t <= now)),
        );
        for id in retry {
            if let Some(call) = self.calls.get_mut(&id)
                && let CallState::Waiting { retry_at } = &mut call.state
            {
                *retry_at = None;
                if let Some(q) = self.queues.get(&call.queue) {
                    self.dirty.insert(q.pos);
                }
            }
        }
        // The wrap-ups over, in agent order (entries of wrap-ups since replaced or
        // of agents gone are dropped).
        let mut wrapped_up = Vec::new();
        while self.wrap_ends.first().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, agent)) = self.wrap_ends.pop_first()
                && self
                    .agents
                    .get(&agent)
                    .is_some_and(|a| a.wrap_up_until.is_some_and(|t| t <= now))
            {
                wrapped_up.push(agent);
            }
        }
        wrapped_up.sort_unstable();
        wrapped_up.dedup();
        for agent in wrapped_up {
            if let Some(a) = self.agents.get_mut(&agent) {
                a.wrap_up_until = None;
            }
            self.touch(&agent);
            self.outputs.push_back(Output::WrapUpEnded { agent });
        }
        self.dispatch(now);
        let due = self.unconnected_due(|c| c.announce_at.is_some_and(|t| t <= now));
        self.announce_now.clear();
        for call in due {
            self.announce(now, &call);
        }
        self.refresh_agent_stats(now);
    }

    /// Asks for an announcement to `call` at `at` (or sooner if one is already due).
    fn schedule_announcement(&mut self, now: Instant, call: &CallId, at: Instant) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.announce_at.is_none_or(|t| at < t) {
            c.announce_at = Some(at);
        }
        if at <= now {
            self.announce_now.push(call.clone());
        }
    }

    /// Tells `call` its position (and the expected wait) when it is due, and sets
    /// the next time (app_queue `say_position`).
    fn announce(&mut self, now: Instant, id: &CallId) {
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.announce_at.is_none_or(|t| t > now) || matches!(c.state, CallState::Connected { .. }) {
            return;
        }
        let Some(q) = self.queues.get(&c.queue) else {
            return;
        };
        let a = q.config.announcements;
        let (Some(frequency), Some(index)) = (a.frequency, q.waiting.iter().position(|w| w == id))
        else {
            c.announce_at = None;
            return;
        };
        // A frequency past the clock's range is never.
        c.announce_at = now.checked_add(frequency);
        if index == 0 && !a.to_first && matches!(c.state, CallState::Ringing { .. }) {
            return;
        }
        let hold = Duration::from_secs(q.hold_time);
        let position = a.position.then(|| position_u32(index));
        let expected_wait = match a.hold_time {
            HoldTimeAnnouncement::Never => None,
            HoldTimeAnnouncement::Always => Some(hold),
            HoldTimeAnnouncement::Once => (!c.hold_time_said).then_some(hold),
        };
        if position.is_none() && expected_wait.is_none() {
            return;
        }
        c.hold_time_said |= expected_wait.is_some();
        c.announced = Some(now);
        self.outputs.push_back(Output::Announce {
            call: id.clone(),
            position,
            expected_wait,
        });
    }

    fn arrive(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        caller_id: String,
        priority: i32,
        options: CallOptions,
    ) -> Result<(), AcdError> {
        if self.calls.contains_key(&call) {
            return Err(AcdError::DuplicateCall(call));
        }
        let q = self
            .queues
            .get(&queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.clone()))?;
        // The rules due at a wait of 0 apply before joinempty looks at the range.
        let mut limits = PenaltyLimits {
            max: options.max_penalty,
            min: options.min_penalty,
        };
        let rules = options
            .penalty_rules
            .as_ref()
            .unwrap_or(&q.config.penalty_rules);
        let next_rule = rules.apply(Duration::ZERO, 0, &mut limits);
        let has_rules =
            !rules.is_empty() || options.skill_rules.is_some() || q.config.skill_rules.is_some();
        let refusal = if q.closed {
            Some(Refusal::Closed)
        } else if self.divert_hold_time(q) {
            Some(Refusal::DivertHoldTime)
        } else if self.divert_ratio(q) {
            Some(Refusal::DivertRatio)
        } else if !q.config.join_empty.is_never()
            && self.is_empty(q, q.config.join_empty, now, &limits)
        {
            Some(Refusal::JoinEmpty)
        } else if q.config.max_len > 0 && q.waiting.len() >= q.config.max_len {
            Some(Refusal::Full)
        } else {
            None
        };
        if let Some(reason) = refusal {
            let event = match reason {
                Refusal::Closed => Event::Closed,
                Refusal::Full => Event::Full,
                Refusal::JoinEmpty => Event::JoinEmpty,
                Refusal::DivertHoldTime => Event::DivertHoldTime,
                Refusal::DivertRatio => Event::DivertCaRatio,
            };
            self.log(now, call.as_str(), queue.as_str(), NONE, event);
            self.outputs.push_back(Output::Refused { call, reason });
            return Ok(());
        }
        let q = self
            .queues
            .get_mut(&queue)
            .ok_or_else(|| AcdError::UnknownQueue(queue.clone()))?;
        // Behind every caller of the same or a higher priority (app_queue join_queue).
        // The callers are in non-increasing priority (only this inserts): when the last
        // one's is not lower, the caller goes last, without a look at the others.
        let calls = &self.calls;
        let lower = |c: &CallId| calls.get(c).is_some_and(|c| c.priority < priority);
        let index = match q.waiting.back() {
            Some(last) if !lower(last) => q.waiting.len(),
            _ => q.waiting.iter().position(lower).unwrap_or(q.waiting.len()),
        };
        q.waiting.insert(index, call.clone());
        q.ringing.insert(index, false);
        q.entered.insert(index, now);
        let position = position_u32(index);
        let expected_wait = Duration::from_secs(q.hold_time);
        let expires = q.config.timeout.map(|t| now + t);
        self.calls.insert(
            call.clone(),
            Call {
                queue: queue.clone(),
                entered: now,
                original_position: position,
                priority,
                expires,
                lin_pos: 0,
                lin_wrapped: false,
                state: CallState::Waiting { retry_at: None },
                limits,
                next_rule,
                penalty_rules: options.penalty_rules,
                skill_rules: options.skill_rules,
                skill_variables: options.skill_variables,
                wake: None,
                has_rules,
                announce_at: None,
                announced: None,
                hold_time_said: false,
            },
        );
        if has_rules {
            self.ruled.insert(call.clone());
        }
        self.mark_queue(&queue);
        self.log(
            now,
            call.as_str(),
            queue.as_str(),
            NONE,
            Event::EnterQueue {
                url: String::new(),
                caller_id,
                position,
                caller_name: None,
            },
        );
        self.outputs.push_back(Output::Position {
            call: call.clone(),
            position,
            expected_wait,
        });
        self.schedule_announcement(now, &call, now);
        self.announce_behind(now, &queue, index + 1);
        Ok(())
    }

    /// Tells the callers from `from` (0-based) on their new positions; those that
    /// hear announcements are told early.
    fn announce_behind(&mut self, now: Instant, queue: &QueueId, from: usize) {
        let Some(q) = self.queues.get(queue) else {
            return;
        };
        let expected_wait = Duration::from_secs(q.hold_time);
        let announcing = q.config.announcements.frequency.is_some();
        let min_frequency = q.config.announcements.min_frequency;
        let mut moved = Vec::new();
        for (i, call) in q.waiting.iter().enumerate().skip(from) {
            self.outputs.push_back(Output::Position {
                call: call.clone(),
                position: position_u32(i),
                expected_wait,
            });
            if announcing {
                moved.push(call.clone());
            }
        }
        for call in moved {
            let last = self.calls.get(&call).and_then(|c| c.announced);
            let at = last.map_or(Some(now), |t| t.checked_add(min_frequency));
            let Some(at) = at.map(|t| t.max(now)) else {
                continue;
            };
            self.schedule_announcement(now, &call, at);
        }
    }

    /// XiVO check_diversion: hold time strictly over the threshold, someone waiting.
    fn divert_hold_time(&self, q: &Queue) -> bool {
        q.config
            .divert_hold_time
            .is_some_and(|max| !q.waiting.is_empty() && q.hold_time > max.as_secs())
    }

    /// XiVO check_diversion: (waiting + 1) / logged-in members strictly over the
    /// ratio, someone waiting; no member logged in diverts.
    fn divert_ratio(&self, q: &Queue) -> bool {
        let Some(ratio) = q.config.divert_ratio else {
            return false;
        };
        if q.waiting.is_empty() {
            return false;
        }
        let logged = q
            .members
            .iter()
            .filter(|m| {
                self.agents.at(m.num).is_some_and(|a| {
                    !matches!(a.device, DeviceState::Unavailable | DeviceState::Invalid)
                })
            })
            .count();
        if logged == 0 {
            return true;
        }
        // As check_diversion computes it: (waiting + 1.0) / agents > waitratio.
        (q.waiting.len() as f64 + 1.0) / logged as f64 > ratio
    }

    /// The device state of the agent numbered `num` as the engine sees it.
    fn status(&self, num: u32) -> DeviceState {
        self.agents
            .at(num)
            .map_or(DeviceState::Invalid, Self::agent_status)
    }

    fn agent_status(a: &Agent) -> DeviceState {
        if a.on_call.is_some() {
            DeviceState::InUse
        } else if !a.ringing.is_empty() {
            DeviceState::Ringing
        } else {
            a.device
        }
    }

    fn in_wrap_up(&self, num: u32, now: Instant) -> bool {
        self.agents
            .at(num)
            .is_some_and(|a| a.wrap_up_until.is_some_and(|t| t > now))
    }

    /// app_queue get_member_status: true when no member counts as present.
    fn is_empty(
        &self,
        q: &Queue,
        conditions: EmptyConditions,
        now: Instant,
        limits: &PenaltyLimits,
    ) -> bool {
        !q.members.iter().any(|m| {
            if conditions.contains(EmptyConditions::PENALTY) && !limits.allows(m.penalty) {
                return false;
            }
            let excluded = match self.status(m.num) {
                DeviceState::Invalid => conditions.contains(EmptyConditions::INVALID),
                DeviceState::Unavailable => conditions.contains(EmptyConditions::UNAVAILABLE),
                DeviceState::InUse => conditions.contains(EmptyConditions::INUSE),
                DeviceState::Ringing => conditions.contains(EmptyConditions::RINGING),
                DeviceState::Unknown => conditions.contains(EmptyConditions::UNKNOWN),
                DeviceState::NotInUse => false,
            };
            let paused = m.paused && conditions.contains(EmptyConditions::PAUSED);
            let wrap_up =
                conditions.contains(EmptyConditions::WRAPUP) && self.in_wrap_up(m.num, now);
            let absent = excluded || paused || wrap_up;
            !absent
        })
    }

    /// app_queue is_member_available.
    fn is_available(&self, q: &Queue, m: &Member, now: Instant) -> bool {
        if m.paused {
            return false;
        }
        // No lookup by name: this runs for many members at each dispatch.
        let s = self.slot(m.num);
        let available = s.logged
            && s.wrap_up_until.is_none_or(|t| t <= now)
            && match s.status {
                DeviceState::Invalid | DeviceState::Unavailable => false,
                DeviceState::InUse | DeviceState::Ringing => q.config.ring_in_use,
                DeviceState::NotInUse | DeviceState::Unknown => true,
            };
        debug_assert_eq!(
            available,
            self.agents.at(m.num).is_some_and(|a| {
                a.wrap_up_until.is_none_or(|t| t <= now)
                    && match Self::agent_status(a) {
                        DeviceState::Invalid | DeviceState::Unavailable => false,
                        DeviceState::InUse | DeviceState::Ringing => q.config.ring_in_use,
                        DeviceState::NotInUse | DeviceState::Unknown => true,
                    }
            }),
            "slot of agent {}",
            m.num
        );
        available
    }

    /// The state of the agent numbered `num` as dispatch needs it.
    fn slot(&self, num: u32) -> Slot {
        self.slots.get(num as usize).copied().unwrap_or_default()
    }

    /// Copies the agent's state to its slot (after any change of it).
    fn sync(&mut self, agent: &AgentId) {
        let Some(num) = self.agents.num(agent) else {
            return;
        };
        let slot = self.agents.at(num).map_or(Slot::default(), |a| Slot {
            logged: true,
            status: Self::agent_status(a),
            wrap_up_until: a.wrap_up_until,
        });
        if let Some(s) = self.slots.get_mut(num as usize) {
            *s = slot;
        }
    }

    /// app_queue num_available_members (autofill on; ringall counts at most one).
    fn available_members(&self, q: &Queue, now: Instant) -> usize {
        let n = q
            .members
            .iter()
            .filter(|m| self.is_available(q, m, now))
            .count();
        if q.config.strategy == Strategy::RingAll {
            n.min(1)
        } else {
            n
        }
    }

    /// app_queue can_ring_entry, for a candidate of an attempt in `q`.
    fn can_ring(&self, q: &Queue, c: &Candidate, now: Instant) -> bool {
        if self.agents.name(c.agent).is_none() {
            return false;
        }
        let m = match q.members.get(c.member as usize) {
            Some(m) if m.num == c.agent => Some(m),
            _ => q.members.iter().find(|m| m.num == c.agent),
        };
        let Some(m) = m else {
            return false;
        };
        if m.paused {
            return false;
        }
        // in_wrap_up and status, from the slot.
        let s = self.slot(c.agent);
        if s.logged && s.wrap_up_until.is_some_and(|t| t > now) {
            return false;
        }
        let free = s.logged && matches!(s.status, DeviceState::NotInUse | DeviceState::Unknown);
        if !q.config.ring_in_use && !free {
            return false;
        }
        // compare_weight: a heavier queue sharing this member, with callers it cannot
        // serve. The queues sharing it are the agent's; none is heavier than the
        // heaviest.
        if q.config.weight >= self.max_weight {
            return true;
        }
        let Some(a) = self.agents.at(c.agent) else {
            return true;
        };
        !a.positions
            .iter()
            .filter_map(|&pos| self.queues.at(pos))
            .any(|other| {
                other.config.name != q.config.name
                    && other.config.weight > q.config.weight
                    && !other.waiting.is_empty()
                    && other.waiting.len() >= self.available_members(other, now)
            })
    }

    /// Starts attempts for the callers whose turn it is, and applies leavewhenempty.
    ///
    /// The queues are served in dispatch order ([`Queues`]); only the dirty ones are
    /// examined, the others having nobody to serve or take out (a queue is clean once
    /// examined, and marked again by any change its turns depend on: its callers, the
    /// state of its members' agents, the end of a wrap-up, a caller's rules).
    fn dispatch(&mut self, now: Instant) {
        if self.last_dispatch.is_some_and(|t| now < t) {
            // Wrap-ups would be running again: re-examine everything.
            self.mark_all();
        }
        // The agents whose wrap-up ended since the last dispatch become available
        // (handle_timeout takes the entries out and reports the ends).
        let since = self.last_dispatch.replace(now);
        let ended: Vec<AgentId> = self
            .wrap_ends
            .iter()
            .take_while(|(t, _)| *t <= now)
            .filter(|(t, _)| since.is_none_or(|s| *t > s))
            .map(|(_, agent)| agent.clone())
            .collect();
        for agent in ended {
            self.mark_agent(&agent);
        }
        self.advance_rules(now);
        let mut from = 0;
        while let Some(pos) = self.dirty.take_from(from) {
            from = pos + 1;
            let Some(q) = self.queues.at(pos) else {
                continue;
            };
            if !q.config.leave_when_empty.is_never() {
                let queue = q.config.name.clone();
                self.leave_when_empty(now, &queue);
            }
            // Each started attempt changes availability: re-check from the head.
            while let Some(call) = self.next_turn(pos, now) {
                self.start_attempt(now, &call);
            }
        }
    }

    /// Applies the penalty rules whose time has come and sets each waiting caller's
    /// next wake-up (next penalty rule, next change of a skill rule's `WT` test).
    /// The calls without rules keep no wake-up. The queues of the waiting callers with
    /// rules are marked for dispatch: their ranges and skill rules move with time.
    fn advance_rules(&mut self, now: Instant) {
        for id in &self.ruled {
            let Some(call) = self.calls.get_mut(id) else {
                continue;
            };
            if !call.has_rules || matches!(call.state, CallState::Connected { .. }) {
                call.wake = None;
                continue;
            }
            let Some(q) = self.queues.get(&call.queue) else {
                continue;
            };
            self.dirty.insert(q.pos);
            let wait = now.saturating_duration_since(call.entered);
            let rules = call
                .penalty_rules
                .as_ref()
                .unwrap_or(&q.config.penalty_rules);
            call.next_rule = rules.apply(wait, call.next_rule, &mut call.limits);
            let penalty = rules.next_change(call.next_rule);
            let skills = call
                .skill_rules
                .as_ref()
                .or(q.config.skill_rules.as_ref())
                .and_then(|r| r.next_wait_change(&call.skill_variables, wait))
                .map(Duration::from_secs);
            call.wake = match (penalty, skills) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(|d| call.entered + d);
        }
    }

    /// Which members of `q` this caller may ring (by index): those in its penalty
    /// range and, with skill rules, selected by the first rule that selects at least
    /// one logged-in member (evaluated with the caller's current wait and the queue's
    /// EWT). `None` when every member may ring.
    fn eligible(&self, q: &Queue, call: &Call, now: Instant) -> Option<Vec<bool>> {
        let rules = call.skill_rules.as_ref().or(q.config.skill_rules.as_ref());
        if rules.is_none() && call.limits == PenaltyLimits::default() {
            return None;
        }
        let mut mask: Vec<bool> = q
            .members
            .iter()
            .map(|m| call.limits.allows(m.penalty))
            .collect();
        if let Some(rules) = rules {
            let none = BTreeMap::new();
            let skills: Vec<&BTreeMap<String, i64>> = q
                .members
                .iter()
                .map(|m| {
                    self.agents
                        .name(m.num)
                        .and_then(|a| self.skills.get(a))
                        .unwrap_or(&none)
                })
                .collect();
            let wait = now.saturating_duration_since(call.entered);
            let ewt = Duration::from_secs(q.hold_time);
            let mut selected = vec![false; mask.len()];
            if let Some((_, chosen)) = rules.select(&skills, &call.skill_variables, wait, ewt) {
                for i in chosen {
                    if let Some(s) = selected.get_mut(i) {
                        *s = true;
                    }
                }
            }
            for (m, s) in mask.iter_mut().zip(selected) {
                *m = *m && s;
            }
        }
        Some(mask)
    }

    fn leave_when_empty(&mut self, now: Instant, queue: &QueueId) {
        let Some(q) = self.queues.get(queue) else {
            return;
        };
        let conditions = q.config.leave_when_empty;
        if conditions.is_never() {
            return;
        }
        // Each caller with its own penalty range (app_queue checks per caller).
        let leaving: Vec<CallId> = q
            .waiting
            .iter()
            .filter(|c| {
                self.calls.get(*c).is_some_and(|c| {
                    matches!(c.state, CallState::Waiting { .. })
                        && self.is_empty(q, conditions, now, &c.limits)
                })
            })
            .cloned()
            .collect();
        for call in leaving {
            self.exit_waiting(now, &call, Leave::Empty);
        }
    }

    /// The first caller (in position order) that may start an attempt: idle, not in
    /// its retry pause, and within is_our_turn. Unlike app_queue, the members a caller
    /// counts are the ones it may ring (penalty range, skills), and a caller that can
    /// ring nobody does not hold the others back: a caller restricted to busy members
    /// must not keep a free member from the callers behind it.
    fn next_turn(&self, pos: usize, now: Instant) -> Option<CallId> {
        let q = self.queues.at(pos)?;
        // Every caller ringing (or none waiting): nobody's turn. Cheaper than the
        // members' scan below, and the usual case right after an attempt starts.
        if q.ringing.iter().all(|&ringing| ringing) {
            return None;
        }
        // No member available: no caller has any (a caller's members are a subset), so
        // none has its turn. Cheap: no lookup of the callers.
        if !q.members.iter().any(|m| self.is_available(q, m, now)) {
            return None;
        }
        let ring_all = q.config.strategy == Strategy::RingAll;
        // The members available to a caller that may ring them all
        // (available_members), counted only as far as the comparisons need.
        let mut members = q.members.iter();
        let mut everybody = 0;
        let mut ahead = 0;
        for (id, &ringing) in q.waiting.iter().zip(&q.ringing) {
            debug_assert_eq!(
                ringing,
                self.calls
                    .get(id)
                    .is_some_and(|c| matches!(c.state, CallState::Ringing { .. })),
                "ringing flag of {id}"
            );
            if ringing {
                continue;
            }
            let Some(call) = self.calls.get(id) else {
                continue;
            };
            let CallState::Waiting { retry_at } = call.state else {
                continue;
            };
            // Whether the caller's available members (ringall: at most one) outnumber
            // the callers ahead of it.
            let turn = match self.eligible(q, call, now) {
                None if ring_all && ahead >= 1 => false,
                None => {
                    while everybody <= ahead {
                        let Some(m) = members.next() else {
                            break;
                        };
                        if self.is_available(q, m, now) {
                            everybody += 1;
                        }
                    }
                    everybody > ahead
                }
                Some(mask) => {
                    let n = q
                        .members
                        .iter()
                        .zip(mask)
                        .filter(|(m, ok)| *ok && self.is_available(q, m, now))
                        .count();
                    let available = if ring_all { n.min(1) } else { n };
                    ahead < available
                }
            };
            if !turn {
                continue;
            }
            if retry_at.is_none() {
                return Some(id.clone());
            }
            ahead += 1;
        }
        None
    }

    fn start_attempt(&mut self, now: Instant, id: &CallId) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let Some(q) = self.queues.get(&call.queue) else {
            return;
        };
        let mask = self.eligible(q, call, now);
        // The call, its queue and the randomness are distinct fields: one lookup each
        // for the rest of the attempt's set-up.
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let Some(q) = self.queues.get_mut(&call.queue) else {
            return;
        };
        let strategy = q.config.strategy;
        let mut wrapped = false;
        let cursor = if strategy == Strategy::Linear {
            call.lin_pos
        } else {
            q.rr_pos
        };
        // The candidate list of an attempt that ended, reused.
        let mut attempt = self.spares.pop().unwrap_or_default().reuse(q.members.len());
        // Only leastrecent reads the time since a member's last call.
        let recency = strategy == Strategy::LeastRecent;
        for (position, m) in q.members.iter().enumerate() {
            // Out of range or not selected: skipped, but still counted in `position`
            // (app_queue's calc_metric refusal in try_calling).
            if mask
                .as_ref()
                .is_some_and(|mask| !mask.get(position).copied().unwrap_or(false))
            {
                continue;
            }
            let facts = MemberFacts {
                penalty: m.penalty,
                position,
                calls: m.calls,
                since_last_call: m
                    .last_call
                    .filter(|_| recency)
                    .map(|t| now.saturating_duration_since(t)),
            };
            attempt.push(Candidate {
                agent: m.num,
                member: u32::try_from(position).unwrap_or(u32::MAX),
                metric: metric(strategy, facts, cursor, &mut wrapped, &mut self.rng),
                tried: Tried::Untried,
            });
        }
        let mut deadline = now + q.config.member_timeout;
        if let Some(expires) = call.expires {
            deadline = deadline.min(expires);
        }
        if strategy == Strategy::Linear {
            call.lin_wrapped = wrapped;
        } else {
            q.rr_wrapped = wrapped;
        }
        call.state = CallState::Ringing { deadline, attempt };
        // set_ringing, with the queue at hand.
        if let Some(i) = q.waiting.iter().position(|c| c == id)
            && let Some(r) = q.ringing.get_mut(i)
        {
            *r = true;
        }
        if !self.ring_one(now, id) {
            self.end_attempt(now, id);
        }
    }

    /// app_queue ring_one: rings the best untried candidate (ringall: all sharing the
    /// best metric), skipping the ones that cannot ring. False when nobody rings.
    fn ring_one(&mut self, now: Instant, id: &CallId) -> bool {
        // The candidates are taken out of the call meanwhile (can_ring does not read
        // them), and the verdicts go to a reused buffer.
        let Some(call) = self.calls.get_mut(id) else {
            return false;
        };
        let queue = call.queue.clone();
        let CallState::Ringing { attempt, .. } = &mut call.state else {
            return false;
        };
        let mut attempt = std::mem::take(attempt);
        let mut verdicts = std::mem::take(&mut self.verdicts);
        let rang = self.ring_best(now, id, &queue, &mut attempt, &mut verdicts);
        verdicts.clear();
        self.verdicts = verdicts;
        if let Some(CallState::Ringing { attempt: a, .. }) =
            self.calls.get_mut(id).map(|c| &mut c.state)
        {
            *a = attempt;
        }
        rang
    }

    fn ring_best(
        &mut self,
        now: Instant,
        id: &CallId,
        queue: &QueueId,
        attempt: &mut Attempt,
        verdicts: &mut Vec<(usize, bool)>,
    ) -> bool {
        let ring_all = self
            .queues
            .get(queue)
            .is_some_and(|q| q.config.strategy == Strategy::RingAll);
        if !ring_all {
            // find_best's successive choices, while each fails: the untried candidates
            // by metric, then position. A failed verdict changes nothing but its
            // candidate's `tried` (can_ring reads no candidate), so the outcome is: the
            // first candidate in that order that can ring rings, the untried ones
            // before it are done. The best one usually rings; otherwise one pass finds
            // the first that can, with no sort.
            let q = self.queues.get(queue);
            let can_ring = |c: &Candidate| q.is_some_and(|q| self.can_ring(q, c, now));
            let best = attempt.find_best();
            let candidates = &mut attempt.candidates;
            let chosen = match best {
                None => None,
                Some(best) if can_ring(&candidates[best]) => Some(best),
                Some(_) => {
                    let mut first: Option<usize> = None;
                    for (i, c) in candidates.iter().enumerate() {
                        // Strictly lower: on a tie the earlier position comes first.
                        if c.tried == Tried::Untried
                            && first.is_none_or(|f| c.metric < candidates[f].metric)
                            && can_ring(c)
                        {
                            first = Some(i);
                        }
                    }
                    let bound = first.map(|f| (candidates[f].metric, f));
                    for (i, c) in candidates.iter_mut().enumerate() {
                        if c.tried == Tried::Untried && bound.is_none_or(|b| (c.metric, i) < b) {
                            c.tried = Tried::Done;
                        }
                    }
                    first
                }
            };
            let chosen = chosen.and_then(|i| attempt.ring(i, now));
            return chosen.is_some_and(|num| self.ring(id, num));
        }
        loop {
            let Some(best) = attempt.find_best() else {
                return false;
            };
            let candidates = &attempt.candidates;
            let best_metric = candidates[best].metric;
            // Every verdict before any ring (a ring changes the others' queues).
            verdicts.clear();
            let q = self.queues.get(queue);
            let verdict = |c: &Candidate| q.is_some_and(|q| self.can_ring(q, c, now));
            if ring_all {
                for (i, c) in candidates.iter().enumerate() {
                    if c.tried == Tried::Untried && c.metric <= best_metric {
                        verdicts.push((i, verdict(c)));
                    }
                }
            } else {
                verdicts.push((best, verdict(&candidates[best])));
            }
            let mut rang = false;
            for &(i, ok) in verdicts.iter() {
                let rings = if ok {
                    attempt.ring(i, now)
                } else {
                    if let Some(c) = attempt.candidates.get_mut(i) {
                        c.tried = Tried::Done;
                    }
                    None
                };
                if rings.is_some_and(|num| self.ring(id, num)) {
                    rang = true;
                }
            }
            if rang {
                return true;
            }
        }
    }

    /// Rings the agent numbered `num` for this call; false for a number never given.
    fn ring(&mut self, id: &CallId, num: u32) -> bool {
        let Some(agent) = self.agents.name(num).cloned() else {
            return false;
        };
        if let Some(a) = self.agents.at_mut(num) {
            a.ringing.push(id.clone());
        }
        self.touch_num(num);
        self.outputs.push_back(Output::Ring {
            call: id.clone(),
            agent,
        });
        true
    }

    /// Ends a ringing attempt with nobody answering: store_next_rr / store_next_lin,
    /// then the retry pause.
    fn end_attempt(&mut self, now: Instant, id: &CallId) {
        self.store_next(id);
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let retry = self
            .queues
            .get(&call.queue)
            .map_or(Duration::ZERO, |q| q.config.retry);
        let ended = std::mem::replace(
            &mut call.state,
            CallState::Waiting {
                retry_at: Some(now + retry),
            },
        );
        // The candidate list serves the next attempt.
        if let CallState::Ringing { attempt, .. } = ended {
            attempt.keep(&mut self.spares);
        }
        let queue = call.queue.clone();
        self.mark_queue(&queue);
        self.set_ringing(&queue, id, false);
    }

    /// Sets the `ringing` flag of a waiting caller.
    fn set_ringing(&mut self, queue: &QueueId, id: &CallId, ringing: bool) {
        if let Some(q) = self.queues.get_mut(queue)
            && let Some(i) = q.waiting.iter().position(|c| c == id)
            && let Some(r) = q.ringing.get_mut(i)
        {
            *r = ringing;
        }
    }

    /// app_queue store_next_rr / store_next_lin after an attempt.
    fn store_next(&mut self, id: &CallId) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let CallState::Ringing { attempt, .. } = &call.state else {
            return;
        };
        let next = attempt
            .find_best()
            .map(|i| attempt.candidates[i].metric.rem_euclid(1000));
        let next = next.and_then(|n| usize::try_from(n).ok());
        let Some(q) = self.queues.get_mut(&call.queue) else {
            return;
        };
        match q.config.strategy {
            Strategy::RrMemory | Strategy::RrOrdered => {
                q.rr_pos = match next {
                    Some(n) => n,
                    None if q.rr_wrapped => 0,
                    None => q.rr_pos + 1,
                };
                q.rr_wrapped = false;
            }
            Strategy::Linear => {
                call.lin_pos = match next {
                    Some(n) => n,
                    None if call.lin_wrapped => 0,
                    None => call.lin_pos + 1,
                };
                call.lin_wrapped = false;
            }
            _ => {}
        }
    }

    /// Stops every member still ringing for this call; with `no_answer`, logs
    /// RINGNOANSWER for each and applies autopause.
    fn stop_ringing(
        &mut self,
        now: Instant,
        id: &CallId,
        no_answer: bool,
        except: Option<&AgentId>,
    ) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let queue = call.queue.clone();
        let CallState::Ringing { attempt, .. } = &mut call.state else {
            return;
        };
        let except = except.and_then(|a| self.agents.num(a));
        let mut stopped = Vec::new();
        for &(i, since) in &attempt.rung {
            let Some(c) = attempt.candidates.get_mut(i) else {
                continue;
            };
            if c.tried == Tried::Ringing
                && except != Some(c.agent)
                && let Some(agent) = self.agents.name(c.agent)
            {
                c.tried = Tried::Done;
                stopped.push((agent.clone(), now.saturating_duration_since(since)));
            }
        }
        for (agent, rang) in stopped {
            self.member_stops_ringing(
                now,
                id,
                &queue,
                &agent,
                if no_answer { Some(rang) } else { None },
            );
        }
    }

    fn member_stops_ringing(
        &mut self,
        now: Instant,
        id: &CallId,
        queue: &QueueId,
        agent: &AgentId,
        no_answer: Option<Duration>,
    ) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.ringing.retain(|c| c != id);
        }
        self.touch(agent);
        self.outputs.push_back(Output::StopRinging {
            call: id.clone(),
            agent: agent.clone(),
        });
        if let Some(rang) = no_answer {
            let ring_ms = u64::try_from(rang.as_millis()).unwrap_or(u64::MAX);
            self.log(
                now,
                id.as_str(),
                queue.as_str(),
                agent.as_str(),
                Event::RingNoAnswer { ring_ms },
            );
            let autopause = self.queues.get(queue).is_some_and(|q| q.config.autopause);
            if autopause {
                let _ = self.set_paused(now, agent, Some(queue), "Auto-Pause", true);
            }
        }
    }

    fn attempt_timed_out(&mut self, now: Instant, id: &CallId) {
        self.stop_ringing(now, id, true, None);
        self.end_attempt(now, id);
    }

    fn no_answer(&mut self, now: Instant, id: &CallId, agent: &AgentId) -> Result<(), AcdError> {
        let call = self
            .calls
            .get_mut(id)
            .ok_or_else(|| AcdError::UnknownCall(id.clone()))?;
        let queue = call.queue.clone();
        let not_ringing = || AcdError::NotRinging {
            call: id.clone(),
            agent: agent.clone(),
        };
        let CallState::Ringing { attempt, .. } = &mut call.state else {
            return Err(not_ringing());
        };
        let (i, since) = attempt
            .ringing_agent(self.agents.num(agent))
            .ok_or_else(not_ringing)?;
        if let Some(c) = attempt.candidates.get_mut(i) {
            c.tried = Tried::Done;
        }
        let still_ringing = attempt.is_ringing();
        let rang = now.saturating_duration_since(since);
        self.member_stops_ringing(now, id, &queue, agent, Some(rang));
        let ring_all = self
            .queues
            .get(&queue)
            .is_some_and(|q| q.config.strategy == Strategy::RingAll);
        if still_ringing {
            return Ok(());
        }
        // Others: ring the next best now; ringall: the attempt is over.
        if ring_all || !self.ring_one(now, id) {
            self.end_attempt(now, id);
        }
        Ok(())
    }

    fn answered(
        &mut self,
        now: Instant,
        id: CallId,
        agent: AgentId,
        member_uniqueid: String,
    ) -> Result<(), AcdError> {
        let call = self
            .calls
            .get(&id)
            .ok_or_else(|| AcdError::UnknownCall(id.clone()))?;
        let num = self.agents.num(&agent);
        let ring_start = match &call.state {
            CallState::Ringing { attempt, .. } => attempt
                .ringing_agent(num)
                .and_then(|(i, t)| Some((attempt.candidates.get(i)?.member, t))),
            _ => None,
        };
        let Some((member, ring_start)) = ring_start else {
            return Err(AcdError::NotRinging { call: id, agent });
        };
        let queue = call.queue.clone();
        let hold = secs(now.saturating_duration_since(call.entered));
        self.stop_ringing(now, &id, false, Some(&agent));
        self.store_next(&id);
        if let Some(a) = self.agents.get_mut(&agent) {
            a.ringing.retain(|c| c != &id);
            a.on_call = Some(id.clone());
        }
        self.touch(&agent);
        if let Some(c) = self.calls.get_mut(&id) {
            let connected = CallState::Connected {
                agent: agent.clone(),
                member,
                at: now,
                hold,
            };
            if let CallState::Ringing { attempt, .. } = std::mem::replace(&mut c.state, connected) {
                attempt.keep(&mut self.spares);
            }
        }
        let mut index = None;
        if let Some(q) = self.queues.get_mut(&queue) {
            index = q.waiting.iter().position(|c| c == &id);
            if let Some(i) = index {
                q.waiting.remove(i);
                q.ringing.remove(i);
                q.entered.remove(i);
            }
            // app_queue recalc_holdtime: (3 × old + new) / 4.
            q.hold_time = (q.hold_time.saturating_mul(3).saturating_add(hold)) / 4;
            self.dirty.insert(q.pos);
        }
        self.log(
            now,
            id.as_str(),
            queue.as_str(),
            agent.as_str(),
            Event::Connect {
                hold_time: hold,
                member_uniqueid,
                ring_time: secs(now.saturating_duration_since(ring_start)),
            },
        );
        self.outputs.push_back(Output::Connect { call: id, agent });
        if let Some(i) = index {
            self.announce_behind(now, &queue, i);
        }
        Ok(())
    }

    fn complete(&mut self, now: Instant, id: &CallId, by_caller: bool) -> Result<(), AcdError> {
        let call = self
            .calls
            .get(id)
            .ok_or_else(|| AcdError::UnknownCall(id.clone()))?;
        let CallState::Connected {
            agent,
            member,
            at,
            hold,
        } = &call.state
        else {
            return Err(AcdError::NotConnected(id.clone()));
        };
        let (agent, member, at, hold) = (agent.clone(), *member, *at, *hold);
        let queue = call.queue.clone();
        let original_position = call.original_position;
        let call_time = secs(now.saturating_duration_since(at));
        let event = if by_caller {
            Event::CompleteCaller {
                hold_time: hold,
                call_time,
                original_position,
            }
        } else {
            Event::CompleteAgent {
                hold_time: hold,
                call_time,
                original_position,
            }
        };
        self.log(now, id.as_str(), queue.as_str(), agent.as_str(), event);
        self.calls.remove(id);
        self.ruled.remove(id);
        let mut wrap_up = Duration::ZERO;
        let num = self.agents.num(&agent);
        if let Some(q) = self.queues.get_mut(&queue) {
            wrap_up = q.config.wrap_up;
            let i = match q.members.get(member as usize) {
                Some(m) if Some(m.num) == num => Some(member as usize),
                _ => q.members.iter().position(|m| Some(m.num) == num),
            };
            if let Some(m) = i.and_then(|i| q.members.get_mut(i)) {
                m.calls = m.calls.saturating_add(1);
                m.last_call = Some(now);
            }
        }
        if let Some(a) = self.agents.get_mut(&agent) {
            a.on_call = None;
            if !wrap_up.is_zero() {
                a.wrap_up_until = Some(now + wrap_up);
                self.wrap_ends.insert((now + wrap_up, agent.clone()));
            }
        }
        self.touch(&agent);
        if !wrap_up.is_zero() && self.agents.contains_key(&agent) {
            self.log(
                now,
                id.as_str(),
                queue.as_str(),
                agent.as_str(),
                Event::WrapUpStart {
                    wrap_up: secs(wrap_up),
                },
            );
        }
        self.outputs.push_back(Output::Ended { call: id.clone() });
        Ok(())
    }

    /// A waiting (or ringing) caller leaves: stop ringing, log, forget.
    fn remove_waiting(&mut self, now: Instant, id: &CallId, event: impl FnOnce(Exit) -> Event) {
        self.stop_ringing(now, id, false, None);
        let Some(mut call) = self.calls.remove(id) else {
            return;
        };
        let waiting = CallState::Waiting { retry_at: None };
        if let CallState::Ringing { attempt, .. } = std::mem::replace(&mut call.state, waiting) {
            attempt.keep(&mut self.spares);
        }
        self.ruled.remove(id);
        let mut position = 0;
        let mut index = None;
        if let Some(q) = self.queues.get_mut(&call.queue) {
            index = q.waiting.iter().position(|c| c == id);
            if let Some(i) = index {
                q.waiting.remove(i);
                q.ringing.remove(i);
                q.entered.remove(i);
                position = position_u32(i);
            }
            self.dirty.insert(q.pos);
        }
        let exit = Exit {
            position,
            original_position: call.original_position,
            wait_time: secs(now.saturating_duration_since(call.entered)),
        };
        self.log(now, id.as_str(), call.queue.as_str(), NONE, event(exit));
        if let Some(i) = index {
            self.announce_behind(now, &call.queue, i);
        }
    }

    fn exit_waiting(&mut self, now: Instant, id: &CallId, reason: Leave) {
        let event = match reason {
            Leave::Timeout => Event::ExitWithTimeout,
            Leave::Empty => Event::ExitEmpty,
        };
        self.remove_waiting(now, id, event);
        self.outputs.push_back(Output::Left {
            call: id.clone(),
            reason,
        });
    }

    fn caller_gone(
        &mut self,
        now: Instant,
        id: CallId,
        key: Option<String>,
    ) -> Result<(), AcdError> {
        let call = self
            .calls
            .get(&id)
            .ok_or_else(|| AcdError::UnknownCall(id.clone()))?;
        if matches!(call.state, CallState::Connected { .. }) {
            return self.complete(now, &id, true);
        }
        match key {
            None => self.remove_waiting(now, &id, Event::Abandon),
            Some(key) => self.remove_waiting(now, &id, |exit| Event::ExitWithKey { key, exit }),
        }
        self.outputs.push_back(Output::Ended { call: id });
        Ok(())
    }

    fn login(
        &mut self,
        now: Instant,
        agent: AgentId,
        channel: String,
        queues: Vec<(QueueId, u32)>,
    ) -> Result<(), AcdError> {
        // XiVO-CC's agent login cases, in its order.
        let Some(holder) = self.lines.get(&channel) else {
            return Err(AcdError::UnknownLine(channel));
        };
        let holder = holder.clone();
        if let Some(a) = self.agents.get(&agent) {
            if a.channel == channel {
                // Already logged in on this line: it stays logged in, nothing changes.
                return Ok(());
            }
            return Err(AcdError::LoggedInElsewhere {
                agent,
                line: a.channel.clone(),
                requested: channel,
            });
        }
        if let Some((missing, _)) = queues.iter().find(|(q, _)| !self.queues.contains_key(q)) {
            return Err(AcdError::UnknownQueue(missing.clone()));
        }
        if let Some(previous) = holder {
            // Another agent holds the line: the newcomer takes it over.
            self.logoff(now, previous.clone())?;
            self.outputs.push_back(Output::AgentLoggedOff {
                agent: previous,
                line: channel.clone(),
            });
        }
        self.lines.insert(channel.clone(), Some(agent.clone()));
        self.touch(&agent);
        self.log(
            now,
            NONE,
            NONE,
            agent.as_str(),
            Event::AgentLogin {
                channel: channel.clone(),
            },
        );
        let num = self.intern(&agent);
        self.agents.insert(Agent {
            channel,
            login_at: now,
            device: DeviceState::NotInUse,
            ringing: Vec::new(),
            on_call: None,
            wrap_up_until: None,
            queues: Vec::new(),
            positions: Vec::new(),
            paused_in: 0,
            num,
        });
        self.sync(&agent);
        for (queue, penalty) in queues {
            let Some(q) = self.queues.get_mut(&queue) else {
                continue;
            };
            if q.members.iter().any(|m| m.num == num) {
                continue;
            }
            self.dirty.insert(q.pos);
            if let Some(a) = self.agents.get_mut(&agent)
                && let Err(i) = a.queues.binary_search(&queue)
            {
                a.queues.insert(i, queue.clone());
                a.positions.insert(i, q.pos);
            }
            q.members.push(Member {
                num,
                penalty,
                paused: false,
                calls: 0,
                last_call: None,
            });
            self.log(
                now,
                NONE,
                queue.as_str(),
                agent.as_str(),
                Event::AddMember { paused: false },
            );
        }
        Ok(())
    }

    fn logoff(&mut self, now: Instant, agent: AgentId) -> Result<(), AcdError> {
        let Some(a) = self.agents.get(&agent) else {
            return Err(AcdError::NotLoggedIn(agent));
        };
        let num = a.num;
        // Calls ringing this agent ring somebody else.
        for call in a.ringing.clone() {
            let _ = self.no_answer(now, &call, &agent);
        }
        let names: Vec<QueueId> = self.queues.keys().cloned().collect();
        for queue in names {
            let Some(q) = self.queues.get_mut(&queue) else {
                continue;
            };
            let Some(pos) = q.members.iter().position(|m| m.num == num) else {
                continue;
            };
            q.members.remove(pos);
            self.dirty.insert(q.pos);
            // app_queue queue_member_follower_removal.
            if pos < q.rr_pos {
                q.rr_pos -= 1;
            }
            self.log(
                now,
                NONE,
                queue.as_str(),
                agent.as_str(),
                Event::RemoveMember,
            );
        }
        self.touch(&agent);
        let removed = self.agents.remove(&agent);
        self.sync(&agent);
        if let Some(a) = removed {
            if let Some(holder) = self.lines.get_mut(&a.channel) {
                *holder = None;
            }
            let login_time = secs(now.saturating_duration_since(a.login_at));
            self.log(
                now,
                NONE,
                NONE,
                agent.as_str(),
                Event::AgentLogoff {
                    channel: a.channel,
                    login_time,
                },
            );
        }
        Ok(())
    }

    fn set_paused(
        &mut self,
        now: Instant,
        agent: &AgentId,
        queue: Option<&QueueId>,
        reason: &str,
        paused: bool,
    ) -> Result<(), AcdError> {
        let Some(num) = self.agents.get(agent).map(|a| a.num) else {
            return Err(AcdError::NotLoggedIn(agent.clone()));
        };
        self.touch_num(num);
        let event = |reason: &str| {
            let reason = reason.to_owned();
            if paused {
                Event::Pause { reason }
            } else {
                Event::Unpause { reason }
            }
        };
        match queue {
            Some(q) => {
                let member = self
                    .queues
                    .get_mut(q)
                    .ok_or_else(|| AcdError::UnknownQueue(q.clone()))?
                    .members
                    .iter_mut()
                    .find(|m| m.num == num);
                let Some(member) = member else {
                    return Err(AcdError::NotAMember {
                        agent: agent.clone(),
                        queue: q.clone(),
                    });
                };
                let was = std::mem::replace(&mut member.paused, paused);
                if let Some(a) = self.agents.at_mut(num) {
                    a.paused_in = match (was, paused) {
                        (false, true) => a.paused_in + 1,
                        (true, false) => a.paused_in.saturating_sub(1),
                        _ => a.paused_in,
                    };
                }
                self.log(now, NONE, q.as_str(), agent.as_str(), event(reason));
            }
            None => {
                let all = if paused {
                    Event::PauseAll {
                        reason: reason.to_owned(),
                    }
                } else {
                    Event::UnpauseAll {
                        reason: reason.to_owned(),
                    }
                };
                self.log(now, NONE, NONE, agent.as_str(), all);
                // The agent's queues, in name order as the queue table, and their
                // positions. Taken out of the agent meanwhile (logging reads no agent)
                // rather than copied.
                let (names, positions) = self
                    .agents
                    .at_mut(num)
                    .map(|a| {
                        (
                            std::mem::take(&mut a.queues),
                            std::mem::take(&mut a.positions),
                        )
                    })
                    .unwrap_or_default();
                for (name, &pos) in names.iter().zip(&positions) {
                    if let Some(m) = self
                        .queues
                        .at_mut(pos)
                        .and_then(|q| q.members.iter_mut().find(|m| m.num == num))
                    {
                        m.paused = paused;
                    }
                    self.log(now, NONE, name.as_str(), agent.as_str(), event(reason));
                }
                if let Some(a) = self.agents.at_mut(num) {
                    a.paused_in = if paused { positions.len() } else { 0 };
                    a.queues = names;
                    a.positions = positions;
                }
            }
        }
        Ok(())
    }
}

/// app_queue find_best: the untried candidate with the lowest metric (the first one on
/// a tie).
fn find_best(candidates: &[Candidate]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, c) in candidates.iter().enumerate() {
        if c.tried == Tried::Untried && best.is_none_or(|b| c.metric < candidates[b].metric) {
            best = Some(i);
        }
    }
    best
}
