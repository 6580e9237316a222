//! Skill rules, the XiVO rule language: `french > 50 & (sales | support ! 0) & WT < 60`.
//!
//! - Comparisons are `variable op constant` with `!` (not equal), `=`, `>`, `<`; a bare
//!   variable `sales` means `sales ! 0`.
//! - `&` binds tighter than `|`; parentheses group.
//! - Variables are skill names, `WT` (the caller's wait, seconds), `EWT` (the queue's
//!   expected wait) and `$name` meta-variables taken from the rule set's arguments
//!   (`select_lang(lang=german)` makes `$lang` read `german`); a meta-variable may stand
//!   for a skill name or for the constant.
//! - A comparison on a skill the agent does not have is false ("undefined"), so it is
//!   ignored inside an `|` and fails an `&`.
//!
//! A [`Rule`] is `[dynamic part ,] skill part` (`WT < 60, english > 50`); a
//! [`RuleSet`] tries its rules in order and the first whose dynamic part holds and that
//! selects at least one logged-in agent wins (see [`RuleSet::select`]).
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//! use pbxkit_acd::skills::{Context, Expr};
//!
//! let rule: Expr = "french > 50 & (sales | support ! 0) & WT < 60".parse()?;
//! assert_eq!(rule.to_string(), "(((french > 50) & (sales | (support ! 0))) & (WT < 60))");
//!
//! let skills = BTreeMap::from([("french".to_owned(), 75), ("support".to_owned(), 10)]);
//! let vars = BTreeMap::new();
//! let ctx = Context { skills: &skills, variables: &vars, wait: Duration::from_secs(10), ewt: Duration::ZERO };
//! assert!(rule.eval(&ctx));
//! assert!(!rule.eval(&Context { wait: Duration::from_secs(60), ..ctx }));
//! # Ok::<(), pbxkit_acd::skills::SkillRuleError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Deepest nesting of parentheses accepted, so that hostile rules cannot overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `!`: not equal.
    NotEqual,
    /// `=`: equal.
    Equal,
    /// `>`: greater than.
    Greater,
    /// `<`: less than.
    Less,
}

impl Op {
    fn symbol(self) -> char {
        match self {
            Self::NotEqual => '!',
            Self::Equal => '=',
            Self::Greater => '>',
            Self::Less => '<',
        }
    }

    fn apply(self, a: i64, b: i64) -> bool {
        match self {
            Self::NotEqual => a != b,
            Self::Equal => a == b,
            Self::Greater => a > b,
            Self::Less => a < b,
        }
    }
}

/// The left operand of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// A skill of the agent.
    Skill(String),
    /// `WT`: seconds the caller has waited.
    Wait,
    /// `EWT`: the queue's expected wait, seconds.
    ExpectedWait,
    /// `$name`: a meta-variable of the rule set, naming a skill (or `WT`/`EWT`).
    Meta(String),
}

/// The right operand of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer constant.
    Const(i64),
    /// `$name`: a meta-variable of the rule set holding an integer.
    Meta(String),
}

/// A parsed rule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A bare variable: `skill ! 0`.
    Has(Variable),
    /// `variable op value`.
    Compare(Variable, Op, Value),
    /// `a & b`.
    And(Box<Expr>, Box<Expr>),
    /// `a | b`.
    Or(Box<Expr>, Box<Expr>),
}

/// What a rule is evaluated against: one agent's skills and the call's wait.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The agent's skills and their weights.
    pub skills: &'a BTreeMap<String, i64>,
    /// The rule set's meta-variables (`$lang` → `german`).
    pub variables: &'a BTreeMap<String, String>,
    /// How long the caller has waited (`WT`).
    pub wait: Duration,
    /// The queue's expected wait (`EWT`).
    pub ewt: Duration,
}

/// A skill rule that does not parse; `column` is 1-based, in characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {kind}")]
pub struct SkillRuleError {
    /// 1-based character column of the fault (one past the end for a truncated rule).
    pub column: usize,
    /// What is wrong.
    pub kind: SkillRuleErrorKind,
}

