//! Incoming calls: which DID route a call from a trunk takes, and what happens to it.
//!
//! The steps, in the order of reference 004 "CallerID for incoming calls":
//!
//! 1. The caller number is normalised by the inbound caller-ID rules
//!    ([`crate::callerid`]); the reverse-lookup flag is computed on that result.
//! 2. The DID is looked up in the incall context (and its includes); a leading `+`
//!    is dropped first (004 "Incall": "When a “+” character is prepended a called
//!    DID, the “+” character is discarded"), then a number longer than the
//!    context's number of digits received keeps only its last digits (003 "Les
//!    contextes (entrants)": "0123456789 avec 4 chiffres reçus donnera 6789"; see
//!    [`ContextConfig::did_length`](crate::config::ContextConfig::did_length)). The
//!    most specific DID wins: an exact DID before patterns, patterns in `pbx.c`
//!    order.
//! 3. The incall's call permissions are checked against the *caller's* (normalised)
//!    number (000 "Call Permissions").
//! 4. The incall's schedule, if any, is evaluated at the given instant.
//! 5. The incall's caller-ID mode changes the caller ID name: prepend puts the value
//!    before the name, append after it, overwrite replaces it. No separator is added.

use jiff::Timestamp;

use crate::callerid::NormalizedCallerId;
use crate::config::{CallerIdMode, Destination, IncallConfig, ObjectKind};
use crate::context::{Dialplan, Reached, RouteError};
use crate::pattern::Pattern;
use crate::permission::{self, Level, PermissionDecision, Verdict};
use crate::schedule::ScheduleState;

/// A call arriving from a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingCall<'a> {
    /// The incall context the trunk delivers to.
    pub context: &'a str,
    /// The called number (DID).
    pub did: &'a str,
    /// The caller number as received.
    pub caller_number: &'a str,
    /// The caller name as received (often empty or the number).
    pub caller_name: &'a str,
    /// Now.
    pub now: Timestamp,
}

/// What happens to an incoming call once its route is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncallOutcome<'a> {
    /// Send it to the incall's destination.
    Destination(&'a Destination),
    /// The schedule is closed: send it there (hang up when `None`).
    Closed {
        /// Where to.
        destination: Option<&'a Destination>,
        /// Whether an exceptional closed period decided it.
        exceptional: bool,
    },
    /// A call permission refuses the caller, or asks a password.
    Restricted(PermissionDecision),
}

/// The decision for an incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncallDecision<'a> {
    /// The DID the incalls were searched with: without a leading `+`, and cut to
    /// the context's number of digits received.
    pub did: String,
    /// The route taken.
    pub incall: &'a IncallConfig,
    /// The DID entry that matched, as written.
    pub matched: &'a Pattern,
    /// The caller ID to present: normalised, then changed by the caller-ID mode.
    pub caller: NormalizedCallerId,
    /// What to do.
    pub outcome: IncallOutcome<'a>,
}

/// The last `n` characters of `did`; all of it when it is not longer.
fn last_digits(did: &str, n: usize) -> &str {
    match n
        .checked_sub(1)
        .and_then(|k| did.char_indices().rev().nth(k))
    {
        Some((at, _)) => did.get(at..).unwrap_or(did),
        None => did,
    }
}

/// Applies an incall's caller-ID mode to a name.
pub fn apply_caller_id_mode(mode: CallerIdMode, value: &str, name: &str) -> String {
    match mode {
        CallerIdMode::Prepend => format!("{value}{name}"),
        CallerIdMode::Append => format!("{name}{value}"),
        CallerIdMode::Overwrite => value.to_owned(),
    }
}

