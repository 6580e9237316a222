//! Feature codes: the star codes users dial to change their services or reach a
//! feature, parsed into typed [`FeatureAction`]s.
//!
//! Defaults (`DESIGN.md` §3 "Dialplan"; reference 000 provisioning `raw_config`
//! `exten_dnd = *25`, `exten_fwd_busy = *23`, `exten_fwd_disable_all = *20`,
//! `exten_fwd_no_answer = *22`, `exten_fwd_unconditional = *21`,
//! `exten_pickup_call = *8`, `exten_voicemail = *98`; 003 "Gestion des extensions"):
//!
//! | code | action | reference |
//! |---|---|---|
//! | `*8` | group pickup | 004 "Enabling an Interception Extension": "The default value for group pickup is `*8`" |
//! | `*8<ext>` | directed pickup | 000 "Directed Pickup": "dial *81001 … it will intercept the call to this user" |
//! | `*20` | all forwards off | 000 `exten_fwd_disable_all` |
//! | `*21<dest>`, `*21` | unconditional forward | 003 "Renvois d'appels"; 000 "Function keys": with no destination "the user will be prompted" |
//! | `*22<dest>`, `*22` | no-answer forward | 003 "Renvois d'appels" |
//! | `*23<dest>`, `*23` | busy forward | 003 "Renvois d'appels" |
//! | `*25` | DND toggle | 003 "Ne pas déranger : NPD côté XiVO (*25)" |
//! | `*26` | user call recording toggle | 004 "\*26 (call recording)" |
//! | `*98` | own voicemail | 000 "Voicemail": "when calling the voicemail with *98" |
//! | `*99<box>` | a voicemail box | 000 "Voicemail": "`*99<voicemail number>`" |
//! | `*11<ext>` | paging | 000 "Paging": "prefix the paging number with *11" |
//! | `700` | parking | 000 "Parking": "There is a default parking number, 700" |
//! | `*1` (in call) | direct transfer | 003 "Transferts": "Transfert direct : *1" |
//! | `*3` (in call) | record the call | 004 "\*3 (online call recording)": "press \*3 during a conversation" |
//! | `*31<agent>`, `*31<agent>*<password>` | agent login on the caller's phone | 000 "The operator can login his agent using a function key or an extension" |
//! | `*32`, `*32<agent>` | agent logoff | (pbxkit; XiVO's agent codes are configurable too) |
//! | `*34`, `*35` | pause / unpause the caller's agent in every queue | (pbxkit) |
//!
//! `*1` and `*3` are DTMF codes pressed *during* a call (Asterisk's feature map),
//! not numbers dialled to start one: [`Features::parse_in_call`] recognises them,
//! [`Features::parse_dialed`] the others. A forward code dialled alone
//! (`*21`) is [`ForwardTarget::Toggle`]: a forward that is on goes off, otherwise the
//! user is asked for the destination (000 "Function keys"); the user-call decision
//! resolves it from the user's state ([`crate::decision`]).
//!
//! Every code is configuration ([`FeaturesConfig`], serde defaults as above); an
//! empty code disables the feature.

use serde::{Deserialize, Serialize};

/// The longest argument accepted after a prefix code (`*21<dest>`).
pub const MAX_ARGUMENT_LEN: usize = 64;

