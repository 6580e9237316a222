//! Outgoing calls: which route and trunks a number dialled by a user takes, the
//! number sent on each trunk and the caller ID presented.
//!
//! Rules:
//!
//! - The number is looked up from the caller's context; it must reach a route pattern
//!   of an outcall context the caller's context includes. Routes are searched by
//!   priority, lowest first (reference 003 "Appels sortants": a narrower route with a
//!   smaller priority takes `88XXXX` from a wider one), and within one priority in
//!   `pbx.c` order.
//! - An outcall context may have an external prefix, what users dial for an outside
//!   line ([`ContextConfig::external_prefix`](crate::config::ContextConfig::external_prefix)):
//!   its routes' patterns are matched after it, so with `"0"` the route
//!   `_0[1-9]XXXXXXXX` takes `00612345678` and `0` alone waits for more digits.
//! - Trunks are tried in the route's order (003: "Interconnexion, dans l'ordre");
//!   each gets the number with the external prefix removed, then `strip` leading
//!   digits removed, then `prefix` added.
//! - Call permissions see the number as dialled, external prefix included: they
//!   list what users dial (XiVO's dialled number, `XIVO_DSTNUM`, is likewise "an
//!   outgoing extension including the local prefix", 000 "Subroutine").
//! - Caller ID (reference 000 "Caller ID", interconnections): the route's *internal*
//!   flag (send the caller's own caller ID) > the user's outgoing caller ID
//!   (custom or anonymous) > the pattern's caller ID > the default caller ID; with
//!   none of them the caller's own caller ID goes out.
//! - Call permissions of the user, of the user's groups and of the route are checked
//!   on the dialled number ([`crate::permission`]); then the route's schedule.

use jiff::Timestamp;

use crate::config::{ObjectKind, OutcallConfig, OutcallPatternConfig, OutgoingCallerId};
use crate::context::{Dialplan, Reached, RouteError};
use crate::pattern::Pattern;
use crate::permission::PermissionDecision;
use crate::schedule::ScheduleState;

/// A call dialled towards the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingCall<'a> {
    /// The caller's context.
    pub context: &'a str,
    /// The dialled number.
    pub number: &'a str,
    /// The calling user's name, if a user calls.
    pub user: Option<&'a str>,
    /// The caller's own caller ID (`"Alice" <1000>`).
    pub caller_id: &'a str,
    /// Now.
    pub now: Timestamp,
}

/// One attempt of the failover list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkDial<'a> {
    /// The trunk.
    pub trunk: &'a str,
    /// The number to send on it.
    pub number: String,
}

/// Which setting chose the outgoing caller ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallerIdSource {
    /// The route is internal: the caller's own caller ID.
    Internal,
    /// The user's outgoing caller ID.
    User,
    /// The route pattern's caller ID.
    Route,
    /// The configuration's default caller ID.
    Default,
    /// Nothing set one: the caller's own caller ID.
    Caller,
}

/// The caller ID to present on the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingCallerIdDecision {
    /// Present this caller ID.
    Present {
        /// The caller ID, as configured or as given by the caller.
        caller_id: String,
        /// Which setting chose it.
        source: CallerIdSource,
    },
    /// Hide the caller ID (the user chose anonymous).
    Anonymous,
}

/// The decision for an outgoing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcallDecision<'a> {
    /// The route taken.
    pub route: &'a OutcallConfig,
    /// The route's pattern that matched.
    pub pattern: &'a OutcallPatternConfig,
    /// The same pattern, parsed, as matched: with the outcall context's external
    /// prefix in front when it has one.
    pub matched: &'a Pattern,
    /// The trunks to try, in order, with the number for each.
    pub dial: Vec<TrunkDial<'a>>,
    /// The caller ID to present.
    pub caller_id: OutgoingCallerIdDecision,
    /// The call permissions' verdict: dial only when it is allowed (or after the
    /// password).
    pub permission: PermissionDecision,
    /// The route's schedule at the time of the call (open without a schedule).
    pub schedule: ScheduleState<'a>,
}

