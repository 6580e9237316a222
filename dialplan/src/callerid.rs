//! Inbound caller-ID number normalisation (the rules of `xivo_in_callerid.conf`,
//! reference 000/004 "Incoming caller number display").
//!
//! - Rules are tried in order; the first whose regular expression matches the caller
//!   number is applied and the others are ignored.
//! - The expression is matched at the *start* of the number (XiVO's AGI uses Python's
//!   `re.match`), so `^0[1-9]\d{8}$` and `0[1-9]\d{8}$` mean the same.
//! - Applying a rule removes `strip` characters from the front, then adds `add`
//!   in front: with `callerid = ^0[1-9]\d{8}$`, `strip = 1`, `add = +33`,
//!   `0320495000` becomes `+33320495000` (the reference's E.164 example).
//! - When the caller ID name was the number itself, the name follows the new number
//!   (the AGI then sets both).
//! - A reverse directory lookup is needed when the name is empty, equals the number
//!   (004 "Reverse Lookup") or is "unknown" (000 "Reverse lookup"); it uses the
//!   normalised number (000: "reverse lookup is performed after caller ID number
//!   normalization").

use regex::Regex;

use crate::config::CallerIdRuleConfig;

/// The largest compiled size of one rule's expression, to bound memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a rule's expression (as written: wrapping it in `^(?:…)` would let a
/// stray `)` change its meaning; [`matches_at_start`] anchors instead).
pub(crate) fn compile_rule(rule: &CallerIdRuleConfig) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&rule.callerid)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Whether `re` matches at the start of `text`, like Python's `re.match`. The
/// leftmost match starts at 0 exactly when some match starts there.
fn matches_at_start(re: &Regex, text: &str) -> bool {
    re.find(text).is_some_and(|m| m.start() == 0)
}

/// A caller ID after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedCallerId {
    /// The caller number.
    pub number: String,
    /// The caller name.
    pub name: String,
    /// The position of the rule that was applied, if one was.
    pub rule: Option<usize>,
    /// Whether the PBX should look the number up in the directories for a name.
    pub needs_reverse_lookup: bool,
}

/// The compiled inbound caller-ID rules.
#[derive(Debug, Clone, Default)]
pub struct CallerIdRewriter {
    rules: Vec<(Regex, usize, String)>,
}

impl CallerIdRewriter {
    /// Compiles the rules, in order.
    ///
    /// # Errors
    ///
    /// The position of the first rule whose expression does not compile, and why.
    pub fn new(rules: &[CallerIdRuleConfig]) -> Result<Self, (usize, regex::Error)> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                compile_rule(rule)
                    .map(|re| (re, rule.strip, rule.add.clone()))
                    .map_err(|err| (i, err))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Normalises an incoming caller ID.
    pub fn rewrite(&self, number: &str, name: &str) -> NormalizedCallerId {
        let name_was_number = name == number;
        let mut result = NormalizedCallerId {
            number: number.to_owned(),
            name: name.to_owned(),
            rule: None,
            needs_reverse_lookup: false,
        };
        if let Some((index, (_, strip, add))) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, (re, _, _))| matches_at_start(re, number))
        {
            let rest: String = number.chars().skip(*strip).collect();
            result.number = format!("{add}{rest}");
            result.rule = Some(index);
            if name_was_number {
                result.name.clone_from(&result.number);
            }
        }
        result.needs_reverse_lookup = result.name.trim().is_empty()
            || result.name == result.number
            || result.name.eq_ignore_ascii_case("unknown");
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(callerid: &str, strip: usize, add: &str) -> CallerIdRuleConfig {
        CallerIdRuleConfig {
            callerid: callerid.into(),
            strip,
            add: add.into(),
        }
    }

    #[test]
    fn reference_e164_example() {
        // 000/004 "Incoming caller number display": [national1] in E.164.
        let rw = CallerIdRewriter::new(&[rule(r"^0[1-9]\d{8}$", 1, "+33")]).expect("valid");
        let out = rw.rewrite("0320495000", "ACME");
        assert_eq!(out.number, "+33320495000");
        assert_eq!(out.name, "ACME");
        assert_eq!(out.rule, Some(0));
        assert!(!out.needs_reverse_lookup);
        // No match: unchanged.
        let out = rw.rewrite("+4930123456", "Berlin");
        assert_eq!((out.number.as_str(), out.rule), ("+4930123456", None));
    }

    #[test]
    fn first_match_wins_and_is_anchored_at_start() {
        let rw = CallerIdRewriter::new(&[rule(r"0[1-9]\d{8}$", 1, "+33"), rule(r"\d+", 0, "0")])
            .expect("valid");
        assert_eq!(rw.rewrite("0612345678", "x").number, "+33612345678");
        assert_eq!(rw.rewrite("612345678", "x").number, "0612345678");
        // Matched at the start only: "a0612345678" does not match the first rule,
        // and the second cannot match at the start either.
        assert_eq!(rw.rewrite("a0612345678", "x").rule, None);
        // An alternation is not unanchored by the wrapping.
        let rw = CallerIdRewriter::new(&[rule("9|1", 0, "+")]).expect("valid");
        assert_eq!(rw.rewrite("21", "x").rule, None);
        assert_eq!(rw.rewrite("12", "x").number, "+12");
    }

    #[test]
    fn reverse_lookup_flag_and_name_following_number() {
        let rw = CallerIdRewriter::new(&[rule(r"^0", 1, "+33")]).expect("valid");
        let out = rw.rewrite("0320495000", "0320495000");
        assert_eq!(
            out.name, "+33320495000",
            "a name equal to the number follows it"
        );
        assert!(out.needs_reverse_lookup);
        assert!(rw.rewrite("0320495000", "").needs_reverse_lookup);
        assert!(rw.rewrite("0320495000", "unknown").needs_reverse_lookup);
        assert!(!rw.rewrite("0320495000", "Bob").needs_reverse_lookup);
    }

    #[test]
    fn strip_longer_than_number_and_non_ascii() {
        let rw = CallerIdRewriter::new(&[rule(".", 20, "+")]).expect("valid");
        assert_eq!(rw.rewrite("0123", "n").number, "+");
        assert_eq!(rw.rewrite("é1", "n").number, "+");
    }

    #[test]
    fn bad_regex_is_reported_with_its_position() {
        let err = CallerIdRewriter::new(&[rule("0", 0, ""), rule("(", 0, "")]).expect_err("bad");
        assert_eq!(err.0, 1);
    }
}