/// Feature codes, with the XiVO defaults. An empty string disables a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    /// Group pickup, and the prefix of directed pickup (`*8`, `*8<ext>`).
    pub pickup: String,
    /// All forwards off (`*20`).
    pub forwards_off: String,
    /// Unconditional forward (`*21`, `*21<dest>`).
    pub forward_unconditional: String,
    /// No-answer forward (`*22`, `*22<dest>`).
    pub forward_no_answer: String,
    /// Busy forward (`*23`, `*23<dest>`).
    pub forward_busy: String,
    /// Do-not-disturb toggle (`*25`).
    pub dnd: String,
    /// The user's own voicemail (`*98`).
    pub own_voicemail: String,
    /// Prefix to consult a voicemail box by number (`*99<box>`).
    pub voicemail: String,
    /// In call: record the conversation (`*3`).
    pub record: String,
    /// The user's call-recording toggle (`*26`).
    pub recording_toggle: String,
    /// Prefix of paging extensions (`*11<ext>`).
    pub paging: String,
    /// In call: direct (blind) transfer (`*1`).
    pub transfer: String,
    /// Parking (`700`).
    pub parking: String,
    /// Prefix of agent login (`*31<agent>`, `*31<agent>*<password>`).
    pub agent_login: String,
    /// Agent logoff (`*32`: the agent on the caller's phone; `*32<agent>`).
    pub agent_logoff: String,
    /// Pause the caller's agent in every queue (`*34`), in one (`*34<queue>`),
    /// with a reason code (`*34*<reason>`, `*34<queue>*<reason>`).
    pub agent_pause: String,
    /// Unpause the caller's agent in every queue (`*35`), in one (`*35<queue>`).
    pub agent_unpause: String,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        Self {
            pickup: "*8".into(),
            forwards_off: "*20".into(),
            forward_unconditional: "*21".into(),
            forward_no_answer: "*22".into(),
            forward_busy: "*23".into(),
            dnd: "*25".into(),
            own_voicemail: "*98".into(),
            voicemail: "*99".into(),
            record: "*3".into(),
            recording_toggle: "*26".into(),
            paging: "*11".into(),
            transfer: "*1".into(),
            parking: "700".into(),
            agent_login: "*31".into(),
            agent_logoff: "*32".into(),
            agent_pause: "*34".into(),
            agent_unpause: "*35".into(),
        }
    }
}

/// Which forward a code changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardKind {
    /// Every call.
    Unconditional,
    /// When the user does not answer.
    NoAnswer,
    /// When the user is busy.
    Busy,
}

impl std::fmt::Display for ForwardKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unconditional => "unconditional",
            Self::NoAnswer => "no-answer",
            Self::Busy => "busy",
        })
    }
}

/// What a forward code sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardTarget {
    /// Forward to this number and enable the forward (`*21<dest>`).
    Number(String),
    /// The code dialled alone: off when on, otherwise ask. Only
    /// [`Features::parse_dialed`] returns it; decisions resolve it.
    Toggle,
    /// Disable the forward (a resolved [`Toggle`](Self::Toggle)).
    Off,
    /// Ask the user for the destination, then enable (a resolved
    /// [`Toggle`](Self::Toggle) of a forward that is off).
    Ask,
}

/// A feature a code asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FeatureAction {
    /// Pick up a call ringing in the caller's pickup groups (`*8`).
    Pickup,
    /// Pick up the call ringing at this extension (`*8<ext>`).
    DirectedPickup {
        /// The ringing extension.
        ext: String,
    },
    /// Disable every forward of the caller (`*20`).
    ForwardsOff,
    /// Change one forward of the caller (`*21`, `*22`, `*23`).
    SetForward {
        /// Which forward.
        kind: ForwardKind,
        /// The new setting.
        destination: ForwardTarget,
    },
    /// Toggle the caller's do-not-disturb (`*25`).
    ToggleDnd,
    /// Consult the caller's own voicemail (`*98`).
    OwnVoicemail,
    /// Consult the voicemail box with this number (`*99<box>`).
    Voicemail {
        /// The box number.
        number: String,
    },
    /// In call: record the conversation (`*3`).
    Record,
    /// Toggle recording of all the caller's calls (`*26`).
    ToggleRecording,
    /// Page this paging extension (`*11<ext>`).
    Paging {
        /// The paging extension.
        ext: String,
    },
    /// In call: blind transfer (`*1`).
    Transfer,
    /// Park the call (`700`).
    Park,
    /// Log an agent in on the caller's phone (`*31<agent>`, `*31<agent>*<password>`).
    AgentLogin {
        /// The agent's number.
        agent: String,
        /// The password dialled after a `*`, if any.
        password: Option<String>,
    },
    /// Log an agent off (`*32`: the agent on the caller's phone; `*32<agent>`).
    AgentLogoff {
        /// The agent's number, when dialled.
        agent: Option<String>,
    },
    /// Pause (`*34`) or unpause (`*35`) the agent on the caller's phone, in every
    /// queue or in the one dialled (`*34<queue>`, `*35<queue>`), a pause with the
    /// reason code dialled after a `*` (`*34*<reason>`, `*34<queue>*<reason>`).
    AgentPause {
        /// Pause (`true`) or unpause.
        paused: bool,
        /// The queue's number, when one is dialled.
        queue: Option<String>,
        /// The reason code, when one is dialled (pauses only).
        reason: Option<String>,
    },
}

