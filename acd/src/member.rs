//! Identifiers, member device states, agent states and the joinempty/leavewhenempty
//! conditions.

use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Lets the tables keyed by id be searched with a `&str` (the derives above
        // compare the inner string, so `Borrow` is consistent with them).
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id!(
    /// A call's unique id (Asterisk's caller channel uniqueid; the `queue_log` callid).
    CallId
);
id!(
    /// An agent or member name as logged (`Agent/1001`).
    AgentId
);
id!(
    /// A queue name.
    QueueId
);

/// A member's device state as the PBX reports it (Asterisk's `AST_DEVICE_*`). The
/// engine itself knows when it rings a member or connects it; this is the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeviceState {
    /// Not known (counts as available, as in app_queue).
    Unknown,
    /// Idle.
    #[default]
    NotInUse,
    /// On a call (not one of ours).
    InUse,
    /// Ringing (not for one of ours).
    Ringing,
    /// Not registered or unreachable.
    Unavailable,
    /// No such device.
    Invalid,
}

/// An agent's state, for supervision and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentState {
    /// Not logged in.
    LoggedOut,
    /// Logged in and free in at least one queue.
    Ready,
    /// Paused in every queue it belongs to.
    Paused,
    /// Ringing for a queue call.
    Ringing,
    /// Talking to a queue caller.
    OnCall,
    /// In wrap-up after a call.
    WrapUp,
}

impl AgentState {
    /// A name for displays and events: `logged_out`, `ready`, `paused`, `ringing`,
    /// `on_call`, `wrap_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::Ready => "ready",
            Self::Paused => "paused",
            Self::Ringing => "ringing",
            Self::OnCall => "on_call",
            Self::WrapUp => "wrap_up",
        }
    }
}

impl std::fmt::Display for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The conditions under which a member does not count as present, for joinempty and
/// leavewhenempty (app_queue's `QUEUE_EMPTY_*`). [`EmptyConditions::NEVER`] turns the
/// check off: callers always join / never leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmptyConditions(u16);

impl EmptyConditions {
    /// No check (app_queue's empty setting).
    pub const NEVER: Self = Self(0);
    /// Members out of the caller's penalty range do not count.
    pub const PENALTY: Self = Self(1);
    /// Paused members do not count.
    pub const PAUSED: Self = Self(1 << 1);
    /// Members on a call do not count.
    pub const INUSE: Self = Self(1 << 2);
    /// Ringing members do not count.
    pub const RINGING: Self = Self(1 << 3);
    /// Unavailable devices do not count.
    pub const UNAVAILABLE: Self = Self(1 << 4);
    /// Invalid devices do not count.
    pub const INVALID: Self = Self(1 << 5);
    /// Devices in an unknown state do not count.
    pub const UNKNOWN: Self = Self(1 << 6);
    /// Members in wrap-up do not count.
    pub const WRAPUP: Self = Self(1 << 7);
    /// app_queue's `strict`: penalty, paused, invalid, unavailable.
    pub const STRICT: Self = Self(1 | 1 << 1 | 1 << 4 | 1 << 5);
    /// app_queue's `loose`: penalty, invalid.
    pub const LOOSE: Self = Self(1 | 1 << 5);

    /// Whether every condition of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no condition is set (the check is off).
    pub fn is_never(self) -> bool {
        self.0 == 0
    }

    /// Parses app_queue's syntax: a comma-separated list of `paused`, `penalty`,
    /// `inuse`, `ringing`, `unavailable`, `invalid`, `unknown`, `wrapup`, or `yes`/`strict`
    /// (the strict set), `loose`, `no`/empty (never). Returns the unknown word on error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Self::NEVER;
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            out = out
                | match word.to_ascii_lowercase().as_str() {
                    "paused" => Self::PAUSED,
                    "penalty" => Self::PENALTY,
                    "inuse" => Self::INUSE,
                    "ringing" => Self::RINGING,
                    "unavailable" => Self::UNAVAILABLE,
                    "invalid" => Self::INVALID,
                    "unknown" => Self::UNKNOWN,
                    "wrapup" => Self::WRAPUP,
                    "yes" | "strict" => Self::STRICT,
                    "loose" => Self::LOOSE,
                    "no" => Self::NEVER,
                    _ => return Err(word.to_owned()),
                };
        }
        Ok(out)
    }
}

impl std::ops::BitOr for EmptyConditions {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_conditions_parse() {
        let c = EmptyConditions::parse("paused, wrapup").expect("parses");
        assert!(c.contains(EmptyConditions::PAUSED) && c.contains(EmptyConditions::WRAPUP));
        assert!(!c.contains(EmptyConditions::INUSE));
        assert_eq!(EmptyConditions::parse("yes"), Ok(EmptyConditions::STRICT));
        assert!(EmptyConditions::parse("").expect("empty").is_never());
        assert_eq!(
            EmptyConditions::parse("paused,nope"),
            Err("nope".to_owned())
        );
        assert_eq!(AgentId::from("Agent/1").to_string(), "Agent/1");
    }
}
