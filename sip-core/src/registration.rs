//! An outbound registration (a trunk or a phone registering upstream) as a sans-IO
//! state machine: it builds REGISTER requests, answers digest challenges, refreshes
//! before expiry and backs off after failures. Send what [`Registration::poll_request`]
//! gives through a client transaction and feed the outcome back.
//!
//! A trunk registering with its provider: the first REGISTER is challenged with
//! `401`, the second carries the digest answer and is accepted for 600 s (less than
//! asked), and the refresh falls due at 85 % of that:
//!
//! ```
//! use pbxkit_sip::registration::{Registration, RegistrationConfig, Status};
//! use pbxkit_sip::{Auth, HeaderName, Message, StatusCode, Uri};
//! use std::time::{Duration, Instant};
//!
//! let config = RegistrationConfig {
//!     registrar: Uri::parse("sip:provider.example.com")?,
//!     aor: Uri::parse("sip:trunk1@provider.example.com")?,
//!     contact: Uri::parse("sip:trunk1@192.0.2.1:5060")?,
//!     via: "SIP/2.0/UDP 192.0.2.1:5060".into(),
//!     username: "trunk1".into(),
//!     password: "s3cret".into(),
//!     expires: 3600,
//!     retry_min: Duration::from_secs(30),
//!     retry_max: Duration::from_secs(1800),
//! };
//! let t0 = Instant::now();
//! // Call-ID, From tag and cnonce: random in real use.
//! let mut reg = Registration::new(config, "7c1f9e@192.0.2.1", "f00d", "c0ffee", t0);
//!
//! let first = reg.poll_request(t0).ok_or("a REGISTER is due")?;
//! assert_eq!(first.expires().transpose()?, Some(3600));
//! let mut challenge = Message::response_to(&first, StatusCode::UNAUTHORIZED, Some("p1"));
//! challenge.headers_mut().push(
//!     HeaderName::WwwAuthenticate,
//!     r#"Digest realm="provider.example.com", nonce="5f3a9c", algorithm=MD5, qop="auth""#,
//! );
//! reg.handle_response(&challenge, t0);
//!
//! // Sent again at once, with credentials for that challenge.
//! let second = reg.poll_request(t0).ok_or("a REGISTER is due")?;
//! assert_eq!(second.cseq()?.seq, 2);
//! let auth = second.headers().typed::<Auth>(&HeaderName::Authorization).ok_or("none")??;
//! assert_eq!(auth.param("username").as_deref(), Some("trunk1"));
//! assert_eq!(auth.param("nonce").as_deref(), Some("5f3a9c"));
//!
//! // The provider grants 600 s on our Contact.
//! let mut ok = Message::response_to(&second, StatusCode::OK, Some("p1"));
//! ok.headers_mut().push(HeaderName::Contact, "<sip:trunk1@192.0.2.1:5060>;expires=600");
//! reg.handle_response(&ok, t0);
//! assert_eq!(reg.status(), Status::Registered { until: t0 + Duration::from_secs(600) });
//! assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(510)));
//! assert!(reg.poll_request(t0 + Duration::from_secs(509)).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::digest;
use crate::message::Message;
use crate::method::{Method, StatusCode};
use crate::name::HeaderName;
use crate::nameaddr::{Contact, NameAddr};
use crate::uri::Uri;
use crate::values::Auth;
use std::time::{Duration, Instant};

/// What to register and how.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The Request-URI: the registrar (`sip:provider.example.com`).
    pub registrar: Uri,
    /// Our address of record (From and To).
    pub aor: Uri,
    /// Where we want calls (Contact).
    pub contact: Uri,
    /// The Via sent-by for our requests, e.g. `SIP/2.0/UDP 192.0.2.1:5060`, without branch.
    pub via: String,
    /// Digest user name.
    pub username: String,
    /// Digest password.
    pub password: String,
    /// Expiry to ask for, in seconds.
    pub expires: u32,
    /// First retry delay after a failure; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A REGISTER is due or in flight.
    Registering,
    /// Registered until the given instant.
    Registered {
        /// When the registrar will drop us if we don't refresh.
        until: Instant,
    },
    /// The last attempt failed; the next one is at `retry_at`.
    Failed {
        /// When we try again.
        retry_at: Instant,
        /// The status that refused us (`None` for a timeout or transport error).
        code: Option<StatusCode>,
    },
    /// Unregistered on request.
    Unregistered,
}