/// The compiled feature codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    config: FeaturesConfig,
}

/// Whether `text` is a usable argument (an extension or a forward destination):
/// non-empty, bounded, digits, `*`, `#` and a leading `+`.
fn is_argument(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_ARGUMENT_LEN
        && text
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || c == '*' || c == '#' || (c == '+' && i == 0))
}

/// The rest of `number` after the enabled `code`.
fn after<'n>(code: &str, number: &'n str) -> Option<&'n str> {
    if code.is_empty() {
        None
    } else {
        number.strip_prefix(code)
    }
}

impl Features {
    /// Compiles the codes.
    pub fn new(config: FeaturesConfig) -> Self {
        Self { config }
    }

    /// The codes.
    pub fn config(&self) -> &FeaturesConfig {
        &self.config
    }

    /// The feature a dialled number asks for, if any. Codes dialled alone are tried
    /// first, then prefix codes, the longest prefix first (so `*99<box>` is never
    /// read as `*9…`). Arguments must be digits, `*` or `#` (a leading `+` is
    /// allowed), at most [`MAX_ARGUMENT_LEN`] long.
    pub fn parse_dialed(&self, number: &str) -> Option<FeatureAction> {
        let c = &self.config;
        let exact: [(&str, FeatureAction); 9] = [
            (&c.pickup, FeatureAction::Pickup),
            (&c.forwards_off, FeatureAction::ForwardsOff),
            (&c.dnd, FeatureAction::ToggleDnd),
            (&c.own_voicemail, FeatureAction::OwnVoicemail),
            (&c.recording_toggle, FeatureAction::ToggleRecording),
            (&c.parking, FeatureAction::Park),
            (&c.agent_logoff, FeatureAction::AgentLogoff { agent: None }),
            (
                &c.agent_pause,
                FeatureAction::AgentPause {
                    paused: true,
                    queue: None,
                    reason: None,
                },
            ),
            (
                &c.agent_unpause,
                FeatureAction::AgentPause {
                    paused: false,
                    queue: None,
                    reason: None,
                },
            ),
        ];
        if let Some((_, action)) = exact
            .into_iter()
            .find(|(code, _)| !code.is_empty() && *code == number)
        {
            return Some(action);
        }
        let forwards = [
            (&c.forward_unconditional, ForwardKind::Unconditional),
            (&c.forward_no_answer, ForwardKind::NoAnswer),
            (&c.forward_busy, ForwardKind::Busy),
        ];
        for (code, kind) in forwards {
            if after(code, number) == Some("") {
                return Some(FeatureAction::SetForward {
                    kind,
                    destination: ForwardTarget::Toggle,
                });
            }
        }
        type Build = fn(String) -> Option<FeatureAction>;
        let mut prefixed: [(&str, Build); 10] = [
            (&c.agent_login, |arg| {
                Some(match arg.split_once('*') {
                    Some((agent, password)) => FeatureAction::AgentLogin {
                        agent: agent.to_owned(),
                        password: Some(password.to_owned()),
                    },
                    None => FeatureAction::AgentLogin {
                        agent: arg,
                        password: None,
                    },
                })
            }),
            (&c.agent_logoff, |agent| {
                Some(FeatureAction::AgentLogoff { agent: Some(agent) })
            }),
            // `<queue>`, `<queue>*<reason>` or `*<reason>`, each part digits.
            (&c.agent_pause, |arg| {
                let (queue, reason) = match arg.split_once('*') {
                    Some((queue, reason)) => (queue, Some(reason)),
                    None => (arg.as_str(), None),
                };
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let queue = (!queue.is_empty()).then_some(queue);
                if !queue.is_none_or(digits) || !reason.is_none_or(digits) {
                    return None;
                }
                Some(FeatureAction::AgentPause {
                    paused: true,
                    queue: queue.map(Into::into),
                    reason: reason.map(Into::into),
                })
            }),
            (&c.agent_unpause, |queue| {
                queue
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then_some(FeatureAction::AgentPause {
                        paused: false,
                        queue: Some(queue),
                        reason: None,
                    })
            }),
            (&c.pickup, |ext| Some(FeatureAction::DirectedPickup { ext })),
            (&c.voicemail, |number| {
                Some(FeatureAction::Voicemail { number })
            }),
            (&c.paging, |ext| Some(FeatureAction::Paging { ext })),
            (&c.forward_unconditional, |d| {
                Some(FeatureAction::SetForward {
                    kind: ForwardKind::Unconditional,
                    destination: ForwardTarget::Number(d),
                })
            }),
            (&c.forward_no_answer, |d| {
                Some(FeatureAction::SetForward {
                    kind: ForwardKind::NoAnswer,
                    destination: ForwardTarget::Number(d),
                })
            }),
            (&c.forward_busy, |d| {
                Some(FeatureAction::SetForward {
                    kind: ForwardKind::Busy,
                    destination: ForwardTarget::Number(d),
                })
            }),
        ];
        prefixed.sort_by_key(|(code, _)| std::cmp::Reverse(code.len()));
        prefixed.into_iter().find_map(|(code, build)| {
            after(code, number)
                .filter(|rest| is_argument(rest))
                .and_then(|rest| build(rest.to_owned()))
        })
    }

