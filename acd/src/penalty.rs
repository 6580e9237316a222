//! Penalty rules, as Asterisk's `queuerules.conf`: after a caller has waited so many
//! seconds, its maximum and minimum member penalty change, opening the call to more
//! (or other) members.
//!
//! A rule is written as the value of a `penaltychange =>` line:
//! `seconds,max[,min]`, where `max` and `min` are an absolute penalty (`10`), a
//! relative change (`+2`, `-1`) or empty (no change). A caller only rings members whose
//! penalty lies in `[min, max]`; a caller starts with no limit unless the PBX gives one
//! (app_queue's `QUEUE_MAX_PENALTY` / `QUEUE_MIN_PENALTY`).
//!
//! Rules apply in order of their time, each once, when the caller's wait reaches it.
//! As app_queue's `update_qe_rule`: a relative change to a limit the caller does not
//! have leaves it unlimited (there is nothing to add to), an absolute one sets it; a
//! result below 0 is 0, and a minimum over the maximum is lowered to the maximum.
//!
//! ```
//! use std::time::Duration;
//! use pbxkit_acd::penalty::{PenaltyLimits, PenaltyRules};
//!
//! let rules = ["60,+2", "30,5,1", "90,,0"].into_iter().map(str::parse).collect::<Result<PenaltyRules, _>>()?;
//! let mut limits = PenaltyLimits { max: Some(1), min: None };
//! let mut next = 0;
//! next = rules.apply(Duration::from_secs(45), next, &mut limits);
//! assert_eq!(limits, PenaltyLimits { max: Some(5), min: Some(1) });
//! next = rules.apply(Duration::from_secs(90), next, &mut limits);
//! assert_eq!(limits, PenaltyLimits { max: Some(7), min: Some(0) });
//! assert_eq!(rules.next_change(next), None);
//! # Ok::<(), pbxkit_acd::penalty::PenaltyRuleError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How one limit changes when a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PenaltyChange {
    /// Left as it is (an empty field).
    #[default]
    Keep,
    /// Set to this penalty.
    Set(u32),
    /// Raised (positive) or lowered (negative) by this much.
    Relative(i64),
}

impl PenaltyChange {
    fn apply(self, current: Option<u32>) -> Option<u32> {
        match (self, current) {
            (Self::Keep, c) => c,
            (Self::Set(v), _) => Some(v),
            // Unlimited plus or minus anything stays unlimited (app_queue's INT_MAX check).
            (Self::Relative(_), None) => None,
            (Self::Relative(d), Some(c)) => {
                let v = i64::from(c).saturating_add(d).max(0);
                Some(u32::try_from(v).unwrap_or(u32::MAX))
            }
        }
    }

    fn parse(field: &str) -> Result<Self, PenaltyRuleErrorKind> {
        let field = field.trim();
        if field.is_empty() {
            return Ok(Self::Keep);
        }
        let bad = || PenaltyRuleErrorKind::BadPenalty(field.to_owned());
        if field.starts_with(['+', '-']) {
            let digits = &field[1..];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            field.parse().map(Self::Relative).map_err(|_| bad())
        } else if field.bytes().all(|b| b.is_ascii_digit()) {
            field.parse().map(Self::Set).map_err(|_| bad())
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for PenaltyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keep => Ok(()),
            Self::Set(v) => write!(f, "{v}"),
            Self::Relative(d) => write!(f, "{d:+}"),
        }
    }
}

/// One `penaltychange`: after `after` of waiting, change the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PenaltyRule {
    /// The wait after which the rule applies.
    pub after: Duration,
    /// The change of the maximum penalty.
    pub max: PenaltyChange,
    /// The change of the minimum penalty.
    pub min: PenaltyChange,
}

/// A caller's penalty range; `None` is no limit on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PenaltyLimits {
    /// Members with a higher penalty are not rung.
    pub max: Option<u32>,
    /// Members with a lower penalty are not rung.
    pub min: Option<u32>,
}

impl PenaltyLimits {
    /// Whether a member of this penalty is in range.
    pub fn allows(&self, penalty: u32) -> bool {
        self.max.is_none_or(|max| penalty <= max) && self.min.is_none_or(|min| penalty >= min)
    }
}

/// A penalty rule that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("penalty rule {rule:?}: {kind}")]
pub struct PenaltyRuleError {
    /// The rule as given.
    pub rule: String,
    /// What is wrong.
    pub kind: PenaltyRuleErrorKind,
}

/// What is wrong with a penalty rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PenaltyRuleErrorKind {
    /// No `,` after the time (app_queue ignores such a rule; we refuse it).
    #[error("expected `seconds,max[,min]`")]
    MissingMax,
    /// The time is not a number of seconds.
    #[error("bad time {0:?}")]
    BadTime(String),
    /// A penalty field is not a number, `+n` or `-n`.
    #[error("bad penalty {0:?}")]
    BadPenalty(String),
    /// A fourth field (app_queue's raise penalty), which is not supported.
    #[error("raise penalty is not supported")]
    RaiseUnsupported,
}

