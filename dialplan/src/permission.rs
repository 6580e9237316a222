//! Call permissions: allow or deny calls to some numbers, optionally with a password.
//!
//! Rules, from the reference documentation:
//!
//! - Permissions are attached to users, groups (they apply to the members), outgoing
//!   call routes and incoming call routes (reference 000 "Call Permissions").
//! - On incoming calls the extensions match the *caller's* number, elsewhere the
//!   dialled number (000 "Call Permissions", last paragraph).
//! - "Le droit d'appel le plus précis prévaut" and "Ne pas avoir de droit d'appel
//!   revient à tout autoriser" (reference 003 "Droits d'appels"): among all the
//!   matching entries of the permissions that apply, the most precise one decides;
//!   with none, the call is allowed.
//! - Precision is the `pbx.c` order of [`Pattern`]: an exact extension beats any
//!   pattern, and among patterns the one that sorts first wins (`_07XXXXX` beats
//!   `_0X.`). This is what makes 003's example work: a "deny-all" permission on the
//!   mobile route and an "allow mobiles" permission on some users.
//! - Ties (the same pattern in several permissions): the user's own permissions
//!   before its groups', before the route's — the order XiVO's AGI evaluates them in;
//!   at the same level an allow wins over a deny, as in XiVO's AGI.
//! - A deny with a password challenges the caller; the user's call-permission code
//!   replaces the password of the permissions attached to that user (000: "User's
//!   Rightcall Code overwrite all password call permissions for the user"; XiVO's AGI
//!   does not apply it to groups' or routes' permissions).

use crate::config::{Authorization, PermissionConfig};
use crate::pattern::{Pattern, PatternError};

/// Parses a permission extension. XiVO writes permission patterns without the `_`
/// (`07XXXXX`, `08[1-79]XXXX` in reference 003 "Droits d'appels"), so text holding
/// `X`, `Z`, `N`, `[`, `.` or `!` is read as a pattern even without `_`; other text
/// is an exact extension.
///
/// # Errors
///
/// The [`PatternError`] of the text (positions refer to the text as written).
pub fn parse_extension(text: &str) -> Result<Pattern, PatternError> {
    let looks_like_pattern = text.bytes().any(|b| b"XZN[.!".contains(&b));
    if text.starts_with('_') || !looks_like_pattern {
        return Pattern::parse(text);
    }
    let with_underscore = format!("_{text}");
    Pattern::parse(&with_underscore).map_err(|err| shift_left(err, text.len()))
}

/// Moves the position of an error found in `"_" + text` back onto `text`.
fn shift_left(err: PatternError, len: usize) -> PatternError {
    let back = |p: usize| p.saturating_sub(1).min(len);
    match err {
        PatternError::Empty { position } => PatternError::Empty {
            position: back(position),
        },
        PatternError::TooLong {
            len: l,
            max,
            position,
        } => PatternError::TooLong {
            len: l.saturating_sub(1),
            max,
            position: back(position),
        },
        PatternError::UnterminatedSet { position } => PatternError::UnterminatedSet {
            position: back(position),
        },
        PatternError::EmptySet { position } => PatternError::EmptySet {
            position: back(position),
        },
        PatternError::ReversedRange {
            position,
            first,
            last,
        } => PatternError::ReversedRange {
            position: back(position),
            first,
            last,
        },
        PatternError::AfterWildcard {
            position,
            ch,
            wildcard,
        } => PatternError::AfterWildcard {
            position: back(position),
            ch,
            wildcard: back(wildcard),
        },
        PatternError::InvalidChar { position, ch } => PatternError::InvalidChar {
            position: back(position),
            ch,
        },
    }
}

/// Where a permission applies from; earlier levels win ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Attached to the calling user.
    User,
    /// Attached to a group the calling user is a member of.
    Group,
    /// Attached to the route (outgoing or incoming call).
    Route,
}

/// A compiled call permission.
#[derive(Debug, Clone)]
pub struct Permission {
    name: String,
    authorization: Authorization,
    password: Option<String>,
    /// Each extension parsed, with its text as written.
    extensions: Vec<(Pattern, String)>,
}

