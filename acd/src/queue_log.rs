//! The Asterisk `queue_log` format: one event a line,
//! `epoch|callid|queue|agent|EVENT|data1|data2|...`.
//!
//! [`Line`] is one parsed or generated line; [`Event`] the typed event with its data
//! fields, as app_queue (and XiVO's dialplan, for the turned-away calls) writes them.
//! `Display` prints the line exactly as Asterisk's file backend does (`%ld|%s|%s|%s|%s|%s`,
//! so an event without data ends with a `|`), and [`Line::parse`] reads lines of ours
//! and of Asterisk's files. Events this crate does not know are kept as
//! [`Event::Other`] so that files round-trip. [`LineRef`] is the borrowed form the
//! engine hands to its [`Sink`], printed the same way.
//!
//! ```
//! use pbxkit_acd::queue_log::{Event, Line};
//!
//! let line = Line::parse("1341401603|1341401601.24|q1|Agent/3001|CONNECT|2|1341401601.27|1")?;
//! assert_eq!(line.event, Event::Connect {
//!     hold_time: 2,
//!     member_uniqueid: "1341401601.27".into(),
//!     ring_time: 1,
//! });
//! assert_eq!(line.to_string(), "1341401603|1341401601.24|q1|Agent/3001|CONNECT|2|1341401601.27|1");
//! # Ok::<(), pbxkit_acd::queue_log::ParseError>(())
//! ```

use std::fmt;

/// One `queue_log` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The caller's channel unique id, or `NONE` for member events.
    pub call_id: String,
    /// The queue name, or `NONE` (agent login/logoff, `PAUSEALL`).
    pub queue: String,
    /// The member (agent) name, or `NONE` for caller events.
    pub agent: String,
    /// The event and its data fields.
    pub event: Event,
}

/// A `queue_log` event with its data fields (data1, data2, ... in order).
///
/// Times are whole seconds unless the name says otherwise; positions are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `ENTERQUEUE|url|callerid|position[|callername]`: a caller joined the queue.
    EnterQueue {
        /// The URL argument of `Queue()` (usually empty).
        url: String,
        /// The caller-ID number.
        caller_id: String,
        /// The caller's position on entry.
        position: u32,
        /// The caller-ID name (Asterisk's `log_caller_id_name` option), if logged.
        caller_name: Option<String>,
    },
    /// `CONNECT|holdtime|member uniqueid|ringtime`: a member answered.
    Connect {
        /// Seconds the caller waited.
        hold_time: u64,
        /// The unique id of the member's channel.
        member_uniqueid: String,
        /// Seconds the member rang.
        ring_time: u64,
    },
    /// `COMPLETECALLER|holdtime|calltime|origposition`: the caller hung up.
    CompleteCaller {
        /// Seconds the caller waited.
        hold_time: u64,
        /// Seconds of conversation.
        call_time: u64,
        /// The caller's position on entry.
        original_position: u32,
    },
    /// `COMPLETEAGENT|holdtime|calltime|origposition`: the member hung up.
    CompleteAgent {
        /// Seconds the caller waited.
        hold_time: u64,
        /// Seconds of conversation.
        call_time: u64,
        /// The caller's position on entry.
        original_position: u32,
    },
    /// `ABANDON|position|origposition|waittime`: the caller hung up while waiting.
    Abandon(Exit),
    /// `EXITWITHTIMEOUT|position|origposition|waittime`: the queue timeout expired.
    ExitWithTimeout(Exit),
    /// `EXITEMPTY|position|origposition|waittime`: the queue became empty (leavewhenempty).
    ExitEmpty(Exit),
    /// `EXITWITHKEY|key|position|origposition|waittime`: the caller left with a key.
    ExitWithKey {
        /// The digits pressed.
        key: String,
        /// Where the caller left.
        exit: Exit,
    },
    /// `RINGNOANSWER|ms`: a member rang without answering for this many milliseconds.
    RingNoAnswer {
        /// Milliseconds of ringing.
        ring_ms: u64,
    },
    /// `FULL|`: turned away, the queue was at maxlen (XiVO).
    Full,
    /// `CLOSED|`: turned away, the queue was closed by its schedule (XiVO).
    Closed,
    /// `JOINEMPTY|`: turned away, no member could take the call (XiVO).
    JoinEmpty,
    /// `DIVERT_CA_RATIO|`: diverted, calls/agents ratio over the threshold (XiVO).
    DivertCaRatio,
    /// `DIVERT_HOLDTIME|`: diverted, expected wait over the threshold (XiVO).
    DivertHoldTime,
    /// `ADDMEMBER|` or `ADDMEMBER|PAUSED`: a member joined the queue.
    AddMember {
        /// Whether it joined paused.
        paused: bool,
    },
    /// `REMOVEMEMBER|`: a member left the queue.
    RemoveMember,
    /// `PAUSE|reason`: a member was paused in the queue.
    Pause {
        /// The pause reason (may be empty).
        reason: String,
    },
    /// `UNPAUSE|reason`.
    Unpause {
        /// The reason (may be empty).
        reason: String,
    },
    /// `PAUSEALL|reason` (queue `NONE`): paused in every queue.
    PauseAll {
        /// The pause reason (may be empty).
        reason: String,
    },
    /// `UNPAUSEALL|reason` (queue `NONE`).
    UnpauseAll {
        /// The reason (may be empty).
        reason: String,
    },
    /// `AGENTLOGIN|channel`: an agent logged in.
    AgentLogin {
        /// The agent's channel or device.
        channel: String,
    },
    /// `AGENTLOGOFF|channel|logintime`: an agent logged off after this many seconds.
    AgentLogoff {
        /// The agent's channel or device.
        channel: String,
        /// Seconds the agent was logged in.
        login_time: u64,
    },
    /// `WRAPUPSTART|seconds`: the agent entered wrap-up for this many seconds (XiVO).
    WrapUpStart {
        /// The wrap-up time in seconds.
        wrap_up: u64,
    },
    /// Any other event, its data fields kept as read.
    Other {
        /// The event name.
        name: String,
        /// The data fields.
        data: Vec<String>,
    },
}

