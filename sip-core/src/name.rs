//! Header names: case-insensitive, with RFC 3261 compact forms, and an open set.
//!
//! ```
//! use pbxkit_sip::HeaderName;
//!
//! // Any case, long or compact form; written back in the RFC's spelling.
//! assert_eq!(HeaderName::parse("call-id"), HeaderName::CallId);
//! assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
//! assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
//! assert_eq!(HeaderName::CallId.compact(), Some('i'));
//! // Unknown names compare without case too, and keep their spelling.
//! let account = HeaderName::parse("X-Account-Code");
//! assert_eq!(account, HeaderName::parse("x-account-code"));
//! assert_eq!(account.as_str(), "X-Account-Code");
//! // List headers may be split over lines or comma-separated (RFC 3261 §7.3.1).
//! assert!(HeaderName::Via.is_list() && !HeaderName::From.is_list());
//! ```

use crate::bytestr::ByteStr;
use std::fmt;

/// A header name. Known names compare case-insensitively and map their compact form
/// (`v` for Via, `i` for Call-ID...); any other name is kept as received so that
/// unknown headers are re-serialised byte-exact.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HeaderName {
    /// `Accept`.
    Accept,
    /// `Accept-Encoding`.
    AcceptEncoding,
    /// `Accept-Language`.
    AcceptLanguage,
    /// `Alert-Info`.
    AlertInfo,
    /// `Allow`.
    Allow,
    /// `Allow-Events` (compact form `u`).
    AllowEvents,
    /// `Authentication-Info`.
    AuthenticationInfo,
    /// `Authorization`.
    Authorization,
    /// `Call-ID` (compact form `i`).
    CallId,
    /// `Call-Info`.
    CallInfo,
    /// `Contact` (compact form `m`).
    Contact,
    /// `Content-Disposition`.
    ContentDisposition,
    /// `Content-Encoding` (compact form `e`).
    ContentEncoding,
    /// `Content-Language`.
    ContentLanguage,
    /// `Content-Length` (compact form `l`).
    ContentLength,
    /// `Content-Type` (compact form `c`).
    ContentType,
    /// `CSeq`.
    CSeq,
    /// `Date`.
    Date,
    /// `Diversion`.
    Diversion,
    /// `Error-Info`.
    ErrorInfo,
    /// `Event` (compact form `o`).
    Event,
    /// `Expires`.
    Expires,
    /// `From` (compact form `f`).
    From,
    /// `In-Reply-To`.
    InReplyTo,
    /// `Max-Forwards`.
    MaxForwards,
    /// `Min-Expires`.
    MinExpires,
    /// `Min-SE`.
    MinSe,
    /// `MIME-Version`.
    MimeVersion,
    /// `Organization`.
    Organization,
    /// `P-Asserted-Identity`.
    PAssertedIdentity,
    /// `P-Preferred-Identity`.
    PPreferredIdentity,
    /// `Path`.
    Path,
    /// `Priority`.
    Priority,
    /// `Privacy`.
    Privacy,
    /// `Proxy-Authenticate`.
    ProxyAuthenticate,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// `Proxy-Require`.
    ProxyRequire,
    /// `RAck`.
    RAck,
    /// `Reason`.
    Reason,
    /// `Record-Route`.
    RecordRoute,
    /// `Refer-To` (compact form `r`).
    ReferTo,
    /// `Referred-By` (compact form `b`).
    ReferredBy,
    /// `Remote-Party-ID`.
    RemotePartyId,
    /// `Replaces`.
    Replaces,
    /// `Reply-To`.
    ReplyTo,
    /// `Require`.
    Require,
    /// `Retry-After`.
    RetryAfter,
    /// `Route`.
    Route,
    /// `RSeq`.
    RSeq,
    /// `Server`.
    Server,
    /// `Session-Expires` (compact form `x`).
    SessionExpires,
    /// `Subject` (compact form `s`).
    Subject,
    /// `Subscription-State`.
    SubscriptionState,
    /// `Supported` (compact form `k`).
    Supported,
    /// `Timestamp`.
    Timestamp,
    /// `To` (compact form `t`).
    To,
    /// `Unsupported`.
    Unsupported,
    /// `User-Agent`.
    UserAgent,
    /// `Via` (compact form `v`).
    Via,
    /// `Warning`.
    Warning,
    /// `WWW-Authenticate`.
    WwwAuthenticate,
    /// `Identity` (compact form `y`).
    Identity,
    /// Any other header, spelled as received.
    Other(ByteStr),
}