impl FromStr for PenaltyRule {
    type Err = PenaltyRuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |kind| PenaltyRuleError {
            rule: s.to_owned(),
            kind,
        };
        let mut fields = s.split(',');
        let time = fields.next().unwrap_or_default().trim();
        let Some(max) = fields.next() else {
            return Err(err(PenaltyRuleErrorKind::MissingMax));
        };
        let min = fields.next().unwrap_or_default();
        if fields.next().is_some() {
            return Err(err(PenaltyRuleErrorKind::RaiseUnsupported));
        }
        let after = time
            .parse::<u64>()
            .map_err(|_| err(PenaltyRuleErrorKind::BadTime(time.to_owned())))?;
        Ok(Self {
            after: Duration::from_secs(after),
            max: PenaltyChange::parse(max).map_err(err)?,
            min: PenaltyChange::parse(min).map_err(err)?,
        })
    }
}

impl fmt::Display for PenaltyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.after.as_secs(), self.max, self.min)
    }
}

/// The rules of one `queuerules.conf` context, kept in time order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PenaltyRules(Vec<PenaltyRule>);

impl PenaltyRules {
    /// The rules, sorted by time (rules of equal time keep their order).
    pub fn new(mut rules: Vec<PenaltyRule>) -> Self {
        rules.sort_by_key(|r| r.after);
        Self(rules)
    }

    /// The rules, in the order they apply.
    pub fn rules(&self) -> &[PenaltyRule] {
        &self.0
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies the rules from index `next` whose time `wait` has reached, to `limits`;
    /// returns the index of the next rule to apply.
    pub fn apply(&self, wait: Duration, mut next: usize, limits: &mut PenaltyLimits) -> usize {
        while let Some(rule) = self.0.get(next).filter(|r| r.after <= wait) {
            limits.max = rule.max.apply(limits.max);
            limits.min = rule.min.apply(limits.min);
            if let (Some(max), Some(min)) = (limits.max, limits.min)
                && min > max
            {
                limits.min = Some(max);
            }
            next += 1;
        }
        next
    }

    /// The wait at which rule `next` applies, if there is one.
    pub fn next_change(&self, next: usize) -> Option<Duration> {
        self.0.get(next).map(|r| r.after)
    }
}

impl FromIterator<PenaltyRule> for PenaltyRules {
    fn from_iter<T: IntoIterator<Item = PenaltyRule>>(iter: T) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let r: PenaltyRule = "30, +3".parse().expect("rule");
        assert_eq!(r.max, PenaltyChange::Relative(3));
        assert_eq!(r.min, PenaltyChange::Keep);
        assert_eq!(r.to_string(), "30,+3,");
        let r: PenaltyRule = "60,10,-1".parse().expect("rule");
        assert_eq!(
            (r.max, r.min),
            (PenaltyChange::Set(10), PenaltyChange::Relative(-1))
        );
        assert_eq!(r.to_string().parse::<PenaltyRule>(), Ok(r));
        let kind = |s: &str| s.parse::<PenaltyRule>().expect_err(s).kind;
        assert_eq!(kind("30"), PenaltyRuleErrorKind::MissingMax);
        assert_eq!(kind("x,1"), PenaltyRuleErrorKind::BadTime("x".into()));
        assert_eq!(kind("-5,1"), PenaltyRuleErrorKind::BadTime("-5".into()));
        assert_eq!(kind("5,+"), PenaltyRuleErrorKind::BadPenalty("+".into()));
        assert_eq!(kind("5,1a"), PenaltyRuleErrorKind::BadPenalty("1a".into()));
        assert_eq!(kind("5,1,2,3"), PenaltyRuleErrorKind::RaiseUnsupported);
        assert_eq!(
            kind("5,99999999999"),
            PenaltyRuleErrorKind::BadPenalty("99999999999".into())
        );
    }

    #[test]
    fn limits_clamp() {
        let rules = ["10,-5,+4", "20,+1"]
            .into_iter()
            .map(str::parse)
            .collect::<Result<PenaltyRules, _>>()
            .expect("rules");
        let mut l = PenaltyLimits {
            max: Some(3),
            min: Some(2),
        };
        // max 3 - 5 → 0; min 2 + 4 = 6 > 0 → 0.
        assert_eq!(rules.apply(Duration::from_secs(10), 0, &mut l), 1);
        assert_eq!(
            l,
            PenaltyLimits {
                max: Some(0),
                min: Some(0)
            }
        );
        let mut open = PenaltyLimits::default();
        assert_eq!(rules.apply(Duration::from_secs(99), 0, &mut open), 2);
        assert_eq!(open, PenaltyLimits::default(), "relative on unlimited");
        assert!(open.allows(u32::MAX));
    }
}
