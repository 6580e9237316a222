//! Calls in queues: the engine executes what pbxkit-acd decides.
//!
//! A caller reaching a queue ([`Decision::Queue`](pbxkit_dialplan::Decision::Queue))
//! is offered to the ACD ([`Acd`]) first; a caller it refuses (closed, full,
//! nobody to take the call, a diversion) goes to the queue's no-answer destination
//! without being answered. One it lets in is answered by the PBX with music on hold
//! ([`Media::queue_wait`](super::Media::queue_wait)). The ACD's `Ring` rings the
//! agent's phone (an outgoing leg with the caller's media,
//! [`Media::queue_offer`](super::Media::queue_offer)), its `StopRinging` cancels
//! it; an agent that answers is reported to the ACD, whose `Connect` bridges it
//! with the caller ([`Media::queue_connect`](super::Media::queue_connect)) and
//! whose refusal (the caller is gone, another agent was first) hangs it up. The
//! caller is told its position and expected wait when the ACD says so
//! ([`Media::queue_announce`](super::Media::queue_announce)). The
//! queue's timeout (`Left`) sends the caller to the no-answer destination, rung
//! like a blind transfer's target; without one the caller is hung up. How the
//! call ends is told to the ACD: `ABANDON` while waiting, `COMPLETECALLER` or
//! `COMPLETEAGENT` once connected. The ACD's `queue_log` lines leave the engine as
//! [`Event::QueueLog`]; each queue the ACD changed is reported with its live
//! statistics ([`Event::QueueStatus`]) and each agent whose state changed with
//! its state ([`Event::AgentStatus`]); [`Engine::queue_stats`] and
//! [`Engine::agent_stats`] read them at any time.
//!
//! Agents log in and out, pause and unpause through [`Engine::agent`] (the
//! feature codes `*31`, `*32`, `*34`, `*35`, later the API): an agent logged in
//! from a user's phone rings at that user's lines.

use super::call::{Queued, Ringing};
use super::{AnyLeg, CallId, Directory, Engine, Event, LegId, release};
use crate::hangup::{HangupCause, Party};
use pbxkit_acd::queue_log::{Line, Sink};
use pbxkit_acd::{Acd, AcdError, AgentId, Input, Output, QueueConfig, SeededRng};
use pbxkit_sip::StatusCode;
use pbxkit_sip::b2bua::{Leg, LegEvent};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// A queue as the engine runs it: the ACD's settings and where its callers go
/// when they are refused or time out.
#[derive(Debug, Clone)]
pub struct QueueSetup {
    /// The ACD's settings (its `name` is the dialplan queue's name).
    pub acd: QueueConfig,
    /// The number dialled (in the `default` context) for callers refused or timed
    /// out; `None`: they are refused (busy) or hung up.
    pub no_answer: Option<String>,
    /// The music-on-hold class its callers hear ([`Media::queue_wait`](super::Media::queue_wait));
    /// `None`: the media's own.
    pub music: Option<String>,
}

/// What changes an agent, from a feature code or the API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentCommand {
    /// The agent logs in on `user`'s phone, a member of these queues with these
    /// penalties.
    Login {
        /// The agent's number.
        agent: String,
        /// The user whose lines ring for the agent.
        user: String,
        /// `(queue, penalty)` memberships.
        queues: Vec<(String, u32)>,
    },
    /// The agent logs off.
    Logoff {
        /// The agent's number.
        agent: String,
    },
    /// The agent pauses (`Some(reason)`) or unpauses (`None`), in one queue or in
    /// every queue.
    Pause {
        /// The agent's number.
        agent: String,
        /// The queue's name; `None`: every queue (`PAUSEALL`/`UNPAUSEALL`).
        queue: Option<String>,
        /// Why, when pausing.
        reason: Option<String>,
    },
}

/// The ACD's `queue_log` lines, collected for [`Event::QueueLog`].
#[derive(Debug, Default)]
pub(super) struct Lines(VecDeque<Line>);

impl Sink for Lines {
    fn write(&mut self, line: Line) {
        self.0.push_back(line);
    }
}

