//! A registrar (RFC 3261 §10.3): bindings per address of record, ordered by Call-ID
//! and CSeq, expiry clamped to a configured range (423 with Min-Expires below it),
//! `Contact: *` removal, q-values, a per-AOR binding limit, Path (RFC 3327) and
//! `+sip.instance` kept.
//!
//! Time is Unix seconds given by the caller, so that bindings can be stored durably
//! and stay valid across a restart. Storage is behind [`BindingStore`];
//! [`MemoryStore`] keeps them in memory.
//!
//! A phone's REGISTER challenged with `401` by a [`DigestServer`](crate::digest::DigestServer),
//! answered with the client-side [`digest::respond`](crate::digest::respond), accepted
//! with `200`; the binding is found by a lookup, then expires (simulated time):
//!
//! ```
//! use pbxkit_sip::digest::{self, Algorithm, DigestServer};
//! use pbxkit_sip::registrar::{MemoryStore, Registrar, RegistrarConfig};
//! use pbxkit_sip::{Auth, HeaderName, Message, StatusCode};
//!
//! const AOR: &str = "sip:1000@pbx.example.com";
//! let t0 = 1_700_000_000; // Unix seconds, given by the caller
//! # let register = |cseq: u32, auth: Option<&Auth>| {
//! #     let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
//! #     Message::parse(format!(
//! #         "REGISTER sip:pbx.example.com SIP/2.0\r\n\
//! #          Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKreg{cseq}\r\n\
//! #          From: <{AOR}>;tag=ph1\r\nTo: <{AOR}>\r\nCall-ID: reg-7c1f@192.0.2.10\r\n\
//! #          CSeq: {cseq} REGISTER\r\nContact: <sip:1000@192.0.2.10:5062>\r\n\
//! #          Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
//! #     ))
//! # };
//! let mut server = DigestServer::new("pbx.example.com", b"an example secret, 32 bytes long", 300);
//! let mut registrar = Registrar::new(RegistrarConfig::default(), MemoryStore::new());
//!
//! // `register(cseq, credentials)` builds the phone's REGISTER (hidden here).
//! let first = register(1, None)?;
//! let mut challenged = Message::response_to(&first, StatusCode::UNAUTHORIZED, Some("r1"));
//! let challenge = server.challenge(t0, Algorithm::Md5, false);
//! challenged.headers_mut().push(HeaderName::WwwAuthenticate, challenge.to_string());
//!
//! // The phone answers the challenge it received.
//! let challenge = challenged.headers().typed::<Auth>(&HeaderName::WwwAuthenticate).ok_or("none")??;
//! let credentials = digest::respond(&challenge, "REGISTER", "sip:pbx.example.com", "1000", "pw", "0a4f113b", 1)
//!     .ok_or("not a Digest challenge")?;
//! let second = register(2, Some(&credentials))?;
//!
//! let auth = second.headers().typed::<Auth>(&HeaderName::Authorization).ok_or("none")??;
//! let who = server.verify(&auth, "REGISTER", t0 + 1, |user| (user == "1000").then(|| "pw".to_owned()))?;
//! assert_eq!(who.username, "1000");
//! let bindings = registrar.register(&second, AOR, None, t0 + 1)?;
//! let ok = Registrar::<MemoryStore>::ok_response(&second, &bindings, "r1", t0 + 1);
//! assert_eq!(ok.status(), Some(StatusCode::OK));
//!
//! let found = registrar.lookup(AOR, t0 + 2);
//! assert_eq!(found[0].uri.to_string(), "sip:1000@192.0.2.10:5062");
//! assert_eq!(found[0].remaining(t0 + 2), 599);
//! // 600 s later nobody refreshed it: expire() frees it.
//! assert_eq!(registrar.expire(t0 + 601), 1);
//! assert!(registrar.lookup(AOR, t0 + 601).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::message::Message;
use crate::method::StatusCode;
use crate::name::HeaderName;
use crate::nameaddr::Contact;
use crate::uri::Uri;
use crate::via::Transport;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Registrar limits. The defaults are the PBX's: 60 s / 120 s / 3600 s, 10 bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest expiry accepted (423 Interval Too Brief below it, except 0).
    pub min_expires: u32,
    /// Expiry when the request gives none.
    pub default_expires: u32,
    /// Longest expiry granted (longer requests are cut to it).
    pub max_expires: u32,
    /// Most bindings one address of record may hold.
    pub max_bindings: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            default_expires: 120,
            max_expires: 3600,
            max_bindings: 10,
        }
    }
}