/// Where a waiting caller left the queue: the data of `ABANDON`, `EXITWITHTIMEOUT`,
/// `EXITEMPTY` and (after the key) `EXITWITHKEY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The caller's position when leaving.
    pub position: u32,
    /// The caller's position on entry.
    pub original_position: u32,
    /// Seconds the caller waited.
    pub wait_time: u64,
}

/// A `queue_log` line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A field the event needs is absent.
    #[error("line {line}: {event}: missing field {field}")]
    Missing {
        /// 1-based line number.
        line: usize,
        /// The event name (or `line` for the fixed fields).
        event: String,
        /// The missing field.
        field: &'static str,
    },
    /// A numeric field is not a number.
    #[error("line {line}: {event}: field {field} is not a number: {value:?}")]
    NotANumber {
        /// 1-based line number.
        line: usize,
        /// The event name (or `line` for the time).
        event: String,
        /// The field.
        field: &'static str,
        /// What it holds.
        value: String,
    },
    /// Data beyond the fields the event has.
    #[error("line {line}: {event}: unexpected data field {index}: {value:?}")]
    Unexpected {
        /// 1-based line number.
        line: usize,
        /// The event name.
        event: String,
        /// 1-based data field index.
        index: usize,
        /// What it holds.
        value: String,
    },
    /// A field holds a value the event does not allow.
    #[error("line {line}: {event}: field {field} has an invalid value: {value:?}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// The event name (or `line` for the fixed fields).
        event: String,
        /// The field.
        field: &'static str,
        /// What it holds.
        value: String,
    },
}

impl ParseError {
    /// The 1-based line number the error is on.
    pub fn line(&self) -> usize {
        match self {
            Self::Missing { line, .. }
            | Self::NotANumber { line, .. }
            | Self::Unexpected { line, .. }
            | Self::Invalid { line, .. } => *line,
        }
    }

    fn at_line(mut self, n: usize) -> Self {
        match &mut self {
            Self::Missing { line, .. }
            | Self::NotANumber { line, .. }
            | Self::Unexpected { line, .. }
            | Self::Invalid { line, .. } => *line = n,
        }
        self
    }
}