    /// The in-call feature a DTMF sequence asks for (`*1` transfer, `*3` record).
    pub fn parse_in_call(&self, digits: &str) -> Option<FeatureAction> {
        let c = &self.config;
        [
            (&c.transfer, FeatureAction::Transfer),
            (&c.record, FeatureAction::Record),
        ]
        .into_iter()
        .find(|(code, _)| !code.is_empty() && *code == digits)
        .map(|(_, action)| action)
    }

    /// Whether a longer number could still become a dialled feature (overlap
    /// dialling: `*2` could become `*21`, `*8` could become `*81001`).
    pub fn could_match_more(&self, number: &str) -> bool {
        let c = &self.config;
        let exact = [
            &c.pickup,
            &c.forwards_off,
            &c.dnd,
            &c.own_voicemail,
            &c.recording_toggle,
            &c.parking,
            &c.agent_logoff,
            &c.agent_pause,
            &c.agent_unpause,
        ];
        let prefixes = [
            &c.agent_login,
            &c.agent_logoff,
            &c.agent_pause,
            &c.agent_unpause,
            &c.pickup,
            &c.voicemail,
            &c.paging,
            &c.forward_unconditional,
            &c.forward_no_answer,
            &c.forward_busy,
        ];
        exact
            .iter()
            .any(|code| code.len() > number.len() && code.starts_with(number))
            || prefixes.iter().any(|code| {
                !code.is_empty()
                    && (code.starts_with(number)
                        || number
                            .strip_prefix(code.as_str())
                            .is_some_and(|rest| rest.len() < MAX_ARGUMENT_LEN))
            })
    }
}

/// Why a [`FeaturesConfig`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureCodeError {
    /// A code with other characters than digits, `*` and `#`, or too long.
    #[error("feature code {name} = '{code}': only digits, '*' and '#', at most 16")]
    BadCode {
        /// The setting.
        name: &'static str,
        /// The code.
        code: String,
    },
    /// Two features share a code.
    #[error("feature codes {first} and {second} are both '{code}'")]
    Duplicate {
        /// The first setting.
        first: &'static str,
        /// The second setting.
        second: &'static str,
        /// The code.
        code: String,
    },
}