/// One contact registered for an address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI.
    pub uri: Uri,
    /// The q-value in thousandths, when given.
    pub q: Option<u16>,
    /// Call-ID of the REGISTER that made or refreshed it.
    pub call_id: ByteStr,
    /// Its CSeq number.
    pub cseq: u32,
    /// When it expires (Unix seconds).
    pub expires_at: u64,
    /// `+sip.instance` (RFC 5626), when given.
    pub instance: Option<ByteStr>,
    /// Path headers (RFC 3327), in order, to route requests to this contact.
    pub path: Vec<ByteStr>,
    /// Where the REGISTER came from (address and transport): behind a NAT this, not
    /// the Contact, is where requests reach the phone.
    pub source: Option<(SocketAddr, Transport)>,
}

impl Binding {
    /// Seconds left at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// Where bindings live.
pub trait BindingStore {
    /// The bindings of an address of record (possibly expired ones: the registrar
    /// filters them).
    fn load(&self, aor: &str) -> Vec<Binding>;
    /// Replaces the bindings of an address of record (an empty list removes it).
    fn save(&mut self, aor: &str, bindings: &[Binding]);
    /// Removes bindings expired at `now`; returns how many.
    fn expire(&mut self, now: u64) -> usize;
}

/// Bindings in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    by_aor: HashMap<String, Vec<Binding>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Number of addresses of record with bindings.
    pub fn len(&self) -> usize {
        self.by_aor.len()
    }

    /// Whether no address of record has bindings.
    pub fn is_empty(&self) -> bool {
        self.by_aor.is_empty()
    }
}

impl BindingStore for MemoryStore {
    fn load(&self, aor: &str) -> Vec<Binding> {
        self.by_aor.get(aor).cloned().unwrap_or_default()
    }

    fn save(&mut self, aor: &str, bindings: &[Binding]) {
        if bindings.is_empty() {
            self.by_aor.remove(aor);
        } else {
            self.by_aor.insert(aor.to_owned(), bindings.to_vec());
        }
    }

    fn expire(&mut self, now: u64) -> usize {
        let mut removed = 0;
        self.by_aor.retain(|_, bindings| {
            let before = bindings.len();
            bindings.retain(|b| b.expires_at > now);
            removed += before - bindings.len();
            !bindings.is_empty()
        });
        removed
    }
}

/// Why a REGISTER was refused; [`RegisterError::status`] gives the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// An expiry below the minimum: answer 423 with `Min-Expires`.
    #[error("interval too brief (minimum {min_expires} s)")]
    IntervalTooBrief {
        /// The minimum to put in Min-Expires.
        min_expires: u32,
    },
    /// `Contact: *` with other contacts or a non-zero Expires.
    #[error("Contact: * needs Expires: 0 and no other contact")]
    BadWildcard,
    /// A Contact that does not parse.
    #[error("malformed Contact")]
    BadContact,
    /// Same Call-ID with a CSeq not above the stored one: an old or replayed request.
    #[error("REGISTER out of order for its Call-ID")]
    OutOfOrder,
    /// The address of record would hold more bindings than allowed.
    #[error("too many bindings for this address of record")]
    TooManyBindings,
    /// The request lacks Call-ID or CSeq.
    #[error("REGISTER without Call-ID or CSeq")]
    NotRegister,
}

impl RegisterError {
    /// The status code to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            RegisterError::IntervalTooBrief { .. } => StatusCode::INTERVAL_TOO_BRIEF,
            RegisterError::TooManyBindings => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The response to `request` for this error (with Min-Expires for 423).
    pub fn response(&self, request: &Message, to_tag: &str) -> Message {
        let mut r = Message::response_to(request, self.status(), Some(to_tag));
        if let RegisterError::IntervalTooBrief { min_expires } = self {
            r.headers_mut()
                .push(HeaderName::MinExpires, min_expires.to_string());
        }
        r
    }
}