impl HeaderName {
    /// The canonical spelling (`Call-ID`, `WWW-Authenticate`), or the received one.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Accept => "Accept",
            HeaderName::AcceptEncoding => "Accept-Encoding",
            HeaderName::AcceptLanguage => "Accept-Language",
            HeaderName::AlertInfo => "Alert-Info",
            HeaderName::Allow => "Allow",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::AuthenticationInfo => "Authentication-Info",
            HeaderName::Authorization => "Authorization",
            HeaderName::CallId => "Call-ID",
            HeaderName::CallInfo => "Call-Info",
            HeaderName::Contact => "Contact",
            HeaderName::ContentDisposition => "Content-Disposition",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentLanguage => "Content-Language",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::CSeq => "CSeq",
            HeaderName::Date => "Date",
            HeaderName::Diversion => "Diversion",
            HeaderName::ErrorInfo => "Error-Info",
            HeaderName::Event => "Event",
            HeaderName::Expires => "Expires",
            HeaderName::From => "From",
            HeaderName::InReplyTo => "In-Reply-To",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::MinSe => "Min-SE",
            HeaderName::MimeVersion => "MIME-Version",
            HeaderName::Organization => "Organization",
            HeaderName::PAssertedIdentity => "P-Asserted-Identity",
            HeaderName::PPreferredIdentity => "P-Preferred-Identity",
            HeaderName::Path => "Path",
            HeaderName::Priority => "Priority",
            HeaderName::Privacy => "Privacy",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::RAck => "RAck",
            HeaderName::Reason => "Reason",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::RemotePartyId => "Remote-Party-ID",
            HeaderName::Replaces => "Replaces",
            HeaderName::ReplyTo => "Reply-To",
            HeaderName::Require => "Require",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Route => "Route",
            HeaderName::RSeq => "RSeq",
            HeaderName::Server => "Server",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::Subject => "Subject",
            HeaderName::SubscriptionState => "Subscription-State",
            HeaderName::Supported => "Supported",
            HeaderName::Timestamp => "Timestamp",
            HeaderName::To => "To",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Via => "Via",
            HeaderName::Warning => "Warning",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::Identity => "Identity",
            HeaderName::Other(name) => name.as_str(),
        }
    }

    /// The compact form, if the header has one.
    pub fn compact(&self) -> Option<char> {
        match self {
            HeaderName::AllowEvents => Some('u'),
            HeaderName::CallId => Some('i'),
            HeaderName::Contact => Some('m'),
            HeaderName::ContentEncoding => Some('e'),
            HeaderName::ContentLength => Some('l'),
            HeaderName::ContentType => Some('c'),
            HeaderName::Event => Some('o'),
            HeaderName::From => Some('f'),
            HeaderName::ReferTo => Some('r'),
            HeaderName::ReferredBy => Some('b'),
            HeaderName::SessionExpires => Some('x'),
            HeaderName::Subject => Some('s'),
            HeaderName::Supported => Some('k'),
            HeaderName::To => Some('t'),
            HeaderName::Via => Some('v'),
            HeaderName::Identity => Some('y'),
            _ => None,
        }
    }

    /// Recognises a header name (any case, long or compact form).
    pub fn parse(name: &str) -> HeaderName {
        match Self::known(name.as_bytes()) {
            Some(known) => known,
            None => HeaderName::Other(ByteStr::from(name)),
        }
    }

    /// The known header with this name (compact forms included), if any.
    pub(crate) fn known(name: &[u8]) -> Option<HeaderName> {
        // Names are nearly always written as the RFCs spell them: an exact comparison
        // (a few word loads) first, the byte-by-byte case-insensitive one otherwise.
        // Inlined so that each comparison with a constant compiles to word compares.
        #[inline(always)]
        fn same(name: &[u8], s: &str) -> bool {
            name == s.as_bytes() || name.eq_ignore_ascii_case(s.as_bytes())
        }
        let eq = |s: &str| same(name, s);
        let first = name.first()?.to_ascii_lowercase();
        // Dispatch on length and first letter: at most two candidates to compare.
        let found = match (name.len(), first) {
            (1, b'b') => HeaderName::ReferredBy,
            (1, b'c') => HeaderName::ContentType,
            (1, b'e') => HeaderName::ContentEncoding,
            (1, b'f') => HeaderName::From,
            (1, b'i') => HeaderName::CallId,
            (1, b'k') => HeaderName::Supported,
            (1, b'l') => HeaderName::ContentLength,
            (1, b'm') => HeaderName::Contact,
            (1, b'o') => HeaderName::Event,
            (1, b'r') => HeaderName::ReferTo,
            (1, b's') => HeaderName::Subject,
            (1, b't') => HeaderName::To,
            (1, b'u') => HeaderName::AllowEvents,
            (1, b'v') => HeaderName::Via,
            (1, b'x') => HeaderName::SessionExpires,
            (1, b'y') => HeaderName::Identity,
            (2, b't') if eq("To") => HeaderName::To,
            (3, b'v') if eq("Via") => HeaderName::Via,
            (4, b'c') if eq("CSeq") => HeaderName::CSeq,
            (4, b'd') if eq("Date") => HeaderName::Date,
            (4, b'f') if eq("From") => HeaderName::From,
            (4, b'p') if eq("Path") => HeaderName::Path,
            (4, b'r') if eq("RAck") => HeaderName::RAck,
            (4, b'r') if eq("RSeq") => HeaderName::RSeq,
            (5, b'a') if eq("Allow") => HeaderName::Allow,
            (5, b'e') if eq("Event") => HeaderName::Event,
            (5, b'r') if eq("Route") => HeaderName::Route,
            (6, b'a') if eq("Accept") => HeaderName::Accept,
            (6, b'm') if eq("Min-SE") => HeaderName::MinSe,
            (6, b'r') if eq("Reason") => HeaderName::Reason,
            (6, b's') if eq("Server") => HeaderName::Server,
            (7, b'c') if eq("Call-ID") => HeaderName::CallId,
            (7, b'c') if eq("Contact") => HeaderName::Contact,
            (7, b'e') if eq("Expires") => HeaderName::Expires,
            (7, b'p') if eq("Privacy") => HeaderName::Privacy,
            (7, b'r') if eq("Require") => HeaderName::Require,
            (7, b's') if eq("Subject") => HeaderName::Subject,
            (7, b'w') if eq("Warning") => HeaderName::Warning,
            (8, b'i') if eq("Identity") => HeaderName::Identity,
            (8, b'p') if eq("Priority") => HeaderName::Priority,
            (8, b'r') if eq("Refer-To") => HeaderName::ReferTo,
            (8, b'r') if eq("Replaces") => HeaderName::Replaces,
            (8, b'r') if eq("Reply-To") => HeaderName::ReplyTo,
            (9, b'c') if eq("Call-Info") => HeaderName::CallInfo,
            (9, b'd') if eq("Diversion") => HeaderName::Diversion,
            (9, b's') if eq("Supported") => HeaderName::Supported,
            (9, b't') if eq("Timestamp") => HeaderName::Timestamp,
            (10, b'a') if eq("Alert-Info") => HeaderName::AlertInfo,
            (10, b'e') if eq("Error-Info") => HeaderName::ErrorInfo,
            (10, b'u') if eq("User-Agent") => HeaderName::UserAgent,
            (11, b'i') if eq("In-Reply-To") => HeaderName::InReplyTo,
            (11, b'm') if eq("Min-Expires") => HeaderName::MinExpires,
            (11, b'r') if eq("Referred-By") => HeaderName::ReferredBy,
            (11, b'r') if eq("Retry-After") => HeaderName::RetryAfter,
            (11, b'u') if eq("Unsupported") => HeaderName::Unsupported,
            (12, b'a') if eq("Allow-Events") => HeaderName::AllowEvents,
            (12, b'c') if eq("Content-Type") => HeaderName::ContentType,
            (12, b'm') if eq("Max-Forwards") => HeaderName::MaxForwards,
            (12, b'm') if eq("MIME-Version") => HeaderName::MimeVersion,
            (12, b'o') if eq("Organization") => HeaderName::Organization,
            (12, b'r') if eq("Record-Route") => HeaderName::RecordRoute,
            (13, b'a') if eq("Authorization") => HeaderName::Authorization,
            (13, b'p') if eq("Proxy-Require") => HeaderName::ProxyRequire,
            (14, b'c') if eq("Content-Length") => HeaderName::ContentLength,
            (15, b'a') if eq("Accept-Encoding") => HeaderName::AcceptEncoding,
            (15, b'a') if eq("Accept-Language") => HeaderName::AcceptLanguage,
            (15, b'r') if eq("Remote-Party-ID") => HeaderName::RemotePartyId,
            (15, b's') if eq("Session-Expires") => HeaderName::SessionExpires,
            (16, b'c') if eq("Content-Encoding") => HeaderName::ContentEncoding,
            (16, b'c') if eq("Content-Language") => HeaderName::ContentLanguage,
            (16, b'w') if eq("WWW-Authenticate") => HeaderName::WwwAuthenticate,
            (18, b'p') if eq("Proxy-Authenticate") => HeaderName::ProxyAuthenticate,
            (18, b's') if eq("Subscription-State") => HeaderName::SubscriptionState,
            (19, b'a') if eq("Authentication-Info") => HeaderName::AuthenticationInfo,
            (19, b'c') if eq("Content-Disposition") => HeaderName::ContentDisposition,
            (19, b'p') if eq("P-Asserted-Identity") => HeaderName::PAssertedIdentity,
            (19, b'p') if eq("Proxy-Authorization") => HeaderName::ProxyAuthorization,
            (20, b'p') if eq("P-Preferred-Identity") => HeaderName::PPreferredIdentity,
            _ => return None,
        };
        Some(found)
    }

    /// Whether the header's value is a comma-separated list whose elements may also
    /// be given as several header lines (RFC 3261 §7.3.1).
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::AcceptLanguage
                | HeaderName::AlertInfo
                | HeaderName::Allow
                | HeaderName::AllowEvents
                | HeaderName::CallInfo
                | HeaderName::Contact
                | HeaderName::ContentEncoding
                | HeaderName::ContentLanguage
                | HeaderName::Diversion
                | HeaderName::ErrorInfo
                | HeaderName::InReplyTo
                | HeaderName::PAssertedIdentity
                | HeaderName::PPreferredIdentity
                | HeaderName::Path
                | HeaderName::ProxyRequire
                | HeaderName::Reason
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::Route
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Via
                | HeaderName::Warning
        )
    }
}

