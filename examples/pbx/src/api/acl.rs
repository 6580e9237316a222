//! Access control lists, as wazo-auth writes them: `service.resource.action`, words
//! separated by dots, where a token's ACL may use `*` for exactly one word and `#`
//! for one or more, and `me` stands for the token's own user (expanded when the
//! token is issued, so that checking is a plain match).
//!
//! A resource requires one concrete ACL (`confd.users.1000.read`); a token grants
//! it when one of its patterns matches (`confd.users.me.#` issued to user 1000 is
//! `confd.users.1000.#`).

/// Longest ACL pattern or required ACL taken, in bytes, and most words in one:
/// patterns come from the configuration and required ACLs from request paths.
const MAX_LEN: usize = 256;
const MAX_WORDS: usize = 32;

/// A token's permissions: patterns, each `service.resource.action`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Acl {
    patterns: Vec<String>,
}

impl Acl {
    /// The ACL of `patterns`, `me` replaced by `user` (when the token has one).
    pub(crate) fn new<S: AsRef<str>>(patterns: &[S], user: Option<&str>) -> Acl {
        let patterns = patterns
            .iter()
            .map(|p| {
                p.as_ref()
                    .split('.')
                    .map(|word| match (word, user) {
                        ("me", Some(user)) => user,
                        (word, _) => word,
                    })
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect();
        Acl { patterns }
    }

    /// The patterns, as issued.
    pub(crate) fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the ACL grants `required` (a concrete ACL: no `*` or `#` in it).
    pub(crate) fn allows(&self, required: &str) -> bool {
        if required.len() > MAX_LEN {
            return false;
        }
        let words: Vec<&str> = required.split('.').collect();
        if words.len() > MAX_WORDS || words.iter().any(|w| w.is_empty()) {
            return false;
        }
        self.patterns.iter().any(|p| {
            let pattern: Vec<&str> = p.split('.').collect();
            p.len() <= MAX_LEN && pattern.len() <= MAX_WORDS && matches(&pattern, &words)
        })
    }
}

/// Whether `pattern` matches `words`: `*` is one word, `#` one or more.
fn matches(pattern: &[&str], words: &[&str]) -> bool {
    match (pattern.split_first(), words.split_first()) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some((&"#", rest)), Some(_)) => {
            // `#` takes 1..=all the words; both lists are bounded by MAX_WORDS,
            // so the backtracking stays small.
            (1..=words.len()).any(|taken| matches(rest, &words[taken..]))
        }
        (Some((&"*", rest)), Some((_, tail))) => matches(rest, tail),
        (Some((p, rest)), Some((w, tail))) => p == w && matches(rest, tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(patterns: &[&str]) -> Acl {
        Acl::new(patterns, Some("1000"))
    }

    #[test]
    fn words_match_exactly() {
        let a = acl(&["confd.users.read"]);
        assert!(a.allows("confd.users.read"));
        assert!(!a.allows("confd.users.create"));
        assert!(!a.allows("confd.users.read.more"));
        assert!(!a.allows("confd.users"));
    }

    #[test]
    fn star_is_one_word_and_hash_one_or_more() {
        // The reference's examples.
        let a = acl(&["confd.users.me.funckeys.*.*"]);
        assert!(a.allows("confd.users.1000.funckeys.1.read"));
        assert!(a.allows("confd.users.1000.funckeys.templates.read"));
        assert!(!a.allows("confd.users.1000.funckeys.read"));
        let a = acl(&["confd.users.me.#.read"]);
        assert!(a.allows("confd.users.1000.lines.read"));
        assert!(a.allows("confd.users.1000.lines.7.read"));
        assert!(!a.allows("confd.users.1000.read"), "# is at least one word");
        assert!(!a.allows("confd.users.1001.lines.read"));
        assert!(!a.allows("confd.users.1000.lines.delete"));
        let all = acl(&["#"]);
        assert!(all.allows("calld.calls.read"));
        assert!(all.allows("websocketd"));
    }

    #[test]
    fn me_is_the_tokens_user_and_nothing_without_one() {
        let a = acl(&["calld.users.me.calls.read"]);
        assert_eq!(a.patterns(), ["calld.users.1000.calls.read"]);
        assert!(!a.allows("calld.users.me.calls.read"));
        let service = Acl::new(&["calld.users.me.calls.read"], None);
        assert!(!service.allows("calld.users.1000.calls.read"));
    }

    #[test]
    fn malformed_or_huge_required_acls_are_refused() {
        let a = acl(&["#"]);
        assert!(!a.allows(""));
        assert!(!a.allows("confd..read"));
        assert!(!a.allows(&"a.".repeat(100)));
        assert!(!a.allows(&"x".repeat(MAX_LEN + 1)));
    }
}