impl Permission {
    /// Compiles a permission from its configuration.
    ///
    /// # Errors
    ///
    /// The first extension that does not parse, with its error.
    pub fn new(config: &PermissionConfig) -> Result<Self, (String, PatternError)> {
        let extensions = config
            .extensions
            .iter()
            .map(|text| {
                parse_extension(text)
                    .map(|p| (p, text.clone()))
                    .map_err(|err| (text.clone(), err))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: config.name.clone(),
            authorization: config.authorization,
            password: config.password.clone().filter(|p| !p.is_empty()),
            extensions,
        })
    }

    /// The permission's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most precise of this permission's extensions matching `number`.
    fn best_match(&self, number: &str) -> Option<&(Pattern, String)> {
        self.extensions
            .iter()
            .filter(|(p, _)| p.is_match(number))
            .min_by(|a, b| a.0.cmp(&b.0))
    }
}

/// The outcome of a permission check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The call goes through.
    Allowed,
    /// The call is refused.
    Denied,
    /// The call goes through once the caller enters this password.
    Password(String),
}

/// A permission check's verdict and the entry that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionDecision {
    /// The verdict.
    pub verdict: Verdict,
    /// The deciding permission's name and the matching extension as written, or
    /// `None` when no permission matched (allowed by default).
    pub rule: Option<(String, String)>,
}

impl PermissionDecision {
    /// Allowed because nothing matched.
    pub fn allowed_by_default() -> Self {
        Self {
            verdict: Verdict::Allowed,
            rule: None,
        }
    }
}