/// A registrar over a binding store.
#[derive(Debug)]
pub struct Registrar<S> {
    config: RegistrarConfig,
    store: S,
}

impl<S: BindingStore> Registrar<S> {
    /// A registrar with its limits and store.
    pub fn new(config: RegistrarConfig, store: S) -> Registrar<S> {
        Registrar { config, store }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to change it.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The live bindings of an address of record, highest q first, then the most
    /// recently refreshed.
    pub fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        let mut live: Vec<Binding> = self
            .store
            .load(aor)
            .into_iter()
            .filter(|b| b.expires_at > now)
            .collect();
        // Highest q first; among equals, the most recently refreshed (latest expiry,
        // then the latest added): a phone that moved keeps its old binding until it
        // expires. The sort is stable, so reversing first favours newer bindings.
        live.reverse();
        live.sort_by_key(|b| std::cmp::Reverse((b.q.unwrap_or(1000), b.expires_at)));
        live
    }

    /// Applies an (authenticated) REGISTER for `aor` received from `source` at `now`;
    /// returns the bindings now in place, or why not (nothing is changed then).
    pub fn register(
        &mut self,
        request: &Message,
        aor: &str,
        source: Option<(SocketAddr, Transport)>,
        now: u64,
    ) -> Result<Vec<Binding>, RegisterError> {
        let call_id = request
            .call_id()
            .map_err(|_| RegisterError::NotRegister)?
            .0
            .clone();
        let cseq = request.cseq().map_err(|_| RegisterError::NotRegister)?.seq;
        let header_expires = match request.expires() {
            Some(Ok(e)) => Some(e),
            // Malformed (RFC 4475 §3.1.2.4, overlarge): the default applies.
            Some(Err(_)) | None => None,
        };
        let contacts: Vec<Contact> = request
            .contacts()
            .collect::<Result<_, _>>()
            .map_err(|_| RegisterError::BadContact)?;
        let mut bindings: Vec<Binding> = self
            .store
            .load(aor)
            .into_iter()
            .filter(|b| b.expires_at > now)
            .collect();
        let out_of_order = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;

        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(RegisterError::BadWildcard);
            }
            if bindings.iter().any(out_of_order) {
                return Err(RegisterError::OutOfOrder);
            }
            self.store.save(aor, &[]);
            return Ok(Vec::new());
        }

        let path: Vec<ByteStr> = request
            .headers()
            .all(&HeaderName::Path)
            .map(|h| h.to_bytestr())
            .collect();
        for contact in &contacts {
            let Contact::Addr(addr) = contact else {
                continue;
            };
            let asked = match addr.params.get("expires") {
                // A malformed or overlarge expires parameter counts as absent.
                Some(Some(v)) => v.parse::<u32>().ok().or(header_expires),
                _ => header_expires,
            }
            .unwrap_or(self.config.default_expires);
            if asked != 0 && asked < self.config.min_expires {
                return Err(RegisterError::IntervalTooBrief {
                    min_expires: self.config.min_expires,
                });
            }
            let granted = asked.min(self.config.max_expires);
            let instance = addr
                .params
                .get("+sip.instance")
                .flatten()
                .map(ByteStr::from);
            let existing = bindings
                .iter()
                .position(|b| match (&b.instance, &instance) {
                    (Some(a), Some(b)) => a == b,
                    _ => b.uri.equivalent(&addr.uri),
                });
            if let Some(i) = existing {
                if out_of_order(&bindings[i]) {
                    return Err(RegisterError::OutOfOrder);
                }
                if granted == 0 {
                    bindings.remove(i);
                    continue;
                }
            } else if granted == 0 {
                continue;
            }
            let binding = Binding {
                uri: addr.uri.clone(),
                q: addr.q(),
                call_id: call_id.clone(),
                cseq,
                // Saturating: `now` comes from the caller.
                expires_at: now.saturating_add(u64::from(granted)),
                instance,
                path: path.clone(),
                source: source.clone(),
            };
            match existing {
                Some(i) => bindings[i] = binding,
                None => bindings.push(binding),
            }
        }
        if bindings.len() > self.config.max_bindings {
            return Err(RegisterError::TooManyBindings);
        }
        self.store.save(aor, &bindings);
        Ok(bindings)
    }

    /// The 200 OK for a REGISTER: every current binding as a Contact with its
    /// remaining expiry (RFC 3261 §10.3 step 8).
    pub fn ok_response(request: &Message, bindings: &[Binding], to_tag: &str, now: u64) -> Message {
        let mut r = Message::response_to(request, StatusCode::OK, Some(to_tag));
        let headers = r.headers_mut();
        for b in bindings {
            let mut value = format!("<{}>;expires={}", b.uri, b.remaining(now));
            if let Some(q) = b.q {
                value.push_str(&format!(";q={}.{:03}", q / 1000, q % 1000));
            }
            if let Some(instance) = &b.instance {
                value.push_str(&format!(";+sip.instance={instance}"));
            }
            headers.push(HeaderName::Contact, value);
        }
        r
    }

    /// Drops expired bindings; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        self.store.expire(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(contacts: &[&str], expires: Option<&str>, call_id: &str, cseq: u32) -> Message {
        let mut text = format!(
            "REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK{cseq}\r\nFrom: <sip:1000@pbx>;tag=r\r\nTo: <sip:1000@pbx>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
        );
        for c in contacts {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(text.into_bytes()).unwrap()
    }

    fn registrar() -> Registrar<MemoryStore> {
        Registrar::new(RegistrarConfig::default(), MemoryStore::new())
    }

    #[test]
    fn expiry_is_clamped_and_defaulted() {
        let mut r = registrar();
        let b = r
            .register(
                &register(&["<sip:1000@192.0.2.9:5060>"], None, "c1", 1),
                "1000",
                None,
                1000,
            )
            .unwrap();
        assert_eq!(b[0].remaining(1000), 120);
        let b = r
            .register(
                &register(&["<sip:1000@192.0.2.9:5060>"], Some("86400"), "c1", 2),
                "1000",
                None,
                1000,
            )
            .unwrap();
        assert_eq!(b[0].remaining(1000), 3600);
        let b = r
            .register(
                &register(
                    &["<sip:1000@192.0.2.9:5060>;expires=300"],
                    Some("3600"),
                    "c1",
                    3,
                ),
                "1000",
                None,
                1000,
            )
            .unwrap();
        assert_eq!(
            b[0].remaining(1000),
            300,
            "the contact parameter wins over the header"
        );
        let e = r
            .register(
                &register(&["<sip:1000@192.0.2.9:5060>"], Some("30"), "c1", 4),
                "1000",
                None,
                1000,
            )
            .unwrap_err();
        assert_eq!(e, RegisterError::IntervalTooBrief { min_expires: 60 });
        let resp = e.response(&register(&["<sip:x@y>"], Some("30"), "c1", 4), "t");
        assert_eq!(resp.status(), Some(StatusCode::INTERVAL_TOO_BRIEF));
        assert_eq!(resp.headers().get(&HeaderName::MinExpires), Some("60"));
        // The failed request changed nothing.
        assert_eq!(r.lookup("1000", 1000)[0].remaining(1000), 300);
    }

    #[test]
    fn call_id_and_cseq_ordering() {
        let mut r = registrar();
        r.register(
            &register(&["<sip:1000@192.0.2.9>"], None, "c1", 5),
            "1000",
            None,
            1000,
        )
        .unwrap();
        assert_eq!(
            r.register(
                &register(&["<sip:1000@192.0.2.9>"], None, "c1", 5),
                "1000",
                None,
                1001
            ),
            Err(RegisterError::OutOfOrder)
        );
        assert_eq!(
            r.register(
                &register(&["<sip:1000@192.0.2.9>"], None, "c1", 4),
                "1000",
                None,
                1001
            ),
            Err(RegisterError::OutOfOrder)
        );
        // Another Call-ID (the phone rebooted) may update with any CSeq.
        assert!(
            r.register(
                &register(&["<sip:1000@192.0.2.9>"], None, "c2", 1),
                "1000",
                None,
                1001
            )
            .is_ok()
        );
    }

    #[test]
    fn removal_by_zero_and_by_wildcard() {
        let mut r = registrar();
        r.register(
            &register(
                &["<sip:a@192.0.2.9>", "<sip:b@192.0.2.9>;q=0.5"],
                None,
                "c1",
                1,
            ),
            "1000",
            None,
            1000,
        )
        .unwrap();
        assert_eq!(r.lookup("1000", 1000).len(), 2);
        let b = r
            .register(
                &register(&["<sip:a@192.0.2.9>;expires=0"], None, "c1", 2),
                "1000",
                None,
                1000,
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].q, Some(500));
        assert_eq!(
            r.register(&register(&["*"], None, "c1", 3), "1000", None, 1000),
            Err(RegisterError::BadWildcard)
        );
        assert_eq!(
            r.register(
                &register(&["*", "<sip:c@d>"], Some("0"), "c1", 3),
                "1000",
                None,
                1000
            ),
            Err(RegisterError::BadWildcard)
        );
        assert_eq!(
            r.register(&register(&["*"], Some("0"), "c1", 3), "1000", None, 1000),
            Ok(vec![])
        );
        assert!(r.store().is_empty());
    }

    #[test]
    fn limits_expiry_and_q_order() {
        let mut r = Registrar::new(
            RegistrarConfig {
                max_bindings: 2,
                ..RegistrarConfig::default()
            },
            MemoryStore::new(),
        );
        r.register(
            &register(&["<sip:a@h>;q=0.1", "<sip:b@h>;q=0.9"], None, "c1", 1),
            "1000",
            None,
            1000,
        )
        .unwrap();
        assert_eq!(
            r.register(&register(&["<sip:c@h>"], None, "c2", 1), "1000", None, 1000),
            Err(RegisterError::TooManyBindings)
        );
        let order: Vec<String> = r
            .lookup("1000", 1000)
            .iter()
            .map(|b| b.uri.to_string())
            .collect();
        assert_eq!(order, ["sip:b@h", "sip:a@h"]);
        assert_eq!(r.expire(1000 + 119), 0);
        assert_eq!(r.expire(1000 + 120), 2);
        assert!(r.lookup("1000", 1000 + 120).is_empty());
    }

    #[test]
    fn ok_lists_bindings_and_keeps_instance_and_path() {
        let mut r = registrar();
        let mut req = register(
            &[
                "<sip:1000@10.0.0.5:5062>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
            ],
            Some("600"),
            "c1",
            1,
        );
        req.headers_mut()
            .push(HeaderName::Path, "<sip:edge.example.com;lr>");
        let b = r.register(&req, "1000", None, 1000).unwrap();
        assert_eq!(b[0].path.len(), 1);
        assert!(b[0].instance.as_deref().unwrap().contains("urn:uuid"));
        // The same instance from a new address replaces the binding (RFC 5626).
        let req2 = register(
            &[
                "<sip:1000@10.0.0.9:5062>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"",
            ],
            Some("600"),
            "c1",
            2,
        );
        let b = r.register(&req2, "1000", None, 1010).unwrap();
        assert_eq!(b.len(), 1);
        let ok = Registrar::<MemoryStore>::ok_response(&req2, &b, "t", 1010);
        let contacts: Vec<Contact> = ok.contacts().map(Result::unwrap).collect();
        let Contact::Addr(c) = &contacts[0] else {
            panic!()
        };
        assert_eq!(c.expires(), Some(600));
        assert_eq!(c.uri.to_string(), "sip:1000@10.0.0.9:5062");
    }

    #[test]
    fn overlarge_expiry_values_fall_back_to_defaults() {
        // RFC 4475 §3.1.2.4: malformed expiry values count as absent.
        let mut r = registrar();
        let b = r
            .register(
                &register(
                    &["<sip:1000@h>;expires=280297596632815"],
                    Some("1000000000000000000000"),
                    "c1",
                    1,
                ),
                "1000",
                None,
                0,
            )
            .unwrap();
        assert_eq!(b[0].remaining(0), 120);
    }
}