/// The call centre inside the engine.
#[derive(Debug)]
pub(super) struct CallCentre {
    acd: Acd<Lines, SeededRng>,
    /// How each queue's refused and timed-out callers leave, by name.
    no_answer: HashMap<String, Option<String>>,
    /// Each queue's music-on-hold class, by name.
    music: HashMap<String, String>,
    /// The queues' names in configuration order.
    order: Vec<String>,
    /// Logged-in agents (`Agent/<number>`) and the user whose phone rings.
    agents: HashMap<AgentId, String>,
    /// Calls in queues, by the ACD's id for them.
    calls: HashMap<pbxkit_acd::CallId, CallId>,
    /// Numbers the ACD's call ids.
    next: u64,
    /// Queues and agents the ACD changed since their status was last reported.
    touched_queues: Vec<pbxkit_acd::QueueId>,
    touched_agents: Vec<AgentId>,
    /// Each agent's state as last reported ([`Event::AgentStatus`]).
    reported: HashMap<AgentId, pbxkit_acd::AgentState>,
    /// How long the ACD's steps took, decision and execution
    /// ([`Engine::acd_latencies`]).
    latencies: super::Latencies,
    /// How long the ACD's decisions took, inside pbxkit-acd
    /// ([`Engine::acd_decisions`]).
    decisions: super::Latencies,
    /// Timed steps in progress (a step inside another is part of it).
    timing: u32,
    /// The time the step in progress spent in the media, left out of it.
    media_time: std::time::Duration,
}

/// One queue's live statistics ([`Engine::queue_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Its gauges and the day's counters.
    pub live: pbxkit_acd::live::QueueLive,
}

/// One agent's live statistics ([`Engine::agent_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStats {
    /// The agent's number.
    pub agent: String,
    /// The user whose phone it is logged in on, if it is.
    pub phone: Option<String>,
    /// Its state now.
    pub state: pbxkit_acd::AgentState,
    /// Its times per state and call counts since the day began (`None`: not seen
    /// today).
    pub live: Option<pbxkit_acd::live::AgentLive>,
}

/// The ACD's name of agent `number`.
fn agent_id(number: &str) -> AgentId {
    AgentId::from(format!("Agent/{number}").as_str())
}

/// The agent's number in an ACD name.
fn agent_number(id: &AgentId) -> String {
    let name = id.to_string();
    name.strip_prefix("Agent/").unwrap_or(&name).to_owned()
}

impl CallCentre {
    pub(super) fn new(queues: &[QueueSetup], now: Instant, unix: u64, seed: u64) -> CallCentre {
        let mut acd = Acd::new(Lines::default(), SeededRng::new(seed), now, unix);
        let mut no_answer = HashMap::new();
        let mut music = HashMap::new();
        let mut order = Vec::new();
        for q in queues {
            // Names are unique in a checked configuration: a duplicate is skipped.
            if acd.add_queue(q.acd.clone()).is_ok() {
                no_answer.insert(q.acd.name.to_string(), q.no_answer.clone());
                if let Some(class) = &q.music {
                    music.insert(q.acd.name.to_string(), class.clone());
                }
                order.push(q.acd.name.to_string());
            }
        }
        CallCentre {
            acd,
            no_answer,
            music,
            order,
            agents: HashMap::new(),
            calls: HashMap::new(),
            next: 0,
            touched_queues: Vec::new(),
            touched_agents: Vec::new(),
            reported: HashMap::new(),
            latencies: super::Latencies::default(),
            decisions: super::Latencies::default(),
            timing: 0,
            media_time: std::time::Duration::ZERO,
        }
    }

    fn touch_queue(&mut self, name: &str) {
        if name != "NONE" && !self.touched_queues.iter().any(|q| q.as_str() == name) {
            self.touched_queues.push(name.into());
        }
    }

    fn touch_agent(&mut self, agent: &AgentId) {
        if !self.touched_agents.contains(agent) {
            self.touched_agents.push(agent.clone());
        }
    }

    /// Whether a queue of this name runs.
    pub(super) fn has_queue(&self, name: &str) -> bool {
        self.no_answer.contains_key(name)
    }