impl PartialEq for HeaderName {
    #[inline]
    fn eq(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => {
                a.as_bytes().eq_ignore_ascii_case(b.as_bytes())
            }
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl Eq for HeaderName {}

impl std::hash::Hash for HeaderName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            HeaderName::Other(name) => {
                for b in name.as_bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
            }
            known => std::mem::discriminant(known).hash(state),
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_forms() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("ViA"), HeaderName::Via);
        assert_eq!(HeaderName::parse("I"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("call-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::parse("www-authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(HeaderName::parse("X-Foo"), HeaderName::parse("x-foo"));
        assert_eq!(HeaderName::parse("C%6Fntact").as_str(), "C%6Fntact");
    }

    #[test]
    fn every_known_name_round_trips() {
        let names = [
            HeaderName::Accept,
            HeaderName::AcceptEncoding,
            HeaderName::AcceptLanguage,
            HeaderName::AlertInfo,
            HeaderName::Allow,
            HeaderName::AllowEvents,
            HeaderName::AuthenticationInfo,
            HeaderName::Authorization,
            HeaderName::CallId,
            HeaderName::CallInfo,
            HeaderName::Contact,
            HeaderName::ContentDisposition,
            HeaderName::ContentEncoding,
            HeaderName::ContentLanguage,
            HeaderName::ContentLength,
            HeaderName::ContentType,
            HeaderName::CSeq,
            HeaderName::Date,
            HeaderName::Diversion,
            HeaderName::ErrorInfo,
            HeaderName::Event,
            HeaderName::Expires,
            HeaderName::From,
            HeaderName::InReplyTo,
            HeaderName::MaxForwards,
            HeaderName::MinExpires,
            HeaderName::MinSe,
            HeaderName::MimeVersion,
            HeaderName::Organization,
            HeaderName::PAssertedIdentity,
            HeaderName::PPreferredIdentity,
            HeaderName::Path,
            HeaderName::Priority,
            HeaderName::Privacy,
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
            HeaderName::ProxyRequire,
            HeaderName::RAck,
            HeaderName::Reason,
            HeaderName::RecordRoute,
            HeaderName::ReferTo,
            HeaderName::ReferredBy,
            HeaderName::RemotePartyId,
            HeaderName::Replaces,
            HeaderName::ReplyTo,
            HeaderName::Require,
            HeaderName::RetryAfter,
            HeaderName::Route,
            HeaderName::RSeq,
            HeaderName::Server,
            HeaderName::SessionExpires,
            HeaderName::Subject,
            HeaderName::SubscriptionState,
            HeaderName::Supported,
            HeaderName::Timestamp,
            HeaderName::To,
            HeaderName::Unsupported,
            HeaderName::UserAgent,
            HeaderName::Via,
            HeaderName::Warning,
            HeaderName::WwwAuthenticate,
            HeaderName::Identity,
        ];
        for name in names {
            assert_eq!(HeaderName::parse(name.as_str()), name, "{name}");
            assert!(!matches!(
                HeaderName::parse(name.as_str()),
                HeaderName::Other(_)
            ));
            if let Some(c) = name.compact() {
                assert_eq!(HeaderName::parse(&c.to_string()), name);
            }
        }
    }
}
