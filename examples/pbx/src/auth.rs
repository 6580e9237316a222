//! Digest authentication of the requests users send (INVITE, REGISTER), one
//! policy for every path: credentials for our realm, only the algorithms the
//! operator offers (no downgrade to one left out), replays refused by the
//! [`DigestServer`], and a 401 with one challenge per offered algorithm in the
//! configured order (RFC 8760).
//!
//! ```
//! use pbxkit::auth::{Authenticator, Authentication};
//! use pbxkit_sip::digest::{Algorithm, DigestServer};
//! use pbxkit_sip::Message;
//!
//! let digest = DigestServer::new("pbxkit", b"a secret of thirty-two bytes or more", 300);
//! let mut auth = Authenticator::new("pbxkit", digest, vec![Algorithm::Sha256, Algorithm::Md5]);
//! let invite = Message::parse(
//!     &b"INVITE sip:1001@pbxkit SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1\r\n\
//!        From: <sip:1000@pbxkit>;tag=a\r\nTo: <sip:1001@pbxkit>\r\nCall-ID: c1\r\n\
//!        CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"[..],
//! )?;
//! let checked = auth.check(&invite, 1_700_000_000, |_| Some("secret".into()));
//! assert_eq!(checked.user, "1000");
//! assert_eq!(Authentication::of(&checked.outcome), Authentication::Challenged);
//! let challenge = auth.challenge(&invite, &checked.outcome, 1_700_000_000, "t1");
//! assert_eq!(challenge.headers().all(&pbxkit_sip::HeaderName::WwwAuthenticate).count(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use pbxkit_sip::digest::{Algorithm, AuthError, DigestServer, Verified};
use pbxkit_sip::{Auth, HeaderName, Message, StatusCode};

/// How an authentication went, for the PBX's brute-force bans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// The credentials hold.
    Accepted,
    /// A wrong password, or an unknown user: a guess.
    Refused,
    /// No usable credentials: challenged.
    Challenged,
    /// The right response on a spent or expired nonce: a fresh one will do.
    Stale,
}

impl Authentication {
    /// How a digest check went.
    pub fn of(outcome: &Result<Verified, AuthError>) -> Authentication {
        match outcome {
            Ok(_) => Authentication::Accepted,
            Err(AuthError::Refused) => Authentication::Refused,
            Err(e) if e.is_stale() => Authentication::Stale,
            Err(_) => Authentication::Challenged,
        }
    }
}

/// What a request's credentials came to.
#[derive(Debug)]
pub struct Checked {
    /// The user the request claims to be (its credentials' username, else its
    /// From user), for bans and logs.
    pub user: String,
    /// The verdict.
    pub outcome: Result<Verified, AuthError>,
}

/// Checks requests' credentials and builds the challenges.
#[derive(Debug)]
pub struct Authenticator {
    realm: String,
    digest: DigestServer,
    algorithms: Vec<Algorithm>,
}

impl Authenticator {
    /// Authentication for `realm` with `digest`'s nonces, offering `algorithms` in
    /// this order (MD5 when empty).
    pub fn new(realm: &str, digest: DigestServer, algorithms: Vec<Algorithm>) -> Authenticator {
        let algorithms = if algorithms.is_empty() {
            vec![Algorithm::Md5]
        } else {
            algorithms
        };
        Authenticator {
            realm: realm.to_owned(),
            digest,
            algorithms,
        }
    }

    /// Offers `algorithms` from now on (a new configuration; MD5 when empty).
    pub fn set_algorithms(&mut self, algorithms: Vec<Algorithm>) {
        if !algorithms.is_empty() {
            self.algorithms = algorithms;
        }
    }

    /// The request's credentials for our realm, if any.
    pub fn credentials(&self, request: &Message) -> Option<Auth> {
        request
            .headers()
            .all(&HeaderName::Authorization)
            .filter_map(|h| h.parse::<Auth>().ok())
            .find(|a| a.param("realm").as_deref() == Some(self.realm.as_str()))
    }

    /// The user `request` claims to be (see [`claimed_user`]).
    pub fn claimed(&self, request: &Message) -> String {
        claimed_user(request, self.credentials(request).as_ref())
    }

    /// Checks `request` at `unix` seconds against `password` (a user's password,
    /// `None` for an unknown user, challenged exactly like a known one).
    pub fn check(
        &mut self,
        request: &Message,
        unix: u64,
        password: impl Fn(&str) -> Option<String>,
    ) -> Checked {
        let creds = self.credentials(request);
        let user = claimed_user(request, creds.as_ref());
        let method = request
            .method()
            .map(ToString::to_string)
            .unwrap_or_default();
        let outcome = match creds {
            // Only the algorithms offered: no downgrade to one the operator left out.
            Some(creds)
                if Algorithm::parse(creds.param("algorithm").as_deref())
                    .is_none_or(|a| !self.algorithms.contains(&a)) =>
            {
                Err(AuthError::Algorithm)
            }
            Some(creds) => self.digest.verify(&creds, &method, unix, password),
            None => Err(AuthError::Missing("credentials")),
        };
        Checked { user, outcome }
    }

    /// The 401 for a request whose check failed with `outcome`: one challenge per
    /// offered algorithm, `stale` when only the nonce was at fault.
    pub fn challenge(
        &self,
        request: &Message,
        outcome: &Result<Verified, AuthError>,
        unix: u64,
        tag: &str,
    ) -> Message {
        let stale = outcome.as_ref().err().is_some_and(AuthError::is_stale);
        let mut r = Message::response_to(request, StatusCode::UNAUTHORIZED, Some(tag));
        for algorithm in &self.algorithms {
            r.headers_mut().push(
                HeaderName::WwwAuthenticate,
                self.digest.challenge(unix, *algorithm, stale).to_string(),
            );
        }
        r
    }
}

/// The user a request claims to be: its credentials' username, else its From user.
pub fn claimed_user(request: &Message, credentials: Option<&Auth>) -> String {
    credentials
        .and_then(|c| c.param("username"))
        .or_else(|| {
            request.from().ok().and_then(|f| {
                f.uri
                    .as_sip()
                    .and_then(|u| u.user.as_ref().map(ToString::to_string))
            })
        })
        .unwrap_or_default()
}