/// Decides whether `number` may be called given the permissions that apply, each
/// with its level. `user_code` is the calling user's call-permission code.
///
/// See the module documentation for the rule.
pub fn check<'a>(
    number: &str,
    applicable: impl IntoIterator<Item = (Level, &'a Permission)>,
    user_code: Option<&str>,
) -> PermissionDecision {
    let mut best: Option<(&Pattern, Level, bool, &Permission, &str)> = None;
    for (level, permission) in applicable {
        let Some((pattern, text)) = permission.best_match(number) else {
            continue;
        };
        let deny = permission.authorization == Authorization::Deny;
        let better = match best {
            None => true,
            Some((p, l, d, _, _)) => (pattern, level, deny) < (p, l, d),
        };
        if better {
            best = Some((pattern, level, deny, permission, text));
        }
    }
    let Some((_, level, _, permission, text)) = best else {
        return PermissionDecision::allowed_by_default();
    };
    let verdict = match (permission.authorization, &permission.password) {
        (Authorization::Allow, _) => Verdict::Allowed,
        (Authorization::Deny, None) => Verdict::Denied,
        (Authorization::Deny, Some(password)) => {
            // The code replaces the passwords of the permissions attached to the
            // user (000); XiVO's AGI does not apply it to groups' or routes'.
            let code = user_code.filter(|c| !c.is_empty() && level == Level::User);
            Verdict::Password(code.unwrap_or(password).to_owned())
        }
    };
    PermissionDecision {
        verdict,
        rule: Some((permission.name.clone(), text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn permission(
        name: &str,
        allow: bool,
        password: Option<&str>,
        extensions: &[&str],
    ) -> Permission {
        Permission::new(&PermissionConfig {
            name: name.into(),
            authorization: if allow {
                Authorization::Allow
            } else {
                Authorization::Deny
            },
            password: password.map(Into::into),
            extensions: extensions.iter().map(|&e| e.to_owned()).collect(),
        })
        .expect("valid permission")
    }

    #[test]
    fn xivo_style_extensions_are_patterns() {
        // Reference 003 "Droits d'appels > Modifier | mobiles".
        let p = parse_extension("07XXXXX").expect("pattern");
        assert!(p.is_pattern());
        assert!(p.is_match("0712345"));
        assert!(
            parse_extension("08[1-79]XXXX")
                .expect("pattern")
                .is_match("0891234")
        );
        assert!(!parse_extension("1000").expect("exact").is_pattern());
        assert!(parse_extension("_0X.").expect("pattern").is_pattern());
        let err = parse_extension("0[1-X").expect_err("unterminated");
        assert_eq!(err.position(), 1);
    }

    #[test]
    fn no_permission_allows() {
        // 003: "Ne pas avoir de droit d'appel revient à tout autoriser".
        assert_eq!(
            check("0612345678", [], None),
            PermissionDecision::allowed_by_default()
        );
        let p = permission("mobiles", false, None, &["06XXXXXXXX"]);
        assert_eq!(
            check("0112345678", [(Level::User, &p)], None).verdict,
            Verdict::Allowed
        );
    }

    #[test]
    fn deny_all_on_route_allow_mobiles_on_user() {
        // 003: "deny-all" on the mobile route, "mobiles" on the users allowed to call.
        let deny_all = permission("deny-all", false, None, &["X."]);
        let mobiles = permission(
            "mobiles",
            true,
            None,
            &["07XXXXX", "08[1-79]XXXX", "09XXXXX"],
        );
        let with_right = check(
            "0712345",
            [(Level::User, &mobiles), (Level::Route, &deny_all)],
            None,
        );
        assert_eq!(with_right.verdict, Verdict::Allowed);
        assert_eq!(with_right.rule, Some(("mobiles".into(), "07XXXXX".into())));
        let without = check("0712345", [(Level::Route, &deny_all)], None);
        assert_eq!(without.verdict, Verdict::Denied);
        // 0801234 is not in "mobiles" ([1-79]), so deny-all decides.
        let excluded = check(
            "0801234",
            [(Level::User, &mobiles), (Level::Route, &deny_all)],
            None,
        );
        assert_eq!(excluded.verdict, Verdict::Denied);
    }

    #[test]
    fn most_precise_wins_whatever_the_level() {
        let allow_all = permission("all", true, None, &["_X."]);
        let no_premium = permission("premium", false, None, &["_089XXXXXXX"]);
        let one_premium = permission("hotline", true, None, &["0891234567"]);
        let route = [(Level::User, &allow_all), (Level::Route, &no_premium)];
        assert_eq!(check("0891111111", route, None).verdict, Verdict::Denied);
        let with_exact = [
            (Level::User, &allow_all),
            (Level::Route, &no_premium),
            (Level::Group, &one_premium),
        ];
        assert_eq!(
            check("0891234567", with_exact, None).verdict,
            Verdict::Allowed
        );
    }

    #[test]
    fn ties_user_first_then_allow() {
        let deny = permission("deny", false, None, &["_0X."]);
        let allow = permission("allow", true, None, &["_0X."]);
        assert_eq!(
            check("0123", [(Level::Route, &allow), (Level::User, &deny)], None).verdict,
            Verdict::Denied
        );
        assert_eq!(
            check("0123", [(Level::User, &deny), (Level::User, &allow)], None).verdict,
            Verdict::Allowed
        );
    }

    #[test]
    fn password_and_user_code() {
        let locked = permission("intl", false, Some("1234"), &["00X."]);
        assert_eq!(
            check("0044", [(Level::User, &locked)], None).verdict,
            Verdict::Password("1234".into())
        );
        // 000: the user's Rightcall Code overwrites the password.
        assert_eq!(
            check("0044", [(Level::User, &locked)], Some("9999")).verdict,
            Verdict::Password("9999".into())
        );
        assert_eq!(
            check("0044", [(Level::Route, &locked)], Some("9999")).verdict,
            Verdict::Password("1234".into())
        );
        // A plain deny is not turned into a password prompt by the code.
        let deny = permission("deny", false, None, &["00X."]);
        assert_eq!(
            check("0044", [(Level::User, &deny)], Some("9999")).verdict,
            Verdict::Denied
        );
    }

    proptest! {
        #[test]
        fn unrelated_permissions_do_not_change_the_verdict(
            number in "0[1-9][0-9]{8}",
            other in "1[0-9]{3}",
        ) {
            let base = permission("national", false, None, &["_0[1-9]XXXXXXXX"]);
            let unrelated = permission("internal", true, None, &[other.as_str()]);
            let before = check(&number, [(Level::Route, &base)], None);
            let after = check(&number, [(Level::User, &unrelated), (Level::Route, &base)], None);
            prop_assert_eq!(before, after);
        }

        #[test]
        fn order_of_permissions_does_not_matter(number in "[0-9]{1,6}") {
            let a = permission("a", true, None, &["_X.", "12"]);
            let b = permission("b", false, Some("pw"), &["_1X.", "_12X"]);
            let c = permission("c", false, None, &["_[0-5]!"]);
            let forward = check(&number, [(Level::User, &a), (Level::User, &b), (Level::User, &c)], None);
            let backward = check(&number, [(Level::User, &c), (Level::User, &b), (Level::User, &a)], None);
            prop_assert_eq!(forward, backward);
        }
    }
}