/// Writes a field, replacing the characters that would break the line (`|`, CR, LF)
/// with `_`, as Asterisk does for caller names.
fn field(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        match c {
            '|' | '\n' | '\r' => f.write_str("_")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    Ok(())
}

impl Event {
    /// The event name as written in the log (`ENTERQUEUE`, `CONNECT`, ...).
    pub fn name(&self) -> &str {
        match self {
            Self::EnterQueue { .. } => "ENTERQUEUE",
            Self::Connect { .. } => "CONNECT",
            Self::CompleteCaller { .. } => "COMPLETECALLER",
            Self::CompleteAgent { .. } => "COMPLETEAGENT",
            Self::Abandon(_) => "ABANDON",
            Self::ExitWithTimeout(_) => "EXITWITHTIMEOUT",
            Self::ExitEmpty(_) => "EXITEMPTY",
            Self::ExitWithKey { .. } => "EXITWITHKEY",
            Self::RingNoAnswer { .. } => "RINGNOANSWER",
            Self::Full => "FULL",
            Self::Closed => "CLOSED",
            Self::JoinEmpty => "JOINEMPTY",
            Self::DivertCaRatio => "DIVERT_CA_RATIO",
            Self::DivertHoldTime => "DIVERT_HOLDTIME",
            Self::AddMember { .. } => "ADDMEMBER",
            Self::RemoveMember => "REMOVEMEMBER",
            Self::Pause { .. } => "PAUSE",
            Self::Unpause { .. } => "UNPAUSE",
            Self::PauseAll { .. } => "PAUSEALL",
            Self::UnpauseAll { .. } => "UNPAUSEALL",
            Self::AgentLogin { .. } => "AGENTLOGIN",
            Self::AgentLogoff { .. } => "AGENTLOGOFF",
            Self::WrapUpStart { .. } => "WRAPUPSTART",
            Self::Other { name, .. } => name,
        }
    }

    /// Whether this event ends a call that entered the queue (every `ENTERQUEUE` is
    /// followed by exactly one of these for the same call id).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::CompleteCaller { .. }
                | Self::CompleteAgent { .. }
                | Self::Abandon(_)
                | Self::ExitWithTimeout(_)
                | Self::ExitEmpty(_)
                | Self::ExitWithKey { .. }
        )
    }

    /// Whether this event records a call turned away before entering the queue.
    pub fn is_turned_away(&self) -> bool {
        matches!(
            self,
            Self::Full
                | Self::Closed
                | Self::JoinEmpty
                | Self::DivertCaRatio
                | Self::DivertHoldTime
        )
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}",
            self.position, self.original_position, self.wait_time
        )
    }
}

impl fmt::Display for Event {
    /// The event name and its data fields, `|`-separated (`CONNECT|2|1341401601.27|1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        field(f, self.name())?;
        f.write_str("|")?;
        match self {
            Self::EnterQueue {
                url,
                caller_id,
                position,
                caller_name,
            } => {
                field(f, url)?;
                f.write_str("|")?;
                field(f, caller_id)?;
                write!(f, "|{position}")?;
                if let Some(name) = caller_name {
                    f.write_str("|")?;
                    field(f, name)?;
                }
                Ok(())
            }
            Self::Connect {
                hold_time,
                member_uniqueid,
                ring_time,
            } => {
                write!(f, "{hold_time}|")?;
                field(f, member_uniqueid)?;
                write!(f, "|{ring_time}")
            }
            Self::CompleteCaller {
                hold_time,
                call_time,
                original_position,
            }
            | Self::CompleteAgent {
                hold_time,
                call_time,
                original_position,
            } => write!(f, "{hold_time}|{call_time}|{original_position}"),
            Self::Abandon(exit) | Self::ExitWithTimeout(exit) | Self::ExitEmpty(exit) => {
                write!(f, "{exit}")
            }
            Self::ExitWithKey { key, exit } => {
                field(f, key)?;
                write!(f, "|{exit}")
            }
            Self::RingNoAnswer { ring_ms } => write!(f, "{ring_ms}"),
            Self::Full
            | Self::Closed
            | Self::JoinEmpty
            | Self::DivertCaRatio
            | Self::DivertHoldTime
            | Self::RemoveMember => Ok(()),
            Self::AddMember { paused } => f.write_str(if *paused { "PAUSED" } else { "" }),
            Self::Pause { reason }
            | Self::Unpause { reason }
            | Self::PauseAll { reason }
            | Self::UnpauseAll { reason } => field(f, reason),
            Self::AgentLogin { channel } => field(f, channel),
            Self::AgentLogoff {
                channel,
                login_time,
            } => {
                field(f, channel)?;
                write!(f, "|{login_time}")
            }
            Self::WrapUpStart { wrap_up } => write!(f, "{wrap_up}"),
            Self::Other { data, .. } => {
                for (i, d) in data.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    field(f, d)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Line {
    /// The line without its newline, as Asterisk writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_line_ref().fmt(f)
    }
}

/// A [`Line`] whose fields are borrowed: what the engine hands to
/// [`Sink::write_ref`], so that a sink that formats or drops lines costs no copy of
/// the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRef<'a> {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The caller's channel unique id, or `NONE` for member events.
    pub call_id: &'a str,
    /// The queue name, or `NONE` (agent login/logoff, `PAUSEALL`).
    pub queue: &'a str,
    /// The member (agent) name, or `NONE` for caller events.
    pub agent: &'a str,
    /// The event and its data fields.
    pub event: &'a Event,
}

impl LineRef<'_> {
    /// The owned line.
    pub fn to_line(&self) -> Line {
        Line {
            time: self.time,
            call_id: self.call_id.to_owned(),
            queue: self.queue.to_owned(),
            agent: self.agent.to_owned(),
            event: self.event.clone(),
        }
    }
}

