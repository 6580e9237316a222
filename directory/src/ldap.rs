//! LDAP filters for a directory source (wazo-dird's `ldap` back-end), without the
//! network part: RFC 4515 escaping, the search filter `(|(a=*term*)(b=*term*))` ANDed
//! with the custom filter (where `%Q` is the escaped term), and the reverse-lookup
//! filter on the number attributes. The I/O source (ldap3) is not written yet.
//!
//! ```
//! use pbxkit_directory::ldap::{LdapFilters, escape};
//!
//! let filters = LdapFilters {
//!     custom_filter: Some("(l=québec)".into()),
//!     searched_columns: vec!["cn".into(), "st".into()],
//!     first_matched_columns: vec!["telephoneNumber".into()],
//! };
//! assert_eq!(filters.search("bob").as_deref(), Some("(&(l=québec)(|(cn=*bob*)(st=*bob*)))"));
//! // A term cannot inject filter syntax: it matches literally.
//! assert_eq!(escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
//! ```

use std::fmt::Write as _;

/// Escapes a value for an LDAP filter (RFC 4515): `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => {
                let _ = write!(out, "\\{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// The filter-related configuration of an LDAP source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdapFilters {
    /// `ldap_custom_filter`: ANDed with the generated filter; `%Q` is replaced by the
    /// escaped term.
    pub custom_filter: Option<String>,
    /// Attributes searched with `(attr=*term*)`.
    pub searched_columns: Vec<String>,
    /// Number attributes for reverse lookup, matched with `(attr=number)`.
    pub first_matched_columns: Vec<String>,
}

fn any_of(columns: &[String], value: &str) -> Option<String> {
    match columns {
        [] => None,
        [one] => Some(format!("({one}={value})")),
        many => {
            let mut out = String::from("(|");
            for column in many {
                let _ = write!(out, "({column}={value})");
            }
            out.push(')');
            Some(out)
        }
    }
}

impl LdapFilters {
    /// The search filter for `term`; `None` when there is neither a searched column
    /// nor a custom filter.
    pub fn search(&self, term: &str) -> Option<String> {
        let escaped = escape(term);
        let generated = any_of(&self.searched_columns, &format!("*{escaped}*"));
        let custom = self
            .custom_filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|f| f.replace("%Q", &escaped));
        match (custom, generated) {
            (Some(custom), Some(generated)) => Some(format!("(&{custom}{generated})")),
            (custom, generated) => custom.or(generated),
        }
    }

    /// The reverse-lookup filter for `number` (the custom filter applies too, with
    /// `%Q` the number); `None` without number attributes.
    pub fn reverse(&self, number: &str) -> Option<String> {
        let escaped = escape(number.trim());
        if escaped.is_empty() {
            return None;
        }
        let generated = any_of(&self.first_matched_columns, &escaped)?;
        match self
            .custom_filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
        {
            Some(custom) => Some(format!("(&{}{generated})", custom.replace("%Q", &escaped))),
            None => Some(generated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(custom: Option<&str>, searched: &[&str], numbers: &[&str]) -> LdapFilters {
        LdapFilters {
            custom_filter: custom.map(str::to_owned),
            searched_columns: searched.iter().map(|s| (*s).to_owned()).collect(),
            first_matched_columns: numbers.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn search_filters() {
        let f = filters(None, &["cn"], &[]);
        assert_eq!(f.search("al").as_deref(), Some("(cn=*al*)"));
        let f = filters(Some("(&(o=ACME)(cn=*%Q*))"), &[], &[]);
        assert_eq!(f.search("a*b").as_deref(), Some("(&(o=ACME)(cn=*a\\2ab*))"));
        assert_eq!(filters(None, &[], &[]).search("x"), None);
        let f = filters(None, &["cn", "sn"], &[]);
        assert_eq!(
            f.search("*)(uid=*").as_deref(),
            Some("(|(cn=*\\2a\\29\\28uid=\\2a*)(sn=*\\2a\\29\\28uid=\\2a*))")
        );
        assert_eq!(escape("a\\b\0"), "a\\5cb\\00");
    }

    #[test]
    fn reverse_filters() {
        let f = filters(Some("(l=québec)"), &["cn"], &["telephoneNumber", "mobile"]);
        assert_eq!(
            f.reverse("1001").as_deref(),
            Some("(&(l=québec)(|(telephoneNumber=1001)(mobile=1001)))")
        );
        assert_eq!(f.reverse("  "), None);
        assert_eq!(filters(None, &["cn"], &[]).reverse("1001"), None);
    }
}