impl Dialplan {
    /// Routes an incoming call. See the [module documentation](crate::incall).
    ///
    /// # Errors
    ///
    /// A [`RouteError`] when the context is unknown, no DID matches, or the DID
    /// reaches something else than an incall (say, a user of an included context).
    pub fn route_incall(&self, call: &IncomingCall<'_>) -> Result<IncallDecision<'_>, RouteError> {
        let mut caller = self.rewriter.rewrite(call.caller_number, call.caller_name);
        let did = call.did.strip_prefix('+').unwrap_or(call.did);
        let did = match self
            .context_config(call.context)
            .and_then(|c| c.did_length_for(did))
        {
            Some(n) => last_digits(did, n.into()),
            None => did,
        };
        let hit = self.lookup(call.context, did)?;
        let Reached::Incall(incall) = hit.reached else {
            return Err(RouteError::Unexpected {
                context: hit.context.to_owned(),
                number: did.to_owned(),
                reached: hit.reached.object(),
                expected: ObjectKind::Incall,
            });
        };
        let permissions = incall
            .call_permissions
            .iter()
            .filter_map(|name| self.permissions.get(name))
            .map(|p| (Level::Route, p));
        let rights = permission::check(&caller.number, permissions, None);
        let outcome = if rights.verdict != Verdict::Allowed {
            IncallOutcome::Restricted(rights)
        } else {
            match self.schedule_state(incall.schedule.as_deref(), call.now) {
                ScheduleState::Open => IncallOutcome::Destination(&incall.destination),
                ScheduleState::Closed {
                    destination,
                    exceptional,
                } => IncallOutcome::Closed {
                    destination,
                    exceptional,
                },
            }
        };
        if let Some(cid) = &incall.caller_id {
            caller.name = apply_caller_id_mode(cid.mode, &cid.value, &caller.name);
        }
        Ok(IncallDecision {
            did: did.to_owned(),
            incall,
            matched: hit.pattern,
            caller,
            outcome,
        })
    }

    /// The state of the named schedule at `now`; open without a schedule.
    pub(crate) fn schedule_state(
        &self,
        schedule: Option<&str>,
        now: Timestamp,
    ) -> ScheduleState<'_> {
        schedule
            .and_then(|name| self.schedules.get(name))
            .map_or(ScheduleState::Open, |s| s.state_at(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CONFIG: &str = r#"
        [[contexts]]
        name = "default"
        kind = "internal"
        ranges.users = [{ start = "1000", end = "1999" }]

        [[contexts]]
        name = "from-extern"
        kind = "incall"
        ranges.incalls = [{ start = "0320495000", end = "0320495999" }, { start = "1000", end = "1999" }]

        [[users]]
        name = "bob"
        extension = "1000"
        context = "default"

        [[users]]
        name = "operator"
        extension = "1999"
        context = "default"

        [[voicemails]]
        name = "std"
        number = "1999"

        [[incalls]]
        did = "1000"
        context = "from-extern"
        destination = { type = "user", name = "bob" }

        [[incalls]]
        did = "0320495000"
        context = "from-extern"
        destination = { type = "user", name = "operator" }
        caller_id = { mode = "prepend", value = "STD - " }
        schedule = "office"

        [[incalls]]
        did = "_0320495XXX"
        context = "from-extern"
        destination = { type = "voicemail", name = "std" }
        caller_id = { mode = "overwrite", value = "Direct" }
        call_permissions = ["blacklist"]

        [[permissions]]
        name = "blacklist"
        authorization = "deny"
        extensions = ["+33899XXXXXX"]

        [[caller_id_rules]]
        callerid = '^0[1-9]\d{8}$'
        strip = 1
        add = "+33"

        [[schedules]]
        name = "office"
        timezone = "Europe/Paris"
        open = [{ hours = "09:00-18:00", weekdays = "1-5" }]
        closed_destination = { type = "voicemail", name = "std" }
    "#;

    fn dialplan() -> Dialplan {
        let config: Config = toml::from_str(CONFIG).expect("TOML");
        Dialplan::new(config, jiff::tz::db()).expect("valid")
    }

    fn call<'a>(did: &'a str, number: &'a str, name: &'a str, now: &str) -> IncomingCall<'a> {
        IncomingCall {
            context: "from-extern",
            did,
            caller_number: number,
            caller_name: name,
            now: now.parse().expect("timestamp"),
        }
    }

    const TUESDAY_10H: &str = "2024-03-26T09:00:00Z";
    const SUNDAY: &str = "2024-03-24T09:00:00Z";

    #[test]
    fn plus_is_dropped_before_matching() {
        // 004 "Incall": Alice can reach Bob's DID 1000 by dialling 1000 or +1000.
        let d = dialplan();
        for did in ["1000", "+1000"] {
            let decision = d
                .route_incall(&call(did, "0612345678", "", TUESDAY_10H))
                .expect("routed");
            assert_eq!(
                decision.outcome,
                IncallOutcome::Destination(&Destination::User { name: "bob".into() })
            );
            assert_eq!(decision.matched.as_str(), "1000");
        }
    }

    #[test]
    fn exact_did_beats_pattern() {
        let d = dialplan();
        let exact = d
            .route_incall(&call("0320495000", "0612345678", "Ann", TUESDAY_10H))
            .expect("routed");
        assert_eq!(exact.matched.as_str(), "0320495000");
        let pattern = d
            .route_incall(&call("0320495001", "0612345678", "Ann", TUESDAY_10H))
            .expect("routed");
        assert_eq!(pattern.matched.as_str(), "_0320495XXX");
        assert_eq!(
            pattern.outcome,
            IncallOutcome::Destination(&Destination::Voicemail { name: "std".into() })
        );
        assert!(matches!(
            d.route_incall(&call("0320496000", "0612345678", "Ann", TUESDAY_10H)),
            Err(RouteError::NoMatch { .. })
        ));
    }

    #[test]
    fn caller_id_normalised_then_mode_applied() {
        let d = dialplan();
        let decision = d
            .route_incall(&call("0320495000", "0612345678", "Ann", TUESDAY_10H))
            .expect("routed");
        assert_eq!(decision.caller.number, "+33612345678");
        assert_eq!(decision.caller.name, "STD - Ann");
        assert!(!decision.caller.needs_reverse_lookup);
        let overwritten = d
            .route_incall(&call("0320495001", "0612345678", "0612345678", TUESDAY_10H))
            .expect("routed");
        assert_eq!(overwritten.caller.name, "Direct");
        assert!(
            overwritten.caller.needs_reverse_lookup,
            "the name was the number"
        );
        assert_eq!(
            apply_caller_id_mode(CallerIdMode::Append, " (VIP)", "Ann"),
            "Ann (VIP)"
        );
    }

    #[test]
    fn schedule_closes_the_route() {
        let d = dialplan();
        let decision = d
            .route_incall(&call("0320495000", "0612345678", "Ann", SUNDAY))
            .expect("routed");
        assert_eq!(
            decision.outcome,
            IncallOutcome::Closed {
                destination: Some(&Destination::Voicemail { name: "std".into() }),
                exceptional: false
            }
        );
    }

    #[test]
    fn permissions_match_the_normalised_caller_number() {
        let d = dialplan();
        let decision = d
            .route_incall(&call("0320495001", "0899123456", "Spam", TUESDAY_10H))
            .expect("routed");
        let IncallOutcome::Restricted(rights) = decision.outcome else {
            panic!("{decision:?}");
        };
        assert_eq!(rights.verdict, Verdict::Denied);
        assert_eq!(
            rights.rule,
            Some(("blacklist".into(), "+33899XXXXXX".into()))
        );
    }
}
