//! Digest authentication for SIP (RFC 3261 §22, RFC 7616 algorithms, RFC 8760 SHA-256).
//!
//! Server side: [`DigestServer`] issues stateless nonces (a timestamp and an HMAC over
//! it, so that any node holding the key can check them without shared state), verifies
//! credentials over the `uri` the client sent (SIPp and some phones put the server
//! address there, not the Request-URI), answers `stale=true` for an expired nonce, and
//! refuses a nonce count that does not increase (replay). Unknown users are refused
//! exactly like wrong passwords, so that a peer can't enumerate accounts.
//!
//! Client side: [`respond`] computes the Authorization value for a challenge, for
//! trunks that register upstream.
//!
//! Time is an input: the caller passes the current Unix time in seconds.

use crate::bytestr::ByteStr;
use crate::params::Params;
use crate::values::Auth;
use md5::Digest as _;
use std::collections::HashMap;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// MD5 (RFC 2617), what most phones speak.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The `algorithm=` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Recognises an `algorithm=` value (case-insensitive); absent means MD5.
    pub fn parse(s: Option<&str>) -> Option<Algorithm> {
        match s {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    /// Lower-case hex of the hash of the parts joined by `:`.
    fn hash(self, parts: &[&str]) -> String {
        let mut joined = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                joined.push(b':');
            }
            joined.extend_from_slice(p.as_bytes());
        }
        match self {
            Algorithm::Md5 => hex(&md5::Md5::digest(&joined)),
            Algorithm::Sha256 => hex(ring::digest::digest(&ring::digest::SHA256, &joined).as_ref()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Compares without an early exit, so that timing does not reveal how much matched.
fn equal_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Computes the `response` of RFC 7616 §3.4.1 (qop=auth, or no qop as in RFC 2069).
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = algorithm.hash(&[username, realm, password]);
    let ha2 = algorithm.hash(&[method, uri]);
    match qop {
        Some((nc, cnonce)) => algorithm.hash(&[&ha1, nonce, nc, cnonce, "auth", &ha2]),
        None => algorithm.hash(&[&ha1, nonce, &ha2]),
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The scheme is not Digest.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A parameter the response needs is missing.
    #[error("digest parameter {0} is missing")]
    Missing(&'static str),
    /// The realm is not ours.
    #[error("digest realm is not ours")]
    Realm,
    /// The algorithm is not one we offer.
    #[error("digest algorithm is not supported")]
    Algorithm,
    /// The qop is not `auth`.
    #[error("digest qop is not auth")]
    Qop,
    /// The nonce was not issued by us (or was tampered with).
    #[error("digest nonce is not ours")]
    Nonce,
    /// The nonce is ours but too old: challenge again with `stale=true`.
    #[error("digest nonce has expired")]
    Stale,
    /// The nonce count did not increase: a replayed request.
    #[error("digest nonce count replayed")]
    Replay,
    /// Wrong password, or no such user (the two are not told apart).
    #[error("digest response refused")]
    Refused,
}

impl AuthError {
    /// Whether to challenge again with `stale=true` (the client's password was right).
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::Stale)
    }
}

/// Server-side digest authentication with stateless nonces.
#[derive(Debug)]
pub struct DigestServer {
    realm: ByteStr,
    key: ring::hmac::Key,
    /// How long a nonce is accepted, in seconds.
    nonce_ttl: u64,
    /// Highest nonce count seen per nonce, bounded; entries expire with their nonce.
    counts: HashMap<String, (u32, u64)>,
    /// Nonces issued so far (their serial numbers).
    issued: std::sync::atomic::AtomicU64,
    max_tracked: usize,
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated user name.
    pub username: String,
}

impl DigestServer {
    /// A server for `realm`. `secret` keys the nonce HMAC (random, at least 32 bytes;
    /// nodes sharing it accept each other's nonces); nonces live `nonce_ttl` seconds.
    pub fn new(realm: &str, secret: &[u8], nonce_ttl: u64) -> DigestServer {
        DigestServer {
            realm: ByteStr::from(realm),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            nonce_ttl,
            counts: HashMap::new(),
            issued: std::sync::atomic::AtomicU64::new(0),
            max_tracked: 100_000,
        }
    }

    /// Bounds the number of nonces whose counts are tracked (default 100 000); when
    /// full, expired entries are dropped first, then the oldest.
    pub fn with_max_tracked(mut self, max: usize) -> DigestServer {
        self.max_tracked = max.max(1);
        self
    }

    /// A nonce for time `now` (Unix seconds): hex(timestamp, serial) then hex(HMAC[..16]).
    pub fn nonce(&self, now: u64) -> String {
        // A serial number makes nonces issued in the same second distinct, so that two
        // clients answering with nc=1 are not taken for a replay of each other.
        let serial = self
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stamp = [now.to_be_bytes(), serial.to_be_bytes()].concat();
        let tag = ring::hmac::sign(&self.key, &[&stamp[..], self.realm.as_bytes()].concat());
        format!("{}{}", hex(&stamp), hex(&tag.as_ref()[..16]))
    }

    /// The WWW-Authenticate (or Proxy-Authenticate) value for a challenge.
    pub fn challenge(&self, now: u64, algorithm: Algorithm, stale: bool) -> Auth {
        let mut params = Params::new();
        params.set("realm", Some(ByteStr::from(format!("\"{}\"", self.realm))));
        params.set(
            "nonce",
            Some(ByteStr::from(format!("\"{}\"", self.nonce(now)))),
        );
        params.set("algorithm", Some(ByteStr::from_static(algorithm.as_str())));
        params.set("qop", Some(ByteStr::from_static("\"auth\"")));
        if stale {
            params.set("stale", Some(ByteStr::from_static("true")));
        }
        Auth {
            scheme: ByteStr::from_static("Digest"),
            params,
        }
    }

    /// Checks a nonce: ours and not expired.
    fn check_nonce(&self, nonce: &str, now: u64) -> Result<u64, AuthError> {
        let (stamp_hex, tag_hex) = (nonce.get(..32), nonce.get(32..));
        let stamp = stamp_hex.and_then(unhex).ok_or(AuthError::Nonce)?;
        let tag = tag_hex.and_then(unhex).ok_or(AuthError::Nonce)?;
        let expected = ring::hmac::sign(&self.key, &[&stamp[..], self.realm.as_bytes()].concat());
        if tag.len() != 16 || !equal_constant_time(&tag, &expected.as_ref()[..16]) {
            return Err(AuthError::Nonce);
        }
        let seconds = stamp.get(..8).ok_or(AuthError::Nonce)?;
        let issued = u64::from_be_bytes(seconds.try_into().map_err(|_| AuthError::Nonce)?);
        if issued > now.saturating_add(60) || now.saturating_sub(issued) > self.nonce_ttl {
            return Err(AuthError::Stale);
        }
        Ok(issued)
    }

    /// Verifies credentials for a request with `method`. `password` looks a user's
    /// password up; an unknown user is refused like a wrong password. On success the
    /// nonce count is recorded so that a replay is refused.
    pub fn verify(
        &mut self,
        credentials: &Auth,
        method: &str,
        now: u64,
        password: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Verified, AuthError> {
        if !credentials.is_digest() {
            return Err(AuthError::NotDigest);
        }
        let get = |name: &'static str| credentials.param(name).ok_or(AuthError::Missing(name));
        let username = get("username")?;
        let realm = get("realm")?;
        let nonce = get("nonce")?;
        let uri = get("uri")?;
        let given = get("response")?;
        if realm != *self.realm {
            return Err(AuthError::Realm);
        }
        let algorithm = Algorithm::parse(credentials.param("algorithm").as_deref())
            .ok_or(AuthError::Algorithm)?;
        let issued = self.check_nonce(&nonce, now)?;
        let qop = credentials.param("qop");
        let counted = match qop.as_deref() {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = get("nc")?;
                let cnonce = get("cnonce")?;
                let count = u32::from_str_radix(&nc, 16).map_err(|_| AuthError::Missing("nc"))?;
                Some((nc, cnonce, count))
            }
            Some(_) => return Err(AuthError::Qop),
        };
        // Compute even for unknown users, so that both paths take the same time.
        let known = password(&username);
        let secret = known.as_deref().unwrap_or("\u{0}unknown user\u{0}");
        let expected = response(
            algorithm,
            &username,
            &realm,
            secret,
            method,
            &uri,
            &nonce,
            counted
                .as_ref()
                .map(|(nc, cnonce, _)| (nc.as_str(), cnonce.as_str())),
        );
        if known.is_none()
            || !equal_constant_time(expected.as_bytes(), given.to_ascii_lowercase().as_bytes())
        {
            return Err(AuthError::Refused);
        }
        if let Some((_, _, count)) = counted {
            self.record_count(&nonce, count, issued.saturating_add(self.nonce_ttl), now)?;
        }
        Ok(Verified { username })
    }

    fn record_count(
        &mut self,
        nonce: &str,
        count: u32,
        expires: u64,
        now: u64,
    ) -> Result<(), AuthError> {
        if let Some((last, _)) = self.counts.get_mut(nonce) {
            if count <= *last {
                return Err(AuthError::Replay);
            }
            *last = count;
            return Ok(());
        }
        if self.counts.len() >= self.max_tracked {
            self.counts.retain(|_, (_, exp)| *exp >= now);
            if self.counts.len() >= self.max_tracked {
                // Still full: forget the nonce that expires first. Its next use will be
                // accepted once more at worst, which is the price of a memory bound.
                if let Some(oldest) = self
                    .counts
                    .iter()
                    .min_by_key(|(_, (_, exp))| *exp)
                    .map(|(k, _)| k.clone())
                {
                    self.counts.remove(&oldest);
                }
            }
        }
        self.counts.insert(nonce.to_owned(), (count, expires));
        Ok(())
    }

    /// Number of nonces whose counts are tracked.
    pub fn tracked(&self) -> usize {
        self.counts.len()
    }
}

/// Client side: the Authorization (or Proxy-Authorization) value answering `challenge`
/// for a request `method uri`. `cnonce` should be random; `nc` counts the requests made
/// with this nonce, starting at 1. `None` when the challenge is not a usable Digest one.
pub fn respond(
    challenge: &Auth,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Option<Auth> {
    if !challenge.is_digest() {
        return None;
    }
    let realm = challenge.param("realm")?;
    let nonce = challenge.param("nonce")?;
    let algorithm = Algorithm::parse(challenge.param("algorithm").as_deref())?;
    let offers_auth = challenge
        .param("qop")
        .is_some_and(|q| q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")));
    let nc_text = format!("{nc:08x}");
    let qop = offers_auth.then_some((nc_text.as_str(), cnonce));
    let digest = response(
        algorithm, username, &realm, password, method, uri, &nonce, qop,
    );
    let quoted = |s: &str| Some(ByteStr::from(format!("\"{}\"", crate::scan::quote(s))));
    let mut params = Params::new();
    params.set("username", quoted(username));
    params.set("realm", quoted(&realm));
    params.set("nonce", quoted(&nonce));
    params.set("uri", quoted(uri));
    params.set("response", quoted(&digest));
    params.set("algorithm", Some(ByteStr::from_static(algorithm.as_str())));
    if offers_auth {
        params.set("qop", Some(ByteStr::from_static("auth")));
        params.set("nc", Some(ByteStr::from(nc_text)));
        params.set("cnonce", quoted(cnonce));
    }
    if let Some(opaque) = challenge.params.get("opaque").flatten() {
        params.set("opaque", Some(ByteStr::from(opaque)));
    }
    Some(Auth {
        scheme: ByteStr::from_static("Digest"),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::HeaderValue;

    #[test]
    fn rfc2617_vector() {
        let r = response(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_vectors() {
        let args = |a| {
            response(
                a,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
            )
        };
        assert_eq!(args(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            args(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    fn lookup(user: &str) -> Option<String> {
        (user == "1000").then(|| "secret".to_owned())
    }

    fn answer(
        server: &DigestServer,
        now: u64,
        algorithm: Algorithm,
        password: &str,
        nc: u32,
    ) -> Auth {
        let challenge = server.challenge(now, algorithm, false);
        // The challenge survives a trip through its text form, as on the wire.
        let challenge = Auth::parse_value(&ByteStr::from(challenge.to_string())).unwrap();
        let creds = respond(
            &challenge,
            "REGISTER",
            "sip:192.0.2.10:5060",
            "1000",
            password,
            "c0ffee",
            nc,
        )
        .unwrap();
        Auth::parse_value(&ByteStr::from(creds.to_string())).unwrap()
    }

    #[test]
    fn challenge_respond_verify_both_algorithms() {
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let mut server = DigestServer::new("pbxkit", b"0123456789abcdef0123456789abcdef", 300);
            let creds = answer(&server, 1_000, algorithm, "secret", 1);
            assert_eq!(
                server
                    .verify(&creds, "REGISTER", 1_010, lookup)
                    .unwrap()
                    .username,
                "1000"
            );
            // The same nonce count again is a replay; a higher one is fine.
            assert_eq!(
                server.verify(&creds, "REGISTER", 1_011, lookup),
                Err(AuthError::Replay)
            );
            let creds2 = answer(&server, 1_000, algorithm, "secret", 2);
            assert!(server.verify(&creds2, "REGISTER", 1_012, lookup).is_ok());
        }
    }

    #[test]
    fn refusals() {
        let mut server = DigestServer::new("pbxkit", b"0123456789abcdef0123456789abcdef", 300);
        let wrong = answer(&server, 1_000, Algorithm::Md5, "guess", 1);
        assert_eq!(
            server.verify(&wrong, "REGISTER", 1_001, lookup),
            Err(AuthError::Refused)
        );
        // An unknown user gets the same answer as a wrong password.
        let good = answer(&server, 1_000, Algorithm::Md5, "secret", 1);
        assert_eq!(
            server.verify(&good, "REGISTER", 1_001, |_| None),
            Err(AuthError::Refused)
        );
        // Expired nonce: stale, so the phone retries with a fresh one without asking the user.
        let e = server
            .verify(&good, "REGISTER", 1_000 + 301, lookup)
            .unwrap_err();
        assert!(e.is_stale());
        // A nonce from another key or a tampered one is not ours.
        let other = DigestServer::new("pbxkit", b"another key another key another", 300);
        let forged = answer(&other, 1_000, Algorithm::Md5, "secret", 1);
        assert_eq!(
            server.verify(&forged, "REGISTER", 1_001, lookup),
            Err(AuthError::Nonce)
        );
        // The response is checked over the uri the client sent, with the method we got.
        assert_eq!(
            server.verify(&good, "INVITE", 1_001, lookup),
            Err(AuthError::Refused)
        );
        let basic = Auth::parse_value(&ByteStr::from("Basic realm=\"x\"")).unwrap();
        assert_eq!(
            server.verify(&basic, "REGISTER", 1_001, lookup),
            Err(AuthError::NotDigest)
        );
    }

    #[test]
    fn two_clients_challenged_in_the_same_second_are_not_replays() {
        let mut server = DigestServer::new("pbxkit", b"0123456789abcdef0123456789abcdef", 300);
        let a = answer(&server, 1_000, Algorithm::Md5, "secret", 1);
        let b = answer(&server, 1_000, Algorithm::Md5, "secret", 1);
        assert_ne!(a.param("nonce"), b.param("nonce"));
        assert!(server.verify(&a, "REGISTER", 1_000, lookup).is_ok());
        assert!(server.verify(&b, "REGISTER", 1_000, lookup).is_ok());
    }

    #[test]
    fn tracked_counts_are_bounded() {
        let mut server = DigestServer::new("pbxkit", b"0123456789abcdef0123456789abcdef", 300)
            .with_max_tracked(3);
        for t in 0..10 {
            let creds = answer(&server, 1_000 + t, Algorithm::Md5, "secret", 1);
            assert!(server.verify(&creds, "REGISTER", 1_000 + t, lookup).is_ok());
        }
        assert!(server.tracked() <= 3);
    }
}
