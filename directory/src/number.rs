//! Phone number normalisation for reverse lookup.
//!
//! The calling number of an incoming call and the numbers of a directory are written
//! in many ways: `+33 1 23 45 67 89`, `0033 1.23.45.67.89`, `01-23-45-67-89`,
//! `+33 (0)1 23 45 67 89`, `(01) 23 45 67 89`. A [`NumberPlan`] reduces each of them to
//! one key so that a reverse lookup is an exact match on keys:
//!
//! - spaces, tabs, dashes, dots, slashes and parentheses are removed, and the `(0)`
//!   trunk-prefix notation after a country code is dropped;
//! - `+` or the international prefix (`00` by default) makes the number international:
//!   its key is `+` and the digits;
//! - with a country code configured (e.g. `33`), a national number (national prefix
//!   `0` by default and more than [`NumberPlan::max_extension_len`] characters) becomes
//!   `+33` and the digits after the prefix, so that `+33 1 23…` and `01 23…` agree;
//! - anything else (internal extensions such as `1001`, `*10`) is kept as digits.
//!
//! A string with other characters (letters, `@`, a `+` in the middle) is not a number:
//! [`NumberPlan::normalize`] returns `None`.
//!
//! ```
//! use pbxkit_directory::number::NumberPlan;
//!
//! let france = NumberPlan::with_country_code("33");
//! assert_eq!(france.normalize("+33 (0)1 23 45 67 89").as_deref(), Some("+33123456789"));
//! assert_eq!(france.normalize("01.23.45.67.89").as_deref(), Some("+33123456789"));
//! assert_eq!(france.normalize("0033 1-23-45-67-89").as_deref(), Some("+33123456789"));
//! assert_eq!(france.normalize("1001").as_deref(), Some("1001"));
//! assert_eq!(france.normalize("alice"), None);
//! ```

use serde::Deserialize;

/// How numbers are written where the PBX is: international and national prefixes,
/// the country code. The default has no country code (numbers are only cleaned up and
/// `00` is read as `+`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumberPlan {
    /// The country code, digits only (`33` for France, `1` for NANP); `None` leaves
    /// national numbers as they are.
    pub country_code: Option<String>,
    /// The prefix dialled before a country code (`00`; `011` in NANP).
    pub international_prefix: String,
    /// The prefix of national numbers (`0`; empty in NANP).
    pub national_prefix: String,
    /// Numbers this long or shorter are internal extensions, never national numbers.
    pub max_extension_len: usize,
}

impl Default for NumberPlan {
    fn default() -> Self {
        Self {
            country_code: None,
            international_prefix: "00".to_owned(),
            national_prefix: "0".to_owned(),
            max_extension_len: 6,
        }
    }
}

/// Characters that only format a number.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '-' | '.' | '/' | '(' | ')' | '\u{a0}')
}

impl NumberPlan {
    /// The default plan with a country code (digits, e.g. `"33"`).
    pub fn with_country_code(country_code: &str) -> Self {
        Self {
            country_code: Some(country_code.to_owned()),
            ..Self::default()
        }
    }

    /// The lookup key of a number, or `None` when it is not a phone number (empty, or
    /// with characters other than digits, `*`, `#`, separators and a leading `+`).
    pub fn normalize(&self, raw: &str) -> Option<String> {
        let mut key = String::new();
        self.normalize_into(raw, &mut key).then_some(key)
    }