    /// Whether no call is queued or connected through a queue.
    pub(super) fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.acd.active_calls() == 0
    }

    /// The agent logged in on `user`'s phone.
    pub(super) fn agent_of(&self, user: &str) -> Option<String> {
        self.agents
            .iter()
            .find(|(_, u)| *u == user)
            .map(|(a, _)| agent_number(a))
    }

    /// The user whose phone agent `number` is logged in on.
    pub(super) fn phone_of(&self, number: &str) -> Option<&str> {
        self.agents.get(&agent_id(number)).map(String::as_str)
    }

    /// The state of agent `number`, as the ACD sees it.
    pub(super) fn agent_state(&self, number: &str, now: Instant) -> pbxkit_acd::AgentState {
        self.acd.agent_state(&agent_id(number), now)
    }

    /// Callers waiting in queue `name`.
    pub(super) fn waiting(&self, name: &str) -> usize {
        self.acd.waiting(&pbxkit_acd::QueueId::from(name))
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.acd.poll_timeout()
    }

    /// A new call id for the queue_log (`<unix>.<n>`, as Asterisk's uniqueids).
    fn mint(&mut self, unix: u64) -> String {
        self.next += 1;
        format!("{unix}.{}", self.next)
    }

    /// Gives the ACD `input`, timing its decision.
    fn decide(&mut self, now: Instant, input: Input) -> Result<(), AcdError> {
        let start = std::time::Instant::now();
        let r = self.acd.handle_input(now, input);
        self.decisions.record(start.elapsed());
        r
    }

    /// Runs the ACD's timers, timing its decision.
    fn decide_timeout(&mut self, now: Instant) {
        let start = std::time::Instant::now();
        self.acd.handle_timeout(now);
        self.decisions.record(start.elapsed());
    }
}

impl<D: Directory> Engine<D> {
    /// Applies an agent command: its `queue_log` lines and what it changes for
    /// calls waiting follow as the engine's outputs.
    pub fn agent(&mut self, command: AgentCommand, now: Instant) -> Result<(), AcdError> {
        let result = self.timed(|e| e.agent_step(command, now));
        self.drive(now);
        result
    }

    fn agent_step(&mut self, command: AgentCommand, now: Instant) -> Result<(), AcdError> {
        let result = match command {
            AgentCommand::Login {
                agent,
                user,
                queues,
            } => {
                let id = agent_id(&agent);
                self.centre.acd.add_line(&user);
                let r = self.centre.decide(
                    now,
                    Input::AgentLogin {
                        agent: id.clone(),
                        channel: user.clone(),
                        queues: queues
                            .into_iter()
                            .map(|(q, penalty)| (q.as_str().into(), penalty))
                            .collect(),
                    },
                );
                if r.is_ok() {
                    self.centre.agents.insert(id, user);
                }
                r
            }
            AgentCommand::Logoff { agent } => {
                let id = agent_id(&agent);
                let r = self
                    .centre
                    .decide(now, Input::AgentLogoff { agent: id.clone() });
                if r.is_ok() {
                    self.centre.agents.remove(&id);
                }
                r
            }
            AgentCommand::Pause {
                agent,
                queue,
                reason,
            } => {
                let agent = agent_id(&agent);
                let queue = queue.map(|q| pbxkit_acd::QueueId::from(q.as_str()));
                let input = match reason {
                    Some(reason) => Input::Pause {
                        agent,
                        queue,
                        reason,
                    },
                    None => Input::Unpause {
                        agent,
                        queue,
                        reason: String::new(),
                    },
                };
                self.centre.decide(now, input)
            }
        };
        self.acd_outputs(now);
        result
    }

    /// How long the ACD's steps have taken on the real clock since the start: each
    /// input it is given (a caller arriving or leaving, an agent answering, logging
    /// in, pausing...) or timer it runs, from its decision to the engine's carrying
    /// it out (the agents' phones rung, the caller answered, the queue_log lines and
    /// statuses reported), not counting the time spent in the [`Media`](super::Media)
    /// (binding ports, starting relays: I/O, whatever decided it). Statistics only:
    /// nothing the engine decides depends on the real clock.
    pub fn acd_latencies(&self) -> &super::Latencies {
        &self.centre.latencies
    }

    /// A new call id for the queue_log lines of a group's call.
    pub(super) fn log_call_id(&mut self, now: Instant) -> String {
        let unix = self.unix(now);
        self.centre.mint(unix)
    }

    /// How long the ACD's decisions alone have taken on the real clock: the time
    /// inside pbxkit-acd of each step of [`Engine::acd_latencies`] (the crate's
    /// own bench measures the same thing).
    pub fn acd_decisions(&self) -> &super::Latencies {
        &self.centre.decisions
    }

