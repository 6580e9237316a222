//! LDAP filters for a directory source (wazo-dird's `ldap` back-end), without the
//! network part: RFC 4515 escaping, the search filter `(|(a=*term*)(b=*term*))` ANDed
//! with the custom filter (where `%Q` is the escaped term), the reverse-lookup filter on
//! the number attributes and the filter listing entries by unique column. The network
//! source built on them is `LdapSource` (feature `tokio`, so not linked from here: the
//! docs build without it too).
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

/// Escapes every byte of a binary value (`\hh` each), e.g. a 16-byte `objectGUID`.
pub fn escape_bytes(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value {
        let _ = write!(out, "\\{byte:02x}");
    }
    out
}

/// Whether `name` can be put in a filter as an attribute description (RFC 4512: a
/// name or numeric OID, with `;options`): ASCII letters, digits, `-`, `.` and `;`,
/// starting with a letter or digit.
pub fn is_attribute_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';'))
}

/// `(|(c1=v1)(c1=v2)(c2=v1)…)` for escaped values, without the `(|…)` around a single
/// term; `None` when there is no column or no value.
fn any_of<S: AsRef<str>>(columns: &[String], values: &[S]) -> Option<String> {
    let mut terms = columns.iter().flat_map(|column| {
        values
            .iter()
            .map(move |value| format!("({column}={})", value.as_ref()))
    });
    let first = terms.next()?;
    match terms.next() {
        None => Some(first),
        Some(second) => {
            let mut out = format!("(|{first}{second}");
            for term in terms {
                out.push_str(&term);
            }
            out.push(')');
            Some(out)
        }
    }
}

/// `(&custom generated)`, or whichever of the two exists.
fn and(custom: Option<String>, generated: Option<String>) -> Option<String> {
    match (custom, generated) {
        (Some(custom), Some(generated)) => Some(format!("(&{custom}{generated})")),
        (custom, generated) => custom.or(generated),
    }
}

impl LdapFilters {
    fn custom(&self, escaped: &str) -> Option<String> {
        self.custom_filter
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(|f| f.replace("%Q", escaped))
    }

    /// The search filter for `term` (trimmed, as the other sources do; an empty term
    /// is a presence test `(attr=*)`); `None` when there is neither a searched column
    /// nor a custom filter.
    pub fn search(&self, term: &str) -> Option<String> {
        let escaped = escape(term.trim());
        let value = if escaped.is_empty() {
            "*".to_owned()
        } else {
            format!("*{escaped}*")
        };
        and(
            self.custom(&escaped),
            any_of(&self.searched_columns, &[value]),
        )
    }

    /// The reverse-lookup filter for `number` (the custom filter applies too, with
    /// `%Q` the number); `None` without number attributes.
    pub fn reverse(&self, number: &str) -> Option<String> {
        self.reverse_any(&[number])
    }

    /// The reverse-lookup filter matching any of several spellings of one number (the
    /// first one is `%Q` in the custom filter); blank spellings are ignored; `None`
    /// without number attributes or without a spelling.
    pub fn reverse_any<S: AsRef<str>>(&self, numbers: &[S]) -> Option<String> {
        let escaped: Vec<String> = numbers
            .iter()
            .map(|n| escape(n.as_ref().trim()))
            .filter(|n| !n.is_empty())
            .collect();
        let first = escaped.first()?;
        let generated = any_of(&self.first_matched_columns, &escaped)?;
        and(self.custom(first), Some(generated))
    }

    /// The filter for entries whose `column` has one of `values` (already escaped,
    /// see [`escape`] and [`escape_bytes`]); the custom filter does not apply. `None`
    /// without a value.
    pub fn list(column: &str, escaped_values: &[String]) -> Option<String> {
        any_of(&[column.to_owned()], escaped_values)
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
        let f = filters(None, &["cn"], &["mobile"]);
        assert_eq!(
            f.reverse_any(&["+33 6 12", "0612", " "]).as_deref(),
            Some("(|(mobile=+33 6 12)(mobile=0612))")
        );
        assert_eq!(f.reverse_any::<&str>(&[]), None);
    }

    #[test]
    fn empty_term_is_a_presence_test() {
        let f = filters(None, &["cn", "sn"], &[]);
        assert_eq!(f.search("  ").as_deref(), Some("(|(cn=*)(sn=*))"));
        assert_eq!(f.search(" al ").as_deref(), Some("(|(cn=*al*)(sn=*al*))"));
    }

    #[test]
    fn list_filters() {
        assert_eq!(
            LdapFilters::list("entryUUID", &["a".into(), "b".into()]).as_deref(),
            Some("(|(entryUUID=a)(entryUUID=b))")
        );
        assert_eq!(LdapFilters::list("entryUUID", &[]), None);
        assert_eq!(escape_bytes(&[0, 0xab, b'a']), "\\00\\ab\\61");
    }

    #[test]
    fn attribute_names() {
        for ok in ["cn", "telephoneNumber", "cn;lang-fr", "2.5.4.3", "x-custom"] {
            assert!(is_attribute_name(ok), "{ok}");
        }
        for bad in ["", "cn)", "c n", "*", "-cn", "cn=x", "(cn"] {
            assert!(!is_attribute_name(bad), "{bad}");
        }
    }
}