    /// [`NumberPlan::normalize`] into `out` (replacing what it held), with one
    /// allocation at most: the key is built in place, which matters when a million
    /// numbers are indexed. Returns whether `raw` is a number (`out` then holds its
    /// key; otherwise something unspecified).
    pub(crate) fn normalize_into(&self, raw: &str, out: &mut String) -> bool {
        let raw = raw.trim();
        let (international, rest) = match raw.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let cc = self.country_code.as_deref();
        out.clear();
        out.reserve(rest.len() + 1 + cc.map_or(0, str::len));
        // Every key but a plain one starts with `+`: the digits follow it, and it is
        // removed at the end when not needed.
        out.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' | '*' | '#' => out.push(c),
                c if is_separator(c) => {}
                _ => return false,
            }
        }
        let digits = out.get(1..).unwrap_or_default();
        if digits.is_empty() {
            return false;
        }
        let prefix = self.international_prefix.as_str();
        // Where the digits after `+` or the international prefix start in `out`.
        let international_start = if international {
            Some(1)
        } else if !prefix.is_empty() && digits.len() > prefix.len() && digits.starts_with(prefix) {
            Some(1 + prefix.len())
        } else {
            None
        };
        let national_prefix = self.national_prefix.as_str();
        if let Some(start) = international_start {
            // `+33 (0)1 23…`: the `(0)` is a national prefix to drop.
            if let Some(cc) = cc
                && rest.contains("(0)")
                && out.get(start..).is_some_and(|intl| intl.starts_with(cc))
            {
                let after = start + cc.len();
                if out
                    .get(after..)
                    .is_some_and(|after| after.starts_with(national_prefix))
                {
                    out.replace_range(after..after + national_prefix.len(), "");
                }
            }
            // `+` then the digits, without the international prefix.
            out.replace_range(1..start, "");
            return true;
        }
        if let Some(cc) = cc
            && digits.len() > self.max_extension_len
            && !digits.contains(['*', '#'])
            && digits.starts_with(national_prefix)
            && digits.len() > national_prefix.len()
        {
            // `+`, the country code, then the digits after the national prefix.
            out.replace_range(1..1 + national_prefix.len(), cc);
            return true;
        }
        out.remove(0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The allocating implementation `normalize_into` replaced, as a reference.
    fn reference(plan: &NumberPlan, raw: &str) -> Option<String> {
        let raw = raw.trim();
        let (international, rest) = match raw.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' | '*' | '#' => digits.push(c),
                c if is_separator(c) => {}
                _ => return None,
            }
        }
        if digits.is_empty() {
            return None;
        }
        let explicit_trunk_zero = rest.contains("(0)");
        let international_digits = if international {
            Some(digits.as_str())
        } else if !plan.international_prefix.is_empty()
            && digits.len() > plan.international_prefix.len()
            && digits.starts_with(plan.international_prefix.as_str())
        {
            digits.get(plan.international_prefix.len()..)
        } else {
            None
        };
        if let Some(intl) = international_digits {
            let intl = match &plan.country_code {
                // `+33 (0)1 23…`: the `(0)` is a national prefix to drop.
                Some(cc) if explicit_trunk_zero => match intl.strip_prefix(cc.as_str()) {
                    Some(after) => {
                        let after = after
                            .strip_prefix(plan.national_prefix.as_str())
                            .unwrap_or(after);
                        return Some(format!("+{cc}{after}"));
                    }
                    None => intl,
                },
                _ => intl,
            };
            return Some(format!("+{intl}"));
        }
        if let Some(cc) = &plan.country_code
            && digits.len() > plan.max_extension_len
            && !digits.contains(['*', '#'])
            && let Some(national) = digits.strip_prefix(plan.national_prefix.as_str())
            && !national.is_empty()
        {
            return Some(format!("+{cc}{national}"));
        }
        Some(digits)
    }

    #[test]
    fn cleans_separators() {
        let plan = NumberPlan::default();
        assert_eq!(
            plan.normalize(" 555-135.4958 ").as_deref(),
            Some("5551354958")
        );
        assert_eq!(
            plan.normalize("(418) 555 6666").as_deref(),
            Some("4185556666")
        );
        assert_eq!(
            plan.normalize("+1 418 555 6666").as_deref(),
            Some("+14185556666")
        );
        assert_eq!(
            plan.normalize("0014185556666").as_deref(),
            Some("+14185556666")
        );
        assert_eq!(plan.normalize("*10").as_deref(), Some("*10"));
        assert_eq!(plan.normalize("00").as_deref(), Some("00"));
        for bad in ["", "  ", "+", "abc", "1+2", "++1", "sip:1001@pbx", "12a"] {
            assert_eq!(plan.normalize(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn national_and_international_agree() {
        let plan = NumberPlan::with_country_code("33");
        let key = Some("+33123456789".to_owned());
        for n in [
            "+33123456789",
            "+33 1 23 45 67 89",
            "+33 (0)1 23 45 67 89",
            "0033 1 23 45 67 89",
            "01 23 45 67 89",
            "01-23-45-67-89",
        ] {
            assert_eq!(plan.normalize(n), key, "{n}");
        }
        // Extensions and short numbers are not national numbers.
        assert_eq!(plan.normalize("0123").as_deref(), Some("0123"));
        assert_eq!(plan.normalize("1001").as_deref(), Some("1001"));
        // Another country stays as written.
        assert_eq!(
            plan.normalize("+44 20 7946 0000").as_deref(),
            Some("+442079460000")
        );
        assert_eq!(
            plan.normalize("+44 (0)20 7946 0000").as_deref(),
            Some("+4402079460000")
        );
    }

    #[test]
    fn nanp_plan() {
        let plan = NumberPlan {
            country_code: Some("1".to_owned()),
            international_prefix: "011".to_owned(),
            national_prefix: String::new(),
            max_extension_len: 6,
        };
        assert_eq!(
            plan.normalize("418-555-6666").as_deref(),
            Some("+14185556666")
        );
        assert_eq!(
            plan.normalize("+1 418 555 6666").as_deref(),
            Some("+14185556666")
        );
        assert_eq!(
            plan.normalize("011 33 1 23 45 67 89").as_deref(),
            Some("+33123456789")
        );
    }

    fn separators() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop_oneof![Just(" "), Just("-"), Just("."), Just("")], 0..3)
            .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(raw in "[+]?[0-9 ().*#-]{0,20}", cc in proptest::option::of("[1-9][0-9]{0,2}")) {
            let plan = NumberPlan { country_code: cc, ..NumberPlan::default() };
            if let Some(key) = plan.normalize(&raw) {
                prop_assert_eq!(plan.normalize(&key), Some(key.clone()));
            }
        }

        #[test]
        fn separators_do_not_matter(digits in proptest::collection::vec("[0-9]", 1..15), seps in proptest::collection::vec(separators(), 15)) {
            let plan = NumberPlan::with_country_code("33");
            let plain: String = digits.concat();
            let spaced: String = digits.iter().zip(&seps).map(|(d, s)| format!("{d}{s}")).collect();
            prop_assert_eq!(plan.normalize(&plain), plan.normalize(&spaced));
            let plus_plain = format!("+{plain}");
            let plus_spaced = format!("+ {spaced}");
            prop_assert_eq!(plan.normalize(&plus_plain), plan.normalize(&plus_spaced));
        }

        #[test]
        fn international_and_national_forms_agree(nsn in "[1-9][0-9]{8}") {
            let plan = NumberPlan::with_country_code("33");
            let national = plan.normalize(&format!("0{nsn}"));
            prop_assert_eq!(&national, &Some(format!("+33{nsn}")));
            prop_assert_eq!(&plan.normalize(&format!("+33{nsn}")), &national);
            prop_assert_eq!(&plan.normalize(&format!("0033{nsn}")), &national);
            prop_assert_eq!(&plan.normalize(&format!("+33 (0){nsn}")), &national);
        }

        /// The in-place key equals the one the previous, allocating code built, for
        /// every plan.
        #[test]
        fn normalize_into_matches_the_reference(
            raw in "[ ]?[+]?[0-9 ().*#+a-]{0,16}|[+]?[0-9]{0,4}[ ]?[(]0[)][0-9 ]{0,10}",
            cc in proptest::option::of("[1-9][0-9]{0,2}"),
            international_prefix in prop_oneof![Just("00"), Just("011"), Just(""), Just("0")],
            national_prefix in prop_oneof![Just("0"), Just(""), Just("00"), Just("1")],
            max_extension_len in 0usize..8,
        ) {
            let plan = NumberPlan {
                country_code: cc,
                international_prefix: international_prefix.to_owned(),
                national_prefix: national_prefix.to_owned(),
                max_extension_len,
            };
            prop_assert_eq!(plan.normalize(&raw), reference(&plan, &raw));
            // A reused buffer holding an earlier key gives the same answer.
            let mut out = String::from("+999999");
            let key = plan.normalize_into(&raw, &mut out).then_some(out);
            prop_assert_eq!(key, reference(&plan, &raw));
        }

        #[test]
        fn never_panics(raw in "\\PC{0,30}") {
            let _ = NumberPlan::with_country_code("33").normalize(&raw);
        }
    }
}