/// The number sent to a trunk: `strip` leading characters removed, then `prefix`
/// added. Stripping more than the number's length leaves only the prefix. Dashes
/// are removed first, as the pattern matching ignores them.
pub fn transform_number(number: &str, strip: usize, prefix: &str) -> String {
    let kept: String = number.chars().filter(|&c| c != '-').skip(strip).collect();
    format!("{prefix}{kept}")
}

impl Dialplan {
    /// Routes an outgoing call. See the [module documentation](crate::outcall).
    ///
    /// # Errors
    ///
    /// A [`RouteError`] when the context is unknown, nothing matches, or the number
    /// reaches an internal extension rather than a route.
    pub fn route_outcall(
        &self,
        call: &OutgoingCall<'_>,
    ) -> Result<OutcallDecision<'_>, RouteError> {
        let hit = self.lookup(call.context, call.number)?;
        let Reached::Outcall(route, pattern) = hit.reached else {
            return Err(RouteError::Unexpected {
                context: hit.context.to_owned(),
                number: call.number.to_owned(),
                reached: hit.reached.object(),
                expected: ObjectKind::Outcall,
            });
        };
        // The external prefix is literal, validated ASCII, and the pattern matched
        // it: removing its length first, then the pattern's strip, is exact.
        let external = self
            .context_config(hit.context)
            .and_then(|c| c.external_prefix.as_deref())
            .map_or(0, str::len);
        let strip = external.saturating_add(pattern.strip);
        let dial = route
            .trunks
            .iter()
            .map(|trunk| TrunkDial {
                trunk,
                number: transform_number(call.number, strip, &pattern.prefix),
            })
            .collect();
        let user = call
            .user
            .and_then(|name| self.user_index.get(name))
            .and_then(|&i| self.config.users.get(i));
        let caller_id = self.outgoing_caller_id(
            route,
            pattern,
            user.map(|u| &u.outgoing_caller_id),
            call.caller_id,
        );

        let permission = self.caller_permissions(call.user, call.number, &route.call_permissions);