/// What is wrong with a skill rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkillRuleErrorKind {
    /// The rule (or a part of it) is empty.
    #[error("expected a variable or '('")]
    ExpectedOperand,
    /// A comparison without its constant.
    #[error("expected an integer constant or $variable after the operator")]
    ExpectedConstant,
    /// A constant that does not fit 64 bits.
    #[error("integer constant out of range")]
    OutOfRange,
    /// A `(` without its `)`.
    #[error("expected ')'")]
    Unclosed,
    /// Something after a complete expression.
    #[error("unexpected {0:?}")]
    Unexpected(char),
    /// Parentheses nested deeper than [`MAX_DEPTH`].
    #[error("nested too deeply")]
    TooDeep,
}

struct Parser<'a> {
    chars: Vec<(usize, char)>,
    pos: usize,
    depth: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn error(&self, kind: SkillRuleErrorKind) -> SkillRuleError {
        let column = self
            .chars
            .get(self.pos)
            .map_or(self.src.chars().count() + 1, |&(i, _)| {
                self.src[..i].chars().count() + 1
            });
        SkillRuleError { column, kind }
    }

    fn skip_ws(&mut self) {
        while self
            .chars
            .get(self.pos)
            .is_some_and(|(_, c)| c.is_whitespace())
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn or(&mut self) -> Result<Expr, SkillRuleError> {
        let mut left = self.and()?;
        while self.peek() == Some('|') {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SkillRuleError> {
        let mut left = self.comparison()?;
        while self.peek() == Some('&') {
            self.pos += 1;
            let right = self.comparison()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, SkillRuleError> {
        if self.peek() == Some('(') {
            if self.depth >= MAX_DEPTH {
                return Err(self.error(SkillRuleErrorKind::TooDeep));
            }
            self.pos += 1;
            self.depth += 1;
            let inner = self.or()?;
            if self.peek() != Some(')') {
                return Err(self.error(SkillRuleErrorKind::Unclosed));
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        let variable = match self.word() {
            Some((true, name)) => Variable::Meta(name),
            Some((false, name)) => match name.as_str() {
                "WT" => Variable::Wait,
                "EWT" => Variable::ExpectedWait,
                _ => Variable::Skill(name),
            },
            None => return Err(self.error(SkillRuleErrorKind::ExpectedOperand)),
        };
        let op = match self.peek() {
            Some('!') => Op::NotEqual,
            Some('=') => Op::Equal,
            Some('>') => Op::Greater,
            Some('<') => Op::Less,
            _ => return Ok(Expr::Has(variable)),
        };
        self.pos += 1;
        let value = self.value()?;
        Ok(Expr::Compare(variable, op, value))
    }

    /// An identifier, `$`-prefixed or not: `[A-Za-z_][A-Za-z0-9_-]*`.
    fn word(&mut self) -> Option<(bool, String)> {
        self.skip_ws();
        let start = self.pos;
        let meta = self.chars.get(self.pos).is_some_and(|&(_, c)| c == '$');
        if meta {
            self.pos += 1;
        }
        let first = self.chars.get(self.pos).map(|&(_, c)| c);
        if !first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_') {
            self.pos = start;
            return None;
        }
        let mut name = String::new();
        while let Some(&(_, c)) = self.chars.get(self.pos) {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        Some((meta, name))
    }

    fn value(&mut self) -> Result<Value, SkillRuleError> {
        self.skip_ws();
        if self.chars.get(self.pos).is_some_and(|&(_, c)| c == '$') {
            return match self.word() {
                Some((_, name)) => Ok(Value::Meta(name)),
                None => Err(self.error(SkillRuleErrorKind::ExpectedConstant)),
            };
        }
        let start = self.pos;
        let mut text = String::new();
        if self.chars.get(self.pos).is_some_and(|&(_, c)| c == '-') {
            text.push('-');
            self.pos += 1;
        }
        while let Some(&(_, c)) = self.chars.get(self.pos) {
            if c.is_ascii_digit() {
                text.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        if text.is_empty() || text == "-" {
            self.pos = start;
            return Err(self.error(SkillRuleErrorKind::ExpectedConstant));
        }
        text.parse().map(Value::Const).map_err(|_| {
            self.pos = start;
            self.error(SkillRuleErrorKind::OutOfRange)
        })
    }
}

impl FromStr for Expr {
    type Err = SkillRuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parser = Parser {
            chars: s.char_indices().collect(),
            pos: 0,
            depth: 0,
            src: s,
        };
        let expr = parser.or()?;
        match parser.peek() {
            None => Ok(expr),
            Some(c) => Err(parser.error(SkillRuleErrorKind::Unexpected(c))),
        }
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Skill(name) => f.write_str(name),
            Self::Wait => f.write_str("WT"),
            Self::ExpectedWait => f.write_str("EWT"),
            Self::Meta(name) => write!(f, "${name}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Const(n) => write!(f, "{n}"),
            Self::Meta(name) => write!(f, "${name}"),
        }
    }
}

impl fmt::Display for Expr {
    /// Fully parenthesised: `((french > 50) & (sales | (support ! 0)))`; a bare
    /// variable prints bare.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Has(v) => write!(f, "{v}"),
            Self::Compare(v, op, value) => write!(f, "({v} {} {value})", op.symbol()),
            Self::And(a, b) => write!(f, "({a} & {b})"),
            Self::Or(a, b) => write!(f, "({a} | {b})"),
        }
    }
}

impl Context<'_> {
    /// The value of a variable, `None` when undefined (a skill the agent lacks, an
    /// unknown meta-variable).
    fn variable(&self, v: &Variable) -> Option<i64> {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        match v {
            Variable::Skill(name) => self.skills.get(name).copied(),
            Variable::Wait => Some(secs(self.wait)),
            Variable::ExpectedWait => Some(secs(self.ewt)),
            Variable::Meta(name) => match self.variables.get(name)?.as_str() {
                "WT" => Some(secs(self.wait)),
                "EWT" => Some(secs(self.ewt)),
                skill => self.skills.get(skill).copied(),
            },
        }
    }

    fn value(&self, v: &Value) -> Option<i64> {
        match v {
            Value::Const(n) => Some(*n),
            Value::Meta(name) => self.variables.get(name)?.trim().parse().ok(),
        }
    }
}

impl Expr {
    /// Evaluates the rule for one agent: an undefined comparison is false.
    pub fn eval(&self, ctx: &Context<'_>) -> bool {
        match self {
            Self::Has(v) => ctx.variable(v).is_some_and(|x| x != 0),
            Self::Compare(v, op, value) => match (ctx.variable(v), ctx.value(value)) {
                (Some(a), Some(b)) => op.apply(a, b),
                _ => false,
            },
            Self::And(a, b) => a.eval(ctx) && b.eval(ctx),
            Self::Or(a, b) => a.eval(ctx) || b.eval(ctx),
        }
    }
}

impl Expr {
    /// Adds to `out` the waits (whole seconds) at which a `WT` comparison of this
    /// expression may change its result, so that the engine knows when to evaluate
    /// again: `WT < c` changes at `c`, `WT > c` at `c + 1`, `=` and `!` at both.
    pub(crate) fn wait_thresholds(&self, variables: &BTreeMap<String, String>, out: &mut Vec<u64>) {
        match self {
            Self::And(a, b) | Self::Or(a, b) => {
                a.wait_thresholds(variables, out);
                b.wait_thresholds(variables, out);
            }
            Self::Has(_) => {}
            Self::Compare(v, op, value) => {
                let is_wait = match v {
                    Variable::Wait => true,
                    Variable::Meta(name) => variables.get(name).is_some_and(|x| x == "WT"),
                    _ => false,
                };
                let constant = match value {
                    Value::Const(n) => Some(*n),
                    Value::Meta(name) => variables.get(name).and_then(|x| x.trim().parse().ok()),
                };
                let (true, Some(c)) = (is_wait, constant) else {
                    return;
                };
                let Ok(c) = u64::try_from(c) else {
                    // A negative constant: WT (never negative) compares the same forever.
                    return;
                };
                if matches!(op, Op::Less | Op::Equal | Op::NotEqual) {
                    out.push(c);
                }
                if matches!(op, Op::Greater | Op::Equal | Op::NotEqual) {
                    out.push(c.saturating_add(1));
                }
            }
        }
    }
}

impl RuleSet {
    /// The first wait (whole seconds) strictly after `wait` at which some rule's `WT`
    /// comparison may change its result.
    pub(crate) fn next_wait_change(
        &self,
        variables: &BTreeMap<String, String>,
        wait: Duration,
    ) -> Option<u64> {
        let mut all = Vec::new();
        for rule in &self.rules {
            if let Some(d) = &rule.dynamic {
                d.wait_thresholds(variables, &mut all);
            }
            rule.skills.wait_thresholds(variables, &mut all);
        }
        all.into_iter().filter(|&t| t > wait.as_secs()).min()
    }
}

/// One rule of a rule set: an optional dynamic part (on `WT`/`EWT`) and a skill part,
/// written `WT < 60, english > 50` or just `english > 50`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// When present, the rule applies only while this holds.
    pub dynamic: Option<Expr>,
    /// Which agents the rule selects.
    pub skills: Expr,
}

impl FromStr for Rule {
    type Err = SkillRuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(',') {
            None => Ok(Rule {
                dynamic: None,
                skills: s.parse()?,
            }),
            Some((dynamic, skills)) => {
                let offset = dynamic.chars().count() + 1;
                let shift = |mut e: SkillRuleError| {
                    e.column += offset;
                    e
                };
                Ok(Rule {
                    dynamic: Some(dynamic.parse()?),
                    skills: skills.parse().map_err(shift)?,
                })
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.dynamic {
            write!(f, "{d}, ")?;
        }
        write!(f, "{}", self.skills)
    }
}

/// An ordered list of rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSet {
    /// The rules, tried in order.
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The index of the rule that applies and the agents (indexes into `agents`, each
    /// agent's skills) it selects: the first rule whose dynamic part holds and whose
    /// skill part selects at least one agent. `None` when no rule selects anybody.
    pub fn select(
        &self,
        agents: &[&BTreeMap<String, i64>],
        variables: &BTreeMap<String, String>,
        wait: Duration,
        ewt: Duration,
    ) -> Option<(usize, Vec<usize>)> {
        let empty = BTreeMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let call = Context {
                skills: &empty,
                variables,
                wait,
                ewt,
            };
            if rule.dynamic.as_ref().is_some_and(|d| !d.eval(&call)) {
                continue;
            }
            let chosen: Vec<usize> = agents
                .iter()
                .enumerate()
                .filter(|(_, skills)| rule.skills.eval(&Context { skills, ..call }))
                .map(|(j, _)| j)
                .collect();
            if !chosen.is_empty() {
                return Some((i, chosen));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(s: &str) -> String {
        s.parse::<Expr>().expect(s).to_string()
    }

    #[test]
    fn precedence_and_printing() {
        assert_eq!(
            print("french > 50 & (sales | support ! 0)"),
            "((french > 50) & (sales | (support ! 0)))"
        );
        assert_eq!(print("a | b & c"), "(a | (b & c))");
        assert_eq!(print("a & b | c"), "((a & b) | c)");
        assert_eq!(print("a&b&c"), "((a & b) & c)");
        assert_eq!(print("((x = -3))"), "(x = -3)");
        assert_eq!(
            print("technic ! 0 & ($os > 29 & $lang > 39 | $os > 39 & $lang > 19)"),
            "((technic ! 0) & ((($os > 29) & ($lang > 39)) | (($os > 39) & ($lang > 19))))"
        );
        assert_eq!(print("EWT < $max"), "(EWT < $max)");
        for s in ["a | b & c ! 1", "((a))", "x_1-y = 0 | WT > 5"] {
            let once = print(s);
            assert_eq!(print(&once), once);
        }
    }

    #[test]
    fn errors_give_the_column() {
        let err = |s: &str| s.parse::<Expr>().expect_err(s);
        assert_eq!(
            err("french > "),
            SkillRuleError {
                column: 10,
                kind: SkillRuleErrorKind::ExpectedConstant
            }
        );
        assert_eq!(err("10 < english").column, 1);
        assert_eq!(
            err("english < french").kind,
            SkillRuleErrorKind::ExpectedConstant
        );
        assert_eq!(err("english < french").column, 11);
        assert_eq!(err("(a | b").kind, SkillRuleErrorKind::Unclosed);
        assert_eq!(err("(a | b").column, 7);
        assert_eq!(
            err("a b"),
            SkillRuleError {
                column: 3,
                kind: SkillRuleErrorKind::Unexpected('b')
            }
        );
        assert_eq!(err("").kind, SkillRuleErrorKind::ExpectedOperand);
        assert_eq!(err("é > 1").column, 1);
        assert_eq!(err("é | > 1").column, 1);
        assert_eq!(
            err("a > 99999999999999999999").kind,
            SkillRuleErrorKind::OutOfRange
        );
        assert_eq!(err(&"(".repeat(100)).kind, SkillRuleErrorKind::TooDeep);
        let rule_err = "WT < 60, english >".parse::<Rule>().expect_err("rule");
        assert_eq!(rule_err.column, 19);
    }

    fn ctx<'a>(
        skills: &'a BTreeMap<String, i64>,
        vars: &'a BTreeMap<String, String>,
        wait: u64,
    ) -> Context<'a> {
        Context {
            skills,
            variables: vars,
            wait: Duration::from_secs(wait),
            ewt: Duration::from_secs(30),
        }
    }

    #[test]
    fn missing_skills_are_false_and_ignored_in_or() {
        let vars = BTreeMap::new();
        let none = BTreeMap::new();
        let zero = BTreeMap::from([("english".to_owned(), 0)]);
        let e: Expr = "english > 0 | english < 1".parse().expect("rule");
        assert!(!e.eval(&ctx(&none, &vars, 0)));
        assert!(e.eval(&ctx(&zero, &vars, 0)));
        let bare: Expr = "english | french".parse().expect("rule");
        let french = BTreeMap::from([("french".to_owned(), 1)]);
        assert!(bare.eval(&ctx(&french, &vars, 0)));
        assert!(!bare.eval(&ctx(&zero, &vars, 0)));
        let not: Expr = "english ! 5".parse().expect("rule");
        assert!(!not.eval(&ctx(&none, &vars, 0)), "undefined ! 5 is false");
    }

    #[test]
    fn meta_variables_and_dynamic_variables() {
        let skills = BTreeMap::from([("german".to_owned(), 45), ("linux".to_owned(), 35)]);
        let vars = BTreeMap::from([
            ("lang".to_owned(), "german".to_owned()),
            ("os".to_owned(), "linux".to_owned()),
            ("min".to_owned(), "40".to_owned()),
        ]);
        let e: Expr = "$os > 29 & $lang > 39".parse().expect("rule");
        assert!(e.eval(&ctx(&skills, &vars, 0)));
        let e: Expr = "german > $min".parse().expect("rule");
        assert!(e.eval(&ctx(&skills, &vars, 0)));
        let e: Expr = "german > $unset".parse().expect("rule");
        assert!(!e.eval(&ctx(&skills, &vars, 0)));
        let e: Expr = "WT < 60 & EWT = 30".parse().expect("rule");
        assert!(e.eval(&ctx(&skills, &vars, 59)));
        assert!(!e.eval(&ctx(&skills, &vars, 60)));
    }

    #[test]
    fn rule_sets_pick_the_first_rule_selecting_somebody() {
        // The XiVO documentation's example: `WT < 60, english > 50` then `english > 0`.
        let set = RuleSet {
            rules: vec![
                "WT < 60, english > 50".parse().expect("rule"),
                "english > 0".parse().expect("rule"),
            ],
        };
        let a = BTreeMap::from([("english".to_owned(), 75)]);
        let b = BTreeMap::from([("english".to_owned(), 25)]);
        let vars = BTreeMap::new();
        let s = |agents: &[&BTreeMap<String, i64>], wait| {
            set.select(agents, &vars, Duration::from_secs(wait), Duration::ZERO)
        };
        assert_eq!(s(&[&a, &b], 0), Some((0, vec![0])));
        assert_eq!(s(&[&a, &b], 60), Some((1, vec![0, 1])));
        // Agent A not logged in: the next rule applies at once.
        assert_eq!(s(&[&b], 0), Some((1, vec![0])));
        assert_eq!(s(&[], 0), None);
        assert_eq!(set.rules[0].to_string(), "(WT < 60), (english > 50)");
    }
}