    /// Runs `step`, timing it on the real clock unless it is part of a step
    /// already timed.
    fn timed<R>(&mut self, step: impl FnOnce(&mut Self) -> R) -> R {
        if self.centre.timing == 0 {
            self.centre.media_time = std::time::Duration::ZERO;
        }
        self.centre.timing += 1;
        let start = std::time::Instant::now();
        let r = step(self);
        self.centre.timing -= 1;
        if self.centre.timing == 0 {
            let took = start.elapsed().saturating_sub(self.centre.media_time);
            self.centre.latencies.record(took);
        }
        r
    }

    /// Runs `f` on the media; in a timed step, its time is left out of the step.
    fn in_media<R>(&mut self, f: impl FnOnce(&mut (dyn super::Media + Send)) -> R) -> R {
        let start = std::time::Instant::now();
        let r = f(self.media.as_mut());
        if self.centre.timing > 0 {
            self.centre.media_time += start.elapsed();
        }
        r
    }

    /// A configuration reload: queues already running take their new settings
    /// (their callers and agents stay; the next ring attempt follows them), new
    /// ones start. A queue no longer configured keeps running until the restart
    /// (its callers are not cut off); it is returned so the PBX can say so.
    pub fn set_queues(&mut self, queues: &[QueueSetup]) -> Vec<String> {
        for q in queues {
            let name = q.acd.name.to_string();
            let applied = if self.centre.has_queue(&name) {
                self.centre.acd.set_queue_config(q.acd.clone())
            } else {
                self.centre.acd.add_queue(q.acd.clone()).map(|()| {
                    self.centre.order.push(name.clone());
                })
            };
            if applied.is_ok() {
                match &q.music {
                    Some(class) => self.centre.music.insert(name.clone(), class.clone()),
                    None => self.centre.music.remove(&name),
                };
                self.centre.no_answer.insert(name, q.no_answer.clone());
            }
        }
        self.centre
            .order
            .iter()
            .filter(|name| !queues.iter().any(|q| q.acd.name.as_str() == name.as_str()))
            .cloned()
            .collect()
    }

    /// Sets agent `agent`'s skills (configuration: they hold across logins), read
    /// by the queues' skill rules.
    pub fn set_agent_skills(
        &mut self,
        agent: &str,
        skills: std::collections::BTreeMap<String, i64>,
    ) {
        self.centre.acd.set_agent_skills(agent_id(agent), skills);
    }

    /// The agent logged in on `user`'s phone, if any.
    pub fn agent_on_phone(&self, user: &str) -> Option<String> {
        self.centre.agent_of(user)
    }

    /// The user whose phone agent `agent` is logged in on, if it is.
    pub fn agent_phone(&self, agent: &str) -> Option<&str> {
        self.centre.phone_of(agent)
    }

    /// Agent `agent`'s state as the ACD sees it now.
    pub fn agent_state(&self, agent: &str, now: Instant) -> pbxkit_acd::AgentState {
        self.centre.agent_state(agent, now)
    }

    /// Callers waiting in queue `queue`.
    pub fn queue_waiting(&self, queue: &str) -> usize {
        self.centre.waiting(queue)
    }

    /// Every queue's live statistics at `now`, in configuration order.
    pub fn queue_stats(&self, now: Instant) -> Vec<QueueStats> {
        self.centre
            .order
            .iter()
            .filter_map(|name| {
                let live = self
                    .centre
                    .acd
                    .queue_live(&pbxkit_acd::QueueId::from(name.as_str()), now)?;
                Some(QueueStats {
                    queue: name.clone(),
                    live,
                })
            })
            .collect()
    }

    /// Agent `agent`'s live statistics at `now` (any agent number: one never
    /// logged in is logged out, with no times).
    pub fn agent_stats(&self, agent: &str, now: Instant) -> AgentStats {
        let id = agent_id(agent);
        AgentStats {
            agent: agent.to_owned(),
            phone: self.centre.phone_of(agent).map(str::to_owned),
            state: self.centre.acd.agent_state(&id, now),
            live: self.centre.acd.agent_live(&id, now),
        }
    }