        Ok(OutcallDecision {
            route,
            pattern,
            matched: hit.pattern,
            dial,
            caller_id,
            permission,
            schedule: self.schedule_state(route.schedule.as_deref(), call.now),
        })
    }

    fn outgoing_caller_id(
        &self,
        route: &OutcallConfig,
        pattern: &OutcallPatternConfig,
        user: Option<&OutgoingCallerId>,
        own: &str,
    ) -> OutgoingCallerIdDecision {
        let present = |caller_id: &str, source| OutgoingCallerIdDecision::Present {
            caller_id: caller_id.to_owned(),
            source,
        };
        if route.internal {
            return present(own, CallerIdSource::Internal);
        }
        match user {
            Some(OutgoingCallerId::Anonymous) => return OutgoingCallerIdDecision::Anonymous,
            Some(OutgoingCallerId::Custom(cid)) => return present(cid, CallerIdSource::User),
            Some(OutgoingCallerId::Default) | None => {}
        }
        if let Some(cid) = pattern.caller_id.as_deref().filter(|c| !c.is_empty()) {
            return present(cid, CallerIdSource::Route);
        }
        if let Some(cid) = self
            .config
            .default_caller_id
            .as_deref()
            .filter(|c| !c.is_empty())
        {
            return present(cid, CallerIdSource::Default);
        }
        present(own, CallerIdSource::Caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::permission::Verdict;
    use proptest::prelude::*;

    /// A French-style plan after reference 003 "Appels sortants" (New Caledonia
    /// example: emergency on trunksip then dahdi/g0, phone booths 088XXXX with
    /// priority 4 inside the mobile range 08[0-79]XXXX with priority 5).
    const CONFIG: &str = r#"
        default_caller_id = "\"ACME\" <0320495000>"

        [[contexts]]
        name = "default"
        kind = "internal"
        includes = ["to-extern"]
        ranges.users = [{ start = "1000", end = "1999" }]

        [[contexts]]
        name = "to-extern"
        kind = "outcall"

        [[users]]
        name = "alice"
        extension = "1000"
        context = "default"
        outgoing_caller_id = "\"Alice\" <0320495001>"
        call_permissions = ["mobiles"]

        [[users]]
        name = "bob"
        extension = "1001"
        context = "default"
        outgoing_caller_id = "anonymous"
        call_permission_password = "4321"

        [[users]]
        name = "carol"
        extension = "1002"
        context = "default"

        [[groups]]
        name = "boss-rights"
        context = "default"
        members = ["carol"]
        call_permissions = ["premium"]

        [[trunks]]
        name = "trunksip"
        [[trunks]]
        name = "dahdi/g0"

        [[outcalls]]
        name = "urgences"
        context = "to-extern"
        priority = 1
        internal = true
        trunks = ["trunksip", "dahdi/g0"]
        patterns = [{ pattern = "_1[5678]" }, { pattern = "_01[5678]", strip = 1 }]

        [[outcalls]]
        name = "cabines"
        context = "to-extern"
        priority = 4
        trunks = ["dahdi/g0"]
        patterns = [{ pattern = "_088XXXX", strip = 1, caller_id = "\"Cabines\" <999>" }]

        [[outcalls]]
        name = "mobiles"
        context = "to-extern"
        priority = 5
        trunks = ["trunksip"]
        patterns = [{ pattern = "_08XXXXX", strip = 1, prefix = "+687" }]
        call_permissions = ["deny-all"]

        [[outcalls]]
        name = "catch-all"
        context = "to-extern"
        priority = 9
        trunks = ["trunksip"]
        patterns = [{ pattern = "_0X." }]
        call_permissions = ["password"]

        [[permissions]]
        name = "deny-all"
        authorization = "deny"
        extensions = ["X."]

        [[permissions]]
        name = "mobiles"
        authorization = "allow"
        extensions = ["08[0-79]XXXX"]

        [[permissions]]
        name = "premium"
        authorization = "allow"
        extensions = ["_0X."]

        [[permissions]]
        name = "password"
        authorization = "deny"
        password = "0000"
        extensions = ["_00X."]
    "#;

    fn dialplan() -> Dialplan {
        let config: Config = toml::from_str(CONFIG).expect("TOML");
        Dialplan::new(config, jiff::tz::db()).expect("valid")
    }

    fn call<'a>(user: &'a str, number: &'a str) -> OutgoingCall<'a> {
        OutgoingCall {
            context: "default",
            number,
            user: Some(user),
            caller_id: "\"Internal\" <1000>",
            now: "2024-03-26T09:00:00Z".parse().expect("timestamp"),
        }
    }

    #[test]
    fn failover_list_and_number_transformation() {
        let d = dialplan();
        let decision = d.route_outcall(&call("carol", "015")).expect("routed");
        assert_eq!(decision.route.name, "urgences");
        assert_eq!(
            decision.dial,
            vec![
                TrunkDial {
                    trunk: "trunksip",
                    number: "15".into()
                },
                TrunkDial {
                    trunk: "dahdi/g0",
                    number: "15".into()
                },
            ]
        );
        let mobile = d.route_outcall(&call("alice", "0812345")).expect("routed");
        assert_eq!(mobile.route.name, "mobiles");
        assert_eq!(
            mobile.dial,
            vec![TrunkDial {
                trunk: "trunksip",
                number: "+687812345".into()
            }]
        );
    }

    #[test]
    fn priority_lets_a_narrow_route_win() {
        let d = dialplan();
        let booth = d.route_outcall(&call("alice", "0881234")).expect("routed");
        assert_eq!(booth.route.name, "cabines");
        // With a worse priority than the mobiles, the booths' pattern loses although
        // it sorts first in pbx.c order: priority decides before specificity.
        let mut config: Config = toml::from_str(CONFIG).expect("TOML");
        if let Some(route) = config.outcalls.iter_mut().find(|r| r.name == "cabines") {
            route.priority = 6;
        }
        let d = Dialplan::new(config, jiff::tz::db()).expect("valid");
        assert_eq!(
            d.route_outcall(&call("alice", "0881234"))
                .expect("routed")
                .route
                .name,
            "mobiles"
        );
    }

    #[test]
    fn caller_id_precedence() {
        let d = dialplan();
        let own = "\"Internal\" <1000>";
        // Internal route: the caller's own caller ID even for an anonymous user.
        assert_eq!(
            d.route_outcall(&call("bob", "15"))
                .expect("routed")
                .caller_id,
            OutgoingCallerIdDecision::Present {
                caller_id: own.into(),
                source: CallerIdSource::Internal
            }
        );
        // User's custom caller ID over the route's.
        assert_eq!(
            d.route_outcall(&call("alice", "0881234"))
                .expect("routed")
                .caller_id,
            OutgoingCallerIdDecision::Present {
                caller_id: "\"Alice\" <0320495001>".into(),
                source: CallerIdSource::User
            }
        );
        assert_eq!(
            d.route_outcall(&call("bob", "0881234"))
                .expect("routed")
                .caller_id,
            OutgoingCallerIdDecision::Anonymous
        );
        // Default user: the route's, then the configuration's default.
        assert_eq!(
            d.route_outcall(&call("carol", "0881234"))
                .expect("routed")
                .caller_id,
            OutgoingCallerIdDecision::Present {
                caller_id: "\"Cabines\" <999>".into(),
                source: CallerIdSource::Route
            }
        );
        assert_eq!(
            d.route_outcall(&call("carol", "0212345"))
                .expect("routed")
                .caller_id,
            OutgoingCallerIdDecision::Present {
                caller_id: "\"ACME\" <0320495000>".into(),
                source: CallerIdSource::Default
            }
        );
    }

    #[test]
    fn permissions_user_group_route() {
        let d = dialplan();
        // 003: deny-all on the mobile route, "mobiles" on the users allowed.
        assert_eq!(
            d.route_outcall(&call("alice", "0812345"))
                .expect("routed")
                .permission
                .verdict,
            Verdict::Allowed
        );
        assert_eq!(
            d.route_outcall(&call("bob", "0812345"))
                .expect("routed")
                .permission
                .verdict,
            Verdict::Denied
        );
        // Carol's group allows _0X., which is more precise than the route's deny
        // _X. (a literal 0 weighs less than X in pbx.c order): allowed.
        assert_eq!(
            d.route_outcall(&call("carol", "0812345"))
                .expect("routed")
                .permission
                .verdict,
            Verdict::Allowed
        );
        // International: a password; Bob's code replaces it only for his own
        // permissions, so the route's password stays.
        assert_eq!(
            d.route_outcall(&call("bob", "0044123"))
                .expect("routed")
                .permission
                .verdict,
            Verdict::Password("0000".into())
        );
    }

    #[test]
    fn internal_numbers_are_not_outcalls() {
        let d = dialplan();
        let err = d.route_outcall(&call("alice", "1001")).expect_err("a user");
        assert!(
            matches!(
                err,
                RouteError::Unexpected {
                    expected: ObjectKind::Outcall,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            d.route_outcall(&call("alice", "5")),
            Err(RouteError::NoMatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn transform_never_panics_and_keeps_the_tail(number in "\\PC{0,20}", strip in 0usize..30, prefix in "[+0-9]{0,4}") {
            let out = transform_number(&number, strip, &prefix);
            prop_assert!(out.starts_with(&prefix));
            let digits: String = number.chars().filter(|&c| c != '-').collect();
            prop_assert!(digits.ends_with(&out[prefix.len()..]));
        }

        #[test]
        fn every_national_number_gets_a_route(number in "0[1-9][0-9]{5}") {
            let d = dialplan();
            let decision = d.route_outcall(&call("carol", &number)).expect("routed");
            prop_assert!(!decision.dial.is_empty());
        }
    }
}