impl fmt::Display for LineRef<'_> {
    /// The line without its newline, as Asterisk writes it (as [`Line`] does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|", self.time)?;
        field(f, self.call_id)?;
        f.write_str("|")?;
        field(f, self.queue)?;
        f.write_str("|")?;
        field(f, self.agent)?;
        write!(f, "|{}", self.event)
    }
}

/// Reads the data fields of one event, in order.
struct Data<'a> {
    event: &'a str,
    fields: Vec<&'a str>,
    next: usize,
}

impl<'a> Data<'a> {
    fn text(&mut self, name: &'static str) -> Result<String, ParseError> {
        let value = self
            .fields
            .get(self.next)
            .ok_or_else(|| ParseError::Missing {
                line: 1,
                event: self.event.to_owned(),
                field: name,
            })?;
        self.next += 1;
        Ok((*value).to_owned())
    }

    /// A text field that may be absent (old Asterisk versions write fewer fields).
    fn optional_text(&mut self) -> Option<String> {
        let value = self.fields.get(self.next)?;
        self.next += 1;
        Some((*value).to_owned())
    }

    fn number<T: std::str::FromStr>(&mut self, name: &'static str) -> Result<T, ParseError> {
        let value = self.text(name)?;
        if !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.not_a_number(name, value));
        }
        value.parse().map_err(|_| self.not_a_number(name, value))
    }

    fn not_a_number(&self, name: &'static str, value: String) -> ParseError {
        ParseError::NotANumber {
            line: 1,
            event: self.event.to_owned(),
            field: name,
            value,
        }
    }

    fn exit(&mut self) -> Result<Exit, ParseError> {
        Ok(Exit {
            position: self.number("position")?,
            original_position: self.number("origposition")?,
            wait_time: self.number("waittime")?,
        })
    }

    /// Fails on leftover data; trailing empty fields (Asterisk's `FULL|`) are allowed.
    fn finish(self) -> Result<(), ParseError> {
        for (i, value) in self.fields.iter().enumerate().skip(self.next) {
            if !value.is_empty() {
                return Err(ParseError::Unexpected {
                    line: 1,
                    event: self.event.to_owned(),
                    index: i + 1,
                    value: (*value).to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl Line {
    /// The line, borrowed.
    pub fn as_line_ref(&self) -> LineRef<'_> {
        LineRef {
            time: self.time,
            call_id: &self.call_id,
            queue: &self.queue,
            agent: &self.agent,
            event: &self.event,
        }
    }

    /// Parses one line (a trailing CR or LF is ignored). Errors name line 1; use
    /// [`parse_lines`] for files.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.contains(['\n', '\r']) {
            return Err(ParseError::Invalid {
                line: 1,
                event: "line".to_owned(),
                field: "line",
                value: line.to_owned(),
            });
        }
        let mut parts = line.split('|');
        let missing = |field| ParseError::Missing {
            line: 1,
            event: "line".to_owned(),
            field,
        };
        let time_text = parts.next().ok_or_else(|| missing("time"))?;
        if time_text.is_empty() || !time_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::NotANumber {
                line: 1,
                event: "line".to_owned(),
                field: "time",
                value: time_text.to_owned(),
            });
        }
        let time = time_text.parse().map_err(|_| ParseError::NotANumber {
            line: 1,
            event: "line".to_owned(),
            field: "time",
            value: time_text.to_owned(),
        })?;
        let call_id = parts.next().ok_or_else(|| missing("callid"))?.to_owned();
        let queue = parts.next().ok_or_else(|| missing("queue"))?.to_owned();
        let agent = parts.next().ok_or_else(|| missing("agent"))?.to_owned();
        let name = parts.next().ok_or_else(|| missing("event"))?;
        if name.is_empty() {
            return Err(ParseError::Invalid {
                line: 1,
                event: "line".to_owned(),
                field: "event",
                value: String::new(),
            });
        }
        let mut data = Data {
            event: name,
            fields: parts.collect(),
            next: 0,
        };
        let event = match name {
            "ENTERQUEUE" => Event::EnterQueue {
                url: data.text("url")?,
                caller_id: data.text("callerid")?,
                position: data.number("position")?,
                caller_name: data.optional_text(),
            },
            "CONNECT" => Event::Connect {
                hold_time: data.number("holdtime")?,
                member_uniqueid: data.text("uniqueid")?,
                ring_time: data.number("ringtime")?,
            },
            "COMPLETECALLER" => Event::CompleteCaller {
                hold_time: data.number("holdtime")?,
                call_time: data.number("calltime")?,
                original_position: data.number("origposition")?,
            },
            "COMPLETEAGENT" => Event::CompleteAgent {
                hold_time: data.number("holdtime")?,
                call_time: data.number("calltime")?,
                original_position: data.number("origposition")?,
            },
            "ABANDON" => Event::Abandon(data.exit()?),
            "EXITWITHTIMEOUT" => Event::ExitWithTimeout(data.exit()?),
            "EXITEMPTY" => Event::ExitEmpty(data.exit()?),
            "EXITWITHKEY" => Event::ExitWithKey {
                key: data.text("key")?,
                exit: data.exit()?,
            },
            "RINGNOANSWER" => Event::RingNoAnswer {
                ring_ms: data.number("ringtime")?,
            },
            "FULL" => Event::Full,
            "CLOSED" => Event::Closed,
            "JOINEMPTY" => Event::JoinEmpty,
            "DIVERT_CA_RATIO" => Event::DivertCaRatio,
            "DIVERT_HOLDTIME" => Event::DivertHoldTime,
            "REMOVEMEMBER" => Event::RemoveMember,
            "ADDMEMBER" => {
                let paused = data.optional_text().unwrap_or_default();
                match paused.as_str() {
                    "" => Event::AddMember { paused: false },
                    "PAUSED" => Event::AddMember { paused: true },
                    _ => {
                        return Err(ParseError::Invalid {
                            line: 1,
                            event: name.to_owned(),
                            field: "paused",
                            value: paused,
                        });
                    }
                }
            }
            "PAUSE" => Event::Pause {
                reason: data.optional_text().unwrap_or_default(),
            },
            "UNPAUSE" => Event::Unpause {
                reason: data.optional_text().unwrap_or_default(),
            },
            "PAUSEALL" => Event::PauseAll {
                reason: data.optional_text().unwrap_or_default(),
            },
            "UNPAUSEALL" => Event::UnpauseAll {
                reason: data.optional_text().unwrap_or_default(),
            },
            "AGENTLOGIN" => Event::AgentLogin {
                channel: data.text("channel")?,
            },
            "AGENTLOGOFF" => Event::AgentLogoff {
                channel: data.text("channel")?,
                login_time: data.number("logintime")?,
            },
            "WRAPUPSTART" => Event::WrapUpStart {
                wrap_up: data.number("wrapuptime")?,
            },
            other => {
                let mut fields = std::mem::take(&mut data.fields);
                // `NAME|` carries no data, as `FULL|` does.
                if fields == [""] {
                    fields.clear();
                }
                Event::Other {
                    name: other.to_owned(),
                    data: fields.into_iter().map(str::to_owned).collect(),
                }
            }
        };
        data.finish()?;
        Ok(Line {
            time,
            call_id,
            queue,
            agent,
            event,
        })
    }
}