    /// Starts a new statistics day (the PBX calls it at local midnight): the
    /// queues' counters and the agents' times start again from zero.
    pub fn reset_queue_stats(&mut self, now: Instant) {
        self.centre.acd.reset_live_stats(now);
    }

    /// The ACD's timers due at `now`.
    pub(super) fn acd_timeout(&mut self, now: Instant) {
        if self.centre.poll_timeout().is_some_and(|t| t <= now) {
            self.timed(|e| {
                e.centre.decide_timeout(now);
                e.acd_outputs(now);
            });
        }
    }

    /// Feeds the ACD; an input it refuses is one the call already moved past (an
    /// agent answering a call that just ended).
    fn acd_input(&mut self, input: Input, now: Instant) -> Result<(), AcdError> {
        self.timed(|e| {
            let r = e.centre.decide(now, input);
            e.acd_outputs(now);
            r
        })
    }

    /// Carries out what the ACD decided, and reports its `queue_log` lines and
    /// the status of the queues and agents it changed.
    fn acd_outputs(&mut self, now: Instant) {
        while let Some(output) = self.centre.acd.poll_output() {
            self.execute(output, now);
        }
        self.queue_log();
        self.report_status(now);
    }

    /// The ACD's `queue_log` lines, as events.
    fn queue_log(&mut self) {
        while let Some(line) = self.centre.acd.sink_mut().0.pop_front() {
            self.centre.touch_queue(&line.queue);
            if line.agent != "NONE" {
                self.centre.touch_agent(&AgentId::from(line.agent.as_str()));
            }
            self.events.push_back(Event::QueueLog(line));
        }
    }

    /// [`Event::QueueStatus`] for each queue the ACD changed, [`Event::AgentStatus`]
    /// for each agent whose state it changed.
    fn report_status(&mut self, now: Instant) {
        for queue in std::mem::take(&mut self.centre.touched_queues) {
            if let Some(live) = self.centre.acd.queue_live(&queue, now) {
                self.events.push_back(Event::QueueStatus(QueueStats {
                    queue: queue.to_string(),
                    live,
                }));
            }
        }
        for agent in std::mem::take(&mut self.centre.touched_agents) {
            let state = self.centre.acd.agent_state(&agent, now);
            let before = self.centre.reported.insert(agent.clone(), state);
            if state == pbxkit_acd::AgentState::LoggedOut {
                self.centre.reported.remove(&agent);
            }
            if before.unwrap_or(pbxkit_acd::AgentState::LoggedOut) != state {
                self.events.push_back(Event::AgentStatus {
                    agent: agent_number(&agent),
                    state,
                });
            }
        }
    }

    /// Carries out one decision of the ACD.
    fn execute(&mut self, output: Output, now: Instant) {
        match output {
            Output::Ring { call, agent } => {
                self.centre.touch_agent(&agent);
                if let Some(c) = self.centre.calls.get(&call).copied() {
                    self.ring_agent(c, agent, now);
                }
            }
            Output::StopRinging { call, agent } => {
                self.centre.touch_agent(&agent);
                if let Some(c) = self.centre.calls.get(&call).copied() {
                    self.stop_agent(c, &agent, now);
                }
            }
            Output::Connect { call, agent } => {
                self.centre.touch_agent(&agent);
                if let Some(c) = self.centre.calls.get(&call).copied() {
                    self.connect_agent(c, &agent, now);
                }
            }
            Output::Refused { call, .. } | Output::Left { call, .. } => {
                if let Some(c) = self.centre.calls.get(&call).copied() {
                    self.leave_queue(c, now);
                }
            }
            Output::Announce {
                call,
                position,
                expected_wait,
            } => {
                if let Some(c) = self.centre.calls.get(&call).copied() {
                    self.in_media(|m| m.queue_announce(c, position, expected_wait));
                }
            }
            Output::Ended { call } => {
                self.centre.calls.remove(&call);
            }
            Output::AgentLoggedOff { agent, .. } => {
                self.centre.touch_agent(&agent);
                self.centre.agents.remove(&agent);
            }
            Output::WrapUpEnded { agent } => self.centre.touch_agent(&agent),
            _ => {}
        }
    }

    /// `call` reaches queue `name`: the ACD lets it in (the caller is answered with
    /// music on hold) or refuses it.
    pub(super) fn enter_queue(&mut self, call: CallId, name: &str, now: Instant) {
        self.timed(|e| e.enter(call, name, now));
    }