/// An outbound registration.
#[derive(Debug)]
pub struct Registration {
    config: RegistrationConfig,
    call_id: String,
    from_tag: String,
    cseq: u32,
    status: Status,
    /// When to send the next REGISTER (None: nothing to do).
    due: Option<Instant>,
    in_flight: bool,
    challenge: Option<(HeaderName, Auth)>,
    /// Whether the current challenge was already answered (a second 401 means refusal).
    answered: bool,
    nc: u32,
    failures: u32,
    expires: u32,
    unregistering: bool,
    cnonce: String,
}

impl Registration {
    /// A registration that starts at `now`. `call_id`, `from_tag` and `cnonce` should
    /// be random (they are inputs so that tests are deterministic).
    pub fn new(
        config: RegistrationConfig,
        call_id: &str,
        from_tag: &str,
        cnonce: &str,
        now: Instant,
    ) -> Registration {
        let expires = config.expires;
        Registration {
            config,
            call_id: call_id.to_owned(),
            from_tag: from_tag.to_owned(),
            cseq: 0,
            status: Status::Registering,
            due: Some(now),
            in_flight: false,
            challenge: None,
            answered: false,
            nc: 0,
            failures: 0,
            expires,
            unregistering: false,
            cnonce: cnonce.to_owned(),
        }
    }

    /// Where the registration stands.
    pub fn status(&self) -> Status {
        self.status
    }

    /// When [`Registration::poll_request`] next has something to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight { None } else { self.due }
    }

    /// The REGISTER to send now, if one is due.
    pub fn poll_request(&mut self, now: Instant) -> Option<Message> {
        if self.in_flight || self.due.is_none_or(|d| d > now) {
            return None;
        }
        self.cseq += 1;
        let mut m = Message::request(Method::Register, self.config.registrar.clone());
        let expires = if self.unregistering { 0 } else { self.expires };
        let aor = NameAddr::new(self.config.aor.clone());
        let mut from = aor.clone();
        from.set_tag(&self.from_tag);
        let branch = format!("z9hG4bK{}{:x}", short_hash(&self.call_id), self.cseq);
        let h = m.headers_mut();
        h.push(
            HeaderName::Via,
            format!("{};branch={branch};rport", self.config.via),
        );
        h.push(HeaderName::MaxForwards, ByteStr::from_static("70"));
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, aor.to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{} REGISTER", self.cseq));
        h.push(HeaderName::Contact, format!("<{}>", self.config.contact));
        h.push(HeaderName::Expires, expires.to_string());
        if let Some((name, challenge)) = &self.challenge {
            self.nc += 1;
            let uri = self.config.registrar.to_string();
            if let Some(creds) = digest::respond(
                challenge,
                "REGISTER",
                &uri,
                &self.config.username,
                &self.config.password,
                &self.cnonce,
                self.nc,
            ) {
                let header = if *name == HeaderName::ProxyAuthenticate {
                    HeaderName::ProxyAuthorization
                } else {
                    HeaderName::Authorization
                };
                h.push(header, creds.to_string());
            }
        }
        h.push(HeaderName::ContentLength, ByteStr::from_static("0"));
        self.in_flight = true;
        self.due = None;
        Some(m)
    }

    /// The final (or provisional) response to the last REGISTER.
    pub fn handle_response(&mut self, response: &Message, now: Instant) {
        let Some(code) = response.status() else {
            return;
        };
        if code.is_provisional() {
            return;
        }
        self.in_flight = false;
        match code.as_u16() {
            200..=299 => {
                self.failures = 0;
                self.answered = false;
                if self.unregistering {
                    self.status = Status::Unregistered;
                    self.due = None;
                    return;
                }
                let granted = self.granted(response).unwrap_or(self.expires).max(1);
                let until = now + Duration::from_secs(u64::from(granted));
                // Refresh early enough for a retransmitted request to make it.
                let refresh = Duration::from_secs(u64::from(granted))
                    .mul_f32(0.85)
                    .max(Duration::from_secs(1));
                self.status = Status::Registered { until };
                self.due = Some(now + refresh);
            }
            401 | 407 => {
                let name = if code.as_u16() == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                let challenge = response
                    .headers()
                    .all(&name)
                    .filter_map(|h| h.parse::<Auth>().ok())
                    .find(|a| a.is_digest());
                let stale = challenge
                    .as_ref()
                    .and_then(|c| c.param("stale"))
                    .is_some_and(|s| s.eq_ignore_ascii_case("true"));
                match challenge {
                    // A second challenge for credentials we sent, not stale: wrong password.
                    Some(_) if self.answered && !stale => self.fail(Some(code), now),
                    Some(c) => {
                        self.challenge = Some((name, c));
                        self.answered = true;
                        self.nc = 0;
                        self.due = Some(now);
                    }
                    None => self.fail(Some(code), now),
                }
            }
            423 => match response.headers().typed::<u32>(&HeaderName::MinExpires) {
                Some(Ok(min)) if min > self.expires => {
                    self.expires = min;
                    self.due = Some(now);
                }
                _ => self.fail(Some(code), now),
            },
            _ => self.fail(Some(code), now),
        }
    }

    /// The transaction timed out or could not be sent.
    pub fn handle_failure(&mut self, now: Instant) {
        self.in_flight = false;
        self.fail(None, now);
    }

    /// Removes the registration (REGISTER with Expires: 0) as soon as possible.
    pub fn unregister(&mut self, now: Instant) {
        self.unregistering = true;
        if !self.in_flight {
            self.due = Some(now);
        }
    }

    fn fail(&mut self, code: Option<StatusCode>, now: Instant) {
        self.answered = false;
        self.challenge = None;
        let delay = self
            .config
            .retry_min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.config.retry_max);
        self.failures += 1;
        let retry_at = now + delay;
        self.status = Status::Failed { retry_at, code };
        self.due = Some(retry_at);
    }

    /// The expiry the registrar granted our contact (its `expires` parameter in the
    /// 200, else the Expires header).
    fn granted(&self, response: &Message) -> Option<u32> {
        let ours = response.contacts().flatten().find_map(|c| match c {
            Contact::Addr(a) if a.uri.equivalent(&self.config.contact) => a.expires(),
            _ => None,
        });
        ours.or_else(|| response.expires().and_then(Result::ok))
    }
}