impl FeaturesConfig {
    fn named(&self) -> [(&'static str, &str); 17] {
        [
            ("pickup", &self.pickup),
            ("forwards_off", &self.forwards_off),
            ("forward_unconditional", &self.forward_unconditional),
            ("forward_no_answer", &self.forward_no_answer),
            ("forward_busy", &self.forward_busy),
            ("dnd", &self.dnd),
            ("own_voicemail", &self.own_voicemail),
            ("voicemail", &self.voicemail),
            ("record", &self.record),
            ("recording_toggle", &self.recording_toggle),
            ("paging", &self.paging),
            ("transfer", &self.transfer),
            ("parking", &self.parking),
            ("agent_login", &self.agent_login),
            ("agent_logoff", &self.agent_logoff),
            ("agent_pause", &self.agent_pause),
            ("agent_unpause", &self.agent_unpause),
        ]
    }

    /// Checks every code: digits, `*`, `#`, at most 16 characters, no two alike
    /// (in-call and dialled codes are separate name spaces but kept distinct too).
    ///
    /// # Errors
    ///
    /// The first [`FeatureCodeError`].
    pub fn validate(&self) -> Result<(), FeatureCodeError> {
        let named = self.named();
        for (i, (name, code)) in named.iter().enumerate() {
            if code.is_empty() {
                continue;
            }
            if code.len() > 16
                || !code
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
            {
                return Err(FeatureCodeError::BadCode {
                    name,
                    code: (*code).to_owned(),
                });
            }
            if let Some((first, _)) = named.iter().take(i).find(|(_, other)| other == code) {
                return Err(FeatureCodeError::Duplicate {
                    first,
                    second: name,
                    code: (*code).to_owned(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn features() -> Features {
        Features::new(FeaturesConfig::default())
    }

    fn forward(kind: ForwardKind, destination: ForwardTarget) -> Option<FeatureAction> {
        Some(FeatureAction::SetForward { kind, destination })
    }

    #[test]
    fn defaults_from_the_reference() {
        // 000 provisioning raw_config: exten_dnd *25, exten_fwd_* *20–*23,
        // exten_pickup_call *8, exten_voicemail *98; 000 "Parking": 700.
        let f = features();
        assert_eq!(f.parse_dialed("*25"), Some(FeatureAction::ToggleDnd));
        assert_eq!(f.parse_dialed("*20"), Some(FeatureAction::ForwardsOff));
        assert_eq!(f.parse_dialed("*98"), Some(FeatureAction::OwnVoicemail));
        assert_eq!(f.parse_dialed("*26"), Some(FeatureAction::ToggleRecording));
        assert_eq!(f.parse_dialed("700"), Some(FeatureAction::Park));
        assert_eq!(f.parse_dialed("*8"), Some(FeatureAction::Pickup));
        assert!(f.config().validate().is_ok());
    }

    #[test]
    fn agent_codes() {
        let f = features();
        let login = |agent: &str, password: Option<&str>| {
            Some(FeatureAction::AgentLogin {
                agent: agent.into(),
                password: password.map(Into::into),
            })
        };
        assert_eq!(f.parse_dialed("*318001"), login("8001", None));
        assert_eq!(f.parse_dialed("*318001*1234"), login("8001", Some("1234")));
        assert_eq!(f.parse_dialed("*31"), None);
        assert_eq!(
            f.parse_dialed("*32"),
            Some(FeatureAction::AgentLogoff { agent: None })
        );
        assert_eq!(
            f.parse_dialed("*328001"),
            Some(FeatureAction::AgentLogoff {
                agent: Some("8001".into())
            })
        );
        let pause = |paused: bool, queue: Option<&str>, reason: Option<&str>| {
            Some(FeatureAction::AgentPause {
                paused,
                queue: queue.map(Into::into),
                reason: reason.map(Into::into),
            })
        };
        assert_eq!(f.parse_dialed("*34"), pause(true, None, None));
        assert_eq!(f.parse_dialed("*343100"), pause(true, Some("3100"), None));
        assert_eq!(f.parse_dialed("*34*2"), pause(true, None, Some("2")));
        assert_eq!(
            f.parse_dialed("*343100*2"),
            pause(true, Some("3100"), Some("2"))
        );
        assert_eq!(f.parse_dialed("*35"), pause(false, None, None));
        assert_eq!(f.parse_dialed("*353100"), pause(false, Some("3100"), None));
        // A reason is for pauses; parts are digits, a dialled `*` has a reason after it.
        assert_eq!(f.parse_dialed("*353100*2"), None);
        assert_eq!(f.parse_dialed("*34*"), None);
        assert_eq!(f.parse_dialed("*343100*2*3"), None);
        assert_eq!(f.parse_dialed("*34#"), None);
        assert!(f.could_match_more("*34"));
        assert!(f.could_match_more("*3431"));
        assert!(f.could_match_more("*3"));
        assert!(f.could_match_more("*31"));
        assert!(f.could_match_more("*318"));
    }

    #[test]
    fn directed_pickup_voicemail_paging() {
        let f = features();
        // 000 "Directed Pickup": "dial *81001 … intercept the call to this user".
        assert_eq!(
            f.parse_dialed("*81001"),
            Some(FeatureAction::DirectedPickup { ext: "1001".into() })
        );
        // 000 "Voicemail": *99<voicemail number>.
        assert_eq!(
            f.parse_dialed("*991000"),
            Some(FeatureAction::Voicemail {
                number: "1000".into()
            })
        );
        assert_eq!(f.parse_dialed("*99"), None, "a box number is needed");
        // 000 "Paging": prefix the paging number with *11.
        assert_eq!(
            f.parse_dialed("*11500"),
            Some(FeatureAction::Paging { ext: "500".into() })
        );
    }

    #[test]
    fn forwards_set_and_toggle() {
        // 003 "Renvois d'appels": *21 unconditional, *22 no answer, *23 busy.
        let f = features();
        assert_eq!(
            f.parse_dialed("*210612345678"),
            forward(
                ForwardKind::Unconditional,
                ForwardTarget::Number("0612345678".into())
            )
        );
        assert_eq!(
            f.parse_dialed("*221001"),
            forward(ForwardKind::NoAnswer, ForwardTarget::Number("1001".into()))
        );
        assert_eq!(
            f.parse_dialed("*23+33612345678"),
            forward(
                ForwardKind::Busy,
                ForwardTarget::Number("+33612345678".into())
            )
        );
        // 000 "Function keys": with no destination the user is prompted.
        assert_eq!(
            f.parse_dialed("*21"),
            forward(ForwardKind::Unconditional, ForwardTarget::Toggle)
        );
        assert_eq!(f.parse_dialed("*21abc"), None);
        assert_eq!(f.parse_dialed("*211+2"), None);
    }

    #[test]
    fn in_call_codes_are_separate() {
        // 003 "Transferts": *1; 004 "*3 (online call recording)".
        let f = features();
        assert_eq!(f.parse_in_call("*1"), Some(FeatureAction::Transfer));
        assert_eq!(f.parse_in_call("*3"), Some(FeatureAction::Record));
        assert_eq!(f.parse_dialed("*1"), None);
        assert_eq!(f.parse_dialed("*3"), None);
        assert_eq!(f.parse_in_call("*25"), None);
    }

    #[test]
    fn codes_are_configuration() {
        let config: FeaturesConfig = toml::from_str("dnd = \"*76\"\nparking = \"\"").expect("TOML");
        let f = Features::new(config);
        assert_eq!(f.parse_dialed("*76"), Some(FeatureAction::ToggleDnd));
        assert_eq!(f.parse_dialed("*25"), None);
        assert_eq!(f.parse_dialed("700"), None, "empty disables");
        assert_eq!(f.parse_dialed(""), None);
        assert_eq!(
            f.parse_dialed("*21"),
            forward(ForwardKind::Unconditional, ForwardTarget::Toggle)
        );
    }

    #[test]
    fn validation() {
        let mut config = FeaturesConfig {
            dnd: "*21".into(),
            ..FeaturesConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(FeatureCodeError::Duplicate {
                first: "forward_unconditional",
                second: "dnd",
                ..
            })
        ));
        config.dnd = "*2a".into();
        assert!(matches!(
            config.validate(),
            Err(FeatureCodeError::BadCode { name: "dnd", .. })
        ));
    }

    #[test]
    fn overlap_dialling() {
        let f = features();
        assert!(f.could_match_more("*"));
        assert!(f.could_match_more("*2"));
        assert!(f.could_match_more("*21"));
        assert!(f.could_match_more("*8100"));
        assert!(f.could_match_more("70"));
        assert!(!f.could_match_more("700"));
        assert!(!f.could_match_more("*25"));
        assert!(!f.could_match_more("5"));
    }

    proptest! {
        #[test]
        fn never_panics_and_arguments_are_clean(number in "[0-9*#+a]{0,12}") {
            let f = features();
            if let Some(FeatureAction::DirectedPickup { ext } | FeatureAction::Paging { ext }) = f.parse_dialed(&number) {
                prop_assert!(is_argument(&ext));
                prop_assert!(number.ends_with(&ext));
            }
            let _ = f.parse_in_call(&number);
            let _ = f.could_match_more(&number);
        }
    }
}