    fn enter(&mut self, call: CallId, name: &str, now: Instant) {
        if !self.centre.has_queue(name) {
            self.refuse(call, StatusCode::NOT_FOUND, now);
            return;
        }
        let Some(offer) = self.a_offer(call) else {
            // A late offer: nothing to play music on.
            self.refuse(call, StatusCode::NOT_ACCEPTABLE_HERE, now);
            return;
        };
        let Some(c) = self.calls.get(call.0) else {
            return;
        };
        let caller_id = c.caller().to_owned();
        let unix = self.unix(now);
        let id = pbxkit_acd::CallId::from(self.centre.mint(unix).as_str());
        self.centre.calls.insert(id.clone(), call);
        if let Some(c) = self.calls.get_mut(call.0) {
            c.queue = Some(Queued {
                name: name.to_owned(),
                id: id.clone(),
                ringing: Vec::new(),
                answered: false,
                connected: false,
            });
        }
        let entered = self.centre.decide(
            now,
            Input::CallArrived {
                call: id.clone(),
                queue: name.into(),
                caller_id,
                priority: 0,
                options: Default::default(),
            },
        );
        if entered.is_err() {
            self.centre.calls.remove(&id);
            if let Some(c) = self.calls.get_mut(call.0) {
                c.queue = None;
            }
            self.refuse(call, StatusCode::SERVICE_UNAVAILABLE, now);
            return;
        }
        let mut decided = Vec::new();
        while let Some(output) = self.centre.acd.poll_output() {
            decided.push(output);
        }
        let refused = decided
            .iter()
            .any(|o| matches!(o, Output::Refused { call, .. } if *call == id));
        // The caller is answered with music before the ACD's first decisions are
        // carried out (an agent rung at once gets the caller's media); one refused
        // at once (JOINEMPTY, FULL, a diversion) is not answered.
        if !refused {
            let music = self.centre.music.get(name).cloned();
            match self.in_media(|m| m.queue_wait(call, music.as_deref(), &offer)) {
                Ok(sdp) => {
                    if let Some(c) = self.calls.get_mut(call.0) {
                        c.queue_answered(name);
                        if let Some(q) = c.queue.as_mut() {
                            q.answered = true;
                        }
                    }
                    self.events.push_back(Event::CallAnswered {
                        call,
                        callee: name.to_owned(),
                    });
                    self.with_a(call, |a, now| a.answer(Some(sdp), now), now);
                }
                Err(status) => {
                    // No media to wait on: the caller leaves the queue at once.
                    self.centre.calls.remove(&id);
                    if let Some(c) = self.calls.get_mut(call.0) {
                        c.queue = None;
                    }
                    let _ = self.centre.decide(now, Input::CallerHungUp { call: id });
                    self.acd_outputs(now);
                    self.refuse(call, status, now);
                    return;
                }
            }
        }
        for output in decided {
            self.execute(output, now);
        }
        self.acd_outputs(now);
    }

    /// Rings `agent`'s phone for the caller of `call`.
    fn ring_agent(&mut self, call: CallId, agent: AgentId, now: Instant) {
        let Some(user) = self.centre.agents.get(&agent).cloned() else {
            self.agent_no_answer(call, &agent, now);
            return;
        };
        let lines: Vec<String> = self
            .dialplan
            .user(&user)
            .map_or_else(|| vec![user.clone()], |u| u.lines.clone());
        let contacts: Vec<_> = lines
            .iter()
            .flat_map(|line| self.directory.contacts(line))
            .map(|(uri, target)| (user.clone(), uri, target))
            .collect();
        let Some(c) = self.calls.get(call.0) else {
            return;
        };
        if contacts.is_empty() || c.is_ended() {
            self.agent_no_answer(call, &agent, now);
            return;
        }
        let caller = c.caller_id().clone();
        let offer = self
            .in_media(|m| m.queue_offer(call))
            .or_else(|| self.a_offer(call));
        let number = agent_number(&agent);
        let (leg, _) = self.dial(&caller, &number, offer, contacts, now);
        let key = leg.key();
        let Some(id) = self.add_leg(call, AnyLeg::Outgoing(Box::new(leg))) else {
            self.agent_no_answer(call, &agent, now);
            return;
        };
        self.routes.insert(key, id);
        // The agent's phone holds one of its user's calls while it rings.
        *self.in_use.entry(user.clone()).or_default() += 1;
        let mut users = Vec::new();
        if let Some(q) = self.calls.get_mut(call.0).and_then(|c| c.queue.as_mut()) {
            q.ringing.push(Ringing {
                agent,
                leg: id,
                user: user.clone(),
            });
            for r in &q.ringing {
                if !users.contains(&r.user) {
                    users.push(r.user.clone());
                }
            }
            let queue = q.name.clone();
            self.events.push_back(Event::CallRinging {
                call,
                users,
                group: Some(queue),
            });
        }
    }