/// A short, stable hex digest of text (for branch parameters).
fn short_hash(s: &str) -> String {
    // FNV-1a: distinct Call-IDs give distinct branches; no security is needed here.
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::DigestServer;
    use crate::registrar::{MemoryStore, Registrar, RegistrarConfig};

    fn config() -> RegistrationConfig {
        RegistrationConfig {
            registrar: Uri::parse("sip:provider.example.com").unwrap(),
            aor: Uri::parse("sip:trunk1@provider.example.com").unwrap(),
            contact: Uri::parse("sip:trunk1@192.0.2.1:5060").unwrap(),
            via: "SIP/2.0/UDP 192.0.2.1:5060".into(),
            username: "trunk1".into(),
            password: "s3cret".into(),
            expires: 3600,
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
        }
    }

    /// A provider: digest with a nonce per minute, then a registrar granting at most 600 s.
    struct Provider {
        digest: DigestServer,
        registrar: Registrar<MemoryStore>,
        password: &'static str,
    }

    impl Provider {
        fn new(password: &'static str) -> Provider {
            Provider {
                digest: DigestServer::new("provider", b"0123456789abcdef0123456789abcdef", 300),
                registrar: Registrar::new(
                    RegistrarConfig {
                        max_expires: 600,
                        ..Default::default()
                    },
                    MemoryStore::new(),
                ),
                password,
            }
        }

        fn answer(&mut self, request: &Message, unix: u64) -> Message {
            let request = Message::parse(request.to_bytes()).unwrap();
            let creds = request.headers().typed::<Auth>(&HeaderName::Authorization);
            let ok = creds.and_then(Result::ok).map(|c| {
                self.digest
                    .verify(&c, "REGISTER", unix, |_| Some(self.password.to_owned()))
            });
            match ok {
                Some(Ok(_)) => {
                    let bindings = self
                        .registrar
                        .register(&request, "trunk1", None, unix)
                        .unwrap();
                    Registrar::<MemoryStore>::ok_response(&request, &bindings, "p", unix)
                }
                _ => {
                    let mut r = Message::response_to(&request, StatusCode::UNAUTHORIZED, Some("p"));
                    r.headers_mut().push(
                        HeaderName::WwwAuthenticate,
                        self.digest
                            .challenge(unix, digest::Algorithm::Md5, false)
                            .to_string(),
                    );
                    r
                }
            }
        }
    }

    #[test]
    fn registers_through_a_challenge_and_refreshes_before_expiry() {
        let t0 = Instant::now();
        let mut reg = Registration::new(config(), "call-1", "tag1", "cn1", t0);
        let mut provider = Provider::new("s3cret");
        let first = reg.poll_request(t0).unwrap();
        assert!(first.headers().get(&HeaderName::Authorization).is_none());
        reg.handle_response(&provider.answer(&first, 0), t0);
        assert_eq!(reg.status(), Status::Registering);
        let second = reg.poll_request(t0).unwrap();
        assert_eq!(second.cseq().unwrap().seq, 2);
        assert!(second.headers().get(&HeaderName::Authorization).is_some());
        reg.handle_response(&provider.answer(&second, 0), t0);
        // Asked 3600, granted 600: refresh at 85 %.
        assert_eq!(
            reg.status(),
            Status::Registered {
                until: t0 + Duration::from_secs(600)
            }
        );
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(510)));
        assert!(reg.poll_request(t0 + Duration::from_secs(509)).is_none());
        let refresh = reg.poll_request(t0 + Duration::from_secs(510)).unwrap();
        // The stored challenge is reused with the next nonce count.
        assert!(
            refresh
                .headers()
                .get(&HeaderName::Authorization)
                .unwrap()
                .contains("nc=00000002")
        );
        reg.handle_response(
            &provider.answer(&refresh, 510),
            t0 + Duration::from_secs(510),
        );
        assert!(matches!(reg.status(), Status::Registered { .. }));
    }

    #[test]
    fn wrong_password_backs_off_exponentially() {
        let t0 = Instant::now();
        let mut reg = Registration::new(config(), "call-2", "tag2", "cn2", t0);
        let mut provider = Provider::new("other");
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..4 {
            for _ in 0..2 {
                let req = reg.poll_request(now).unwrap();
                reg.handle_response(&provider.answer(&req, 0), now);
            }
            let Status::Failed { retry_at, code } = reg.status() else {
                panic!("{:?}", reg.status())
            };
            assert_eq!(code, Some(StatusCode::UNAUTHORIZED));
            delays.push((retry_at - now).as_secs());
            now = retry_at;
        }
        assert_eq!(delays, [30, 60, 120, 240]);
    }

    #[test]
    fn interval_too_brief_and_timeouts_and_unregister() {
        let t0 = Instant::now();
        let mut reg = Registration::new(
            RegistrationConfig {
                expires: 30,
                ..config()
            },
            "call-3",
            "tag3",
            "cn3",
            t0,
        );
        let req = reg.poll_request(t0).unwrap();
        let mut r = Message::response_to(&req, StatusCode::INTERVAL_TOO_BRIEF, Some("p"));
        r.headers_mut().push(HeaderName::MinExpires, "60");
        reg.handle_response(&r, t0);
        let req = reg.poll_request(t0).unwrap();
        assert_eq!(req.expires().unwrap().unwrap(), 60);
        reg.handle_failure(t0);
        assert!(matches!(reg.status(), Status::Failed { code: None, .. }));
        let later = t0 + Duration::from_secs(30);
        let req = reg.poll_request(later).unwrap();
        reg.handle_response(
            &Message::response_to(&req, StatusCode::OK, Some("p")),
            later,
        );
        assert!(matches!(reg.status(), Status::Registered { .. }));
        reg.unregister(later);
        let bye = reg.poll_request(later).unwrap();
        assert_eq!(bye.expires().unwrap().unwrap(), 0);
        reg.handle_response(
            &Message::response_to(&bye, StatusCode::OK, Some("p")),
            later,
        );
        assert_eq!(reg.status(), Status::Unregistered);
        assert_eq!(reg.poll_timeout(), None);
    }
}