/// Parses a whole file, one result a non-empty line, errors carrying their line number.
pub fn parse_lines(text: &str) -> impl Iterator<Item = Result<Line, ParseError>> + '_ {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Line::parse(line).map_err(|e| e.at_line(i + 1)))
}

/// Where the engine writes its `queue_log` lines (a file, a database, a test vector).
pub trait Sink {
    /// Records one line.
    fn write(&mut self, line: Line);

    /// Records one line given by reference. The engine calls this one; the default
    /// copies the line into a [`Line`] for [`write`](Self::write). A sink that formats
    /// the line (`line.to_string()` prints it as [`Line`] does) or drops it overrides
    /// this to skip the copy.
    fn write_ref(&mut self, line: LineRef<'_>) {
        self.write(line.to_line());
    }
}

/// A [`Sink`] that keeps the lines in memory, for tests and simulations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySink {
    /// The lines written so far, oldest first.
    pub lines: Vec<Line>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines as the text of a `queue_log` file.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }
}

impl Sink for MemorySink {
    fn write(&mut self, line: Line) {
        self.lines.push(line);
    }
}

impl Sink for Vec<Line> {
    fn write(&mut self, line: Line) {
        self.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> Line {
        let line = Line::parse(text).expect(text);
        assert_eq!(line.to_string(), text, "display of {line:?}");
        assert_eq!(Line::parse(&line.to_string()), Ok(line.clone()));
        line
    }

    #[test]
    fn borrowed_lines_print_and_store_as_owned_ones() {
        let line = Line::parse("1341401603|NONE|q1|Agent/3001|PAUSE|lunch").expect("parses");
        let borrowed = line.as_line_ref();
        assert_eq!(borrowed.to_string(), line.to_string());
        assert_eq!(borrowed.to_line(), line);
        // The default write_ref stores the owned line.
        let mut sink = MemorySink::new();
        sink.write_ref(borrowed);
        assert_eq!(sink.lines, vec![line]);
    }

    #[test]
    fn asterisk_lines_round_trip_byte_exact() {
        // Shapes as written by app_queue (see the ast_queue_log calls) and XiVO.
        let e = roundtrip("1341401601|1341401601.24|q1|NONE|ENTERQUEUE||1000|1");
        assert_eq!(
            e.event,
            Event::EnterQueue {
                url: String::new(),
                caller_id: "1000".into(),
                position: 1,
                caller_name: None
            }
        );
        roundtrip("1341401601|1341401601.24|q1|NONE|ENTERQUEUE||1000|1|Alice");
        roundtrip("1341401851|1341401851.34|q1|Agent/3001|COMPLETEAGENT|2|12|1");
        roundtrip("1341401851|1341401851.34|q1|Agent/3001|COMPLETECALLER|2|12|1");
        let a = roundtrip("1341402586|1341402586.51|q1|NONE|ABANDON|1|1|6");
        assert_eq!(
            a.event,
            Event::Abandon(Exit {
                position: 1,
                original_position: 1,
                wait_time: 6
            })
        );
        roundtrip("1|c|q1|NONE|EXITWITHTIMEOUT|2|3|60");
        roundtrip("1|c|q1|NONE|EXITEMPTY|1|1|3");
        roundtrip("1|c|q1|NONE|EXITWITHKEY|5|1|2|14");
        roundtrip("1|c|q1|Agent/3001|RINGNOANSWER|15000");
        for ev in [
            "FULL",
            "CLOSED",
            "JOINEMPTY",
            "DIVERT_CA_RATIO",
            "DIVERT_HOLDTIME",
        ] {
            let l = roundtrip(&format!("1341402016|1341402016.44|q1|NONE|{ev}|"));
            assert!(l.event.is_turned_away());
        }
        roundtrip("1|NONE|q1|Agent/3001|ADDMEMBER|");
        roundtrip("1|NONE|q1|Agent/3001|ADDMEMBER|PAUSED");
        roundtrip("1|NONE|q1|Agent/3001|REMOVEMEMBER|");
        roundtrip("1|NONE|q1|Agent/3001|PAUSE|lunch");
        roundtrip("1|NONE|q1|Agent/3001|UNPAUSE|");
        roundtrip("1|NONE|NONE|Agent/3001|PAUSEALL|");
        roundtrip("1|NONE|NONE|Agent/3001|UNPAUSEALL|");
        roundtrip("1|1341.5|NONE|Agent/3001|AGENTLOGIN|SIP/abc-0001");
        roundtrip("1|1341.5|NONE|Agent/3001|AGENTLOGOFF|SIP/abc-0001|43");
        roundtrip("1|c|q1|Agent/3001|WRAPUPSTART|30");
        let o =
            roundtrip("1|NONE|NONE|Agent/3001|AGENTCALLBACKLOGOFF|1002@pcm-dev|43|CommandLogoff");
        assert_eq!(o.event.name(), "AGENTCALLBACKLOGOFF");
    }

    #[test]
    fn lenient_on_missing_empty_data_strict_on_extra() {
        // QueueLog() without data writes no trailing field in some versions.
        let l = Line::parse("1|c|q1|NONE|FULL").expect("parses");
        assert_eq!(l.event, Event::Full);
        assert_eq!(l.to_string(), "1|c|q1|NONE|FULL|");
        assert_eq!(
            Line::parse("1|c|q1|NONE|FULL|x"),
            Err(ParseError::Unexpected {
                line: 1,
                event: "FULL".into(),
                index: 1,
                value: "x".into()
            })
        );
        let l = Line::parse("1|NONE|q1|A|PAUSE").expect("parses");
        assert_eq!(
            l.event,
            Event::Pause {
                reason: String::new()
            }
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = Line::parse("1|c|q1|A|CONNECT|2|u|x").expect_err("bad ringtime");
        assert_eq!(
            err,
            ParseError::NotANumber {
                line: 1,
                event: "CONNECT".into(),
                field: "ringtime",
                value: "x".into()
            }
        );
        assert!(err.to_string().contains("ringtime"));
        let err = Line::parse("1|c|q1|A|CONNECT|2").expect_err("short");
        assert!(matches!(
            err,
            ParseError::Missing {
                field: "uniqueid",
                ..
            }
        ));
        let err = Line::parse("x|c|q1|A|CONNECT|2").expect_err("time");
        assert!(matches!(err, ParseError::NotANumber { field: "time", .. }));
        let err = Line::parse("1|c|q1").expect_err("agent");
        assert!(matches!(err, ParseError::Missing { field: "agent", .. }));
        let err = Line::parse("1|c|q1|A|ABANDON|-1|1|1").expect_err("negative");
        assert!(matches!(
            err,
            ParseError::NotANumber {
                field: "position",
                ..
            }
        ));
        let err = Line::parse("1|c|q1|A|ADDMEMBER|maybe").expect_err("paused");
        assert!(matches!(
            err,
            ParseError::Invalid {
                field: "paused",
                ..
            }
        ));
    }

    #[test]
    fn files_report_line_numbers() {
        let text = "1|c|q|NONE|FULL|\n\n2|c|q|NONE|ABANDON|1|1\n";
        let results: Vec<_> = parse_lines(text).collect();
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        let err = results[1].clone().expect_err("short");
        assert_eq!(err.line(), 3);
        assert!(err.to_string().starts_with("line 3:"));
    }

    #[test]
    fn display_never_splits_fields() {
        let line = Line {
            time: 5,
            call_id: "a|b".into(),
            queue: "q\n".into(),
            agent: "NONE".into(),
            event: Event::Pause {
                reason: "x|y".into(),
            },
        };
        assert_eq!(line.to_string(), "5|a_b|q_|NONE|PAUSE|x_y");
        assert!(Line::parse(&line.to_string()).is_ok());
    }

    #[test]
    fn sinks_collect() {
        let mut sink = MemorySink::new();
        let line = Line::parse("1|c|q|NONE|FULL|").expect("parses");
        sink.write(line.clone());
        assert_eq!(sink.to_text(), "1|c|q|NONE|FULL|\n");
        let mut v: Vec<Line> = Vec::new();
        v.write(line);
        assert_eq!(v.len(), 1);
    }
}