    /// The ACD is told `agent` did not take `call`.
    fn agent_no_answer(&mut self, call: CallId, agent: &AgentId, now: Instant) {
        let Some(id) = self.queue_id(call) else {
            return;
        };
        let _ = self.acd_input(
            Input::MemberNoAnswer {
                call: id,
                agent: agent.clone(),
            },
            now,
        );
    }

    fn queue_id(&self, call: CallId) -> Option<pbxkit_acd::CallId> {
        self.calls
            .get(call.0)
            .and_then(|c| c.queue.as_ref())
            .map(|q| q.id.clone())
    }

    /// Takes `agent`'s ringing leg off `call`, its user's count given back.
    fn take_ringing(&mut self, call: CallId, agent: &AgentId) -> Option<Ringing> {
        let q = self.calls.get_mut(call.0)?.queue.as_mut()?;
        let i = q.ringing.iter().position(|r| r.agent == *agent)?;
        let r = q.ringing.remove(i);
        release(&mut self.in_use, &r.user);
        Some(r)
    }

    /// The ACD stops ringing `agent` for `call`.
    fn stop_agent(&mut self, call: CallId, agent: &AgentId, now: Instant) {
        if let Some(r) = self.take_ringing(call, agent) {
            self.hang_up_leg(r.leg, pbxkit_sip::cause::NORMAL_CLEARING, now);
            self.ringing_changed(call);
        }
    }

    /// The users still rung for `call` are reported.
    fn ringing_changed(&mut self, call: CallId) {
        let Some(q) = self.calls.get(call.0).and_then(|c| c.queue.as_ref()) else {
            return;
        };
        if q.connected {
            return;
        }
        let mut users: Vec<String> = Vec::new();
        for r in &q.ringing {
            if !users.contains(&r.user) {
                users.push(r.user.clone());
            }
        }
        let queue = q.name.clone();
        self.events.push_back(Event::CallRinging {
            call,
            users,
            group: Some(queue),
        });
    }

    /// Whether `leg` is an agent's phone ringing for `call`.
    pub(super) fn is_agent_leg(&self, call: CallId, leg: LegId) -> bool {
        self.calls
            .get(call.0)
            .and_then(|c| c.queue.as_ref())
            .is_some_and(|q| q.ringing.iter().any(|r| r.leg == leg))
    }

    /// What an agent's ringing leg tells its call.
    pub(super) fn agent_event(&mut self, call: CallId, leg: LegId, event: LegEvent, now: Instant) {
        let Some(q) = self.calls.get(call.0).and_then(|c| c.queue.as_ref()) else {
            return;
        };
        let Some(r) = q.ringing.iter().find(|r| r.leg == leg) else {
            return;
        };
        let (agent, id) = (r.agent.clone(), q.id.clone());
        match event {
            LegEvent::Answered { sdp, .. } => {
                if let Some(c) = self.calls.get_mut(call.0) {
                    c.agent_sdp = sdp;
                }
                let unix = self.unix(now);
                let member_uniqueid = self.centre.mint(unix);
                let taken = self.acd_input(
                    Input::MemberAnswered {
                        call: id,
                        agent: agent.clone(),
                        member_uniqueid,
                    },
                    now,
                );
                // Not connected (the caller left, the ACD gave the call to another):
                // the agent is hung up.
                let connected = self.calls.get(call.0).is_some_and(|c| c.b == Some(leg));
                if taken.is_err() || !connected {
                    if self.take_ringing(call, &agent).is_some() {
                        self.ringing_changed(call);
                    }
                    self.hang_up_leg(leg, pbxkit_sip::cause::NORMAL_CLEARING, now);
                }
            }
            LegEvent::Failed { .. }
            | LegEvent::Ended { .. }
            | LegEvent::NoAck
            | LegEvent::SessionExpired => self.agent_failed(call, leg, agent, id, now),
            _ => {}
        }
    }

    /// An agent's phone refused the call or stopped ringing: the ACD counts it as
    /// not answered.
    fn agent_failed(
        &mut self,
        call: CallId,
        leg: LegId,
        agent: AgentId,
        id: pbxkit_acd::CallId,
        now: Instant,
    ) {
        if self.take_ringing(call, &agent).is_some() {
            self.ringing_changed(call);
            self.hang_up_leg(leg, pbxkit_sip::cause::NORMAL_CLEARING, now);
            let _ = self.acd_input(Input::MemberNoAnswer { call: id, agent }, now);
        }
    }

    /// The ACD gives `call` to `agent`, who answered: its leg becomes the call's
    /// other side, bridged with the caller.
    fn connect_agent(&mut self, call: CallId, agent: &AgentId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(q) = c.queue.as_mut() else {
            return;
        };
        let Some(i) = q.ringing.iter().position(|r| r.agent == *agent) else {
            return;
        };
        let r = q.ringing.remove(i);
        q.connected = true;
        let queue = q.name.clone();
        let others: Vec<Ringing> = std::mem::take(&mut q.ringing);
        let sdp = c.agent_sdp.take();
        c.connect(r.leg, r.user.clone());
        // The agent keeps the count its ringing held, for the call.
        c.holds.push(r.user.clone());
        for other in others {
            release(&mut self.in_use, &other.user);
            self.hang_up_leg(other.leg, pbxkit_sip::cause::NORMAL_CLEARING, now);
        }
        if let Some(sdp) = sdp {
            self.in_media(|m| m.queue_connect(call, &sdp));
        }
        self.events.push_back(Event::AgentConnected {
            call,
            queue,
            agent: agent_number(agent),
            user: r.user,
        });
    }

    /// The caller leaves its queue without an agent (the ACD refused it or its
    /// timeout ran out): the queue's no-answer destination, else busy (not
    /// answered yet) or a hang-up.
    fn leave_queue(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(q) = c.queue.take() else {
            return;
        };
        self.centre.calls.remove(&q.id);
        for r in &q.ringing {
            release(&mut self.in_use, &r.user);
            self.hang_up_leg(r.leg, pbxkit_sip::cause::NORMAL_CLEARING, now);
        }
        let destination = self.centre.no_answer.get(&q.name).cloned().flatten();
        if !q.answered {
            match destination {
                Some(number) => self.route(call, "default", &number, 1, now),
                None => self.refuse(call, StatusCode::BUSY_HERE, now),
            }
            return;
        }
        if let Some(c) = self.calls.get_mut(call.0) {
            c.queue_left();
        }
        match destination {
            // The caller keeps hearing music until the destination answers.
            Some(number) => self.ring_for_caller(call, &number, now),
            None => self.hang_up_call(call, HangupCause::Pbx, now),
        }
    }

    /// The call ends: the ACD is told how (abandoned while waiting, completed by
    /// either side once connected), and agents still ringing stop.
    pub(super) fn queue_call_ended(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(call.0) else {
            return;
        };
        let Some(q) = c.queue.take() else {
            return;
        };
        let by_agent = matches!(
            c.outcome(),
            Some(super::Outcome::Answered(HangupCause::HungUp {
                party: Party::Callee,
                ..
            }))
        );
        for r in &q.ringing {
            release(&mut self.in_use, &r.user);
            self.hang_up_leg(r.leg, pbxkit_sip::cause::NORMAL_CLEARING, now);
        }
        let input = if q.connected && by_agent {
            Input::AgentHungUp { call: q.id }
        } else {
            Input::CallerHungUp { call: q.id }
        };
        let _ = self.acd_input(input, now);
    }

    /// Users counted for agents' phones ringing for `call` (for the count check).
    pub(super) fn agents_ringing(&self, call: CallId) -> Vec<&str> {
        self.calls
            .get(call.0)
            .and_then(|c| c.queue.as_ref())
            .map(|q| q.ringing.iter().map(|r| r.user.as_str()).collect())
            .unwrap_or_default()
    }
}
