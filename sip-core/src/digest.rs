//! Digest authentication for SIP (RFC 3261 §22, RFC 7616 algorithms, RFC 8760 SHA-256).
//!
//! Server side: [`DigestServer`] issues stateless nonces (a timestamp and an HMAC over
//! it, so that any node holding the key can check them without shared state), verifies
//! credentials over the `uri` the client sent (SIPp and some phones put the server
//! address there, not the Request-URI), answers `stale=true` for an expired nonce, and
//! refuses replays: a nonce answered without `qop` is good for one request, and with
//! `qop=auth` its nonce count must strictly increase. Unknown users are refused exactly
//! like wrong passwords, so that a peer can't enumerate accounts.
//!
//! Replay protection needs memory: the server remembers the nonces it has accepted
//! until they expire, at most [`DigestServer::with_max_tracked`] of them. When that
//! table is full the oldest nonce is forgotten, and from then on every nonce issued no
//! later than it is answered as stale (the client asks again, with a fresh nonce)
//! rather than accepted once more: the memory bound never reopens a replay. Only the
//! nonces seen are held, so the nonces themselves stay stateless: another node sharing
//! the secret verifies them (each node refuses replays of the nonces it has seen).
//!
//! Client side: [`respond`] computes the Authorization value for a challenge, for
//! trunks that register upstream.
//!
//! Time is an input: the caller passes the current Unix time in seconds.
//!
//! A phone answering a SHA-256 challenge, and what the server makes of that answer
//! sent once, replayed, sent again with the next nonce count, and sent too late:
//!
//! ```
//! use pbxkit_sip::digest::{self, Algorithm, AuthError, DigestServer};
//!
//! let t0 = 1_700_000_000; // Unix seconds
//! let mut server = DigestServer::new("pbx.example.com", b"an example secret, 32 bytes long", 300);
//! let password = |user: &str| (user == "1000").then(|| "pw".to_owned());
//!
//! let challenge = server.challenge(t0, Algorithm::Sha256, false);
//! assert_eq!(challenge.param("qop").as_deref(), Some("auth"));
//! let answer = |nc| digest::respond(&challenge, "INVITE", "sip:2000@pbx.example.com", "1000", "pw", "9b1e", nc);
//! let first = answer(1).ok_or("not a Digest challenge")?;
//! assert_eq!(first.param("algorithm").as_deref(), Some("SHA-256"));
//! assert_eq!(first.param("nc").as_deref(), Some("00000001"));
//!
//! assert_eq!(server.verify(&first, "INVITE", t0 + 1, password)?.username, "1000");
//! // The same credentials again are a replay: challenge again with stale=true.
//! let replay = server.verify(&first, "INVITE", t0 + 2, password);
//! assert_eq!(replay, Err(AuthError::Replay));
//! assert!(replay.is_err_and(|e| e.is_stale()));
//! // The next request with this nonce counts up, and is accepted.
//! let second = answer(2).ok_or("not a Digest challenge")?;
//! assert!(server.verify(&second, "INVITE", t0 + 3, password).is_ok());
//! // A wrong password (or an unknown user) is refused, the two alike.
//! let wrong = digest::respond(&challenge, "INVITE", "sip:2000@pbx.example.com", "1000", "guess", "9b1e", 3);
//! let wrong = wrong.ok_or("not a Digest challenge")?;
//! assert_eq!(server.verify(&wrong, "INVITE", t0 + 4, password), Err(AuthError::Refused));
//! // Past the nonce's 300 s the answer is stale, even with the right password.
//! let late = answer(3).ok_or("not a Digest challenge")?;
//! assert_eq!(server.verify(&late, "INVITE", t0 + 301, password), Err(AuthError::Stale));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::bytestr::ByteStr;
use crate::params::Params;
use crate::values::Auth;
use md5::Digest as _;
use std::collections::BTreeMap;

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
    /// Whether to challenge again with `stale=true`: the response was right but its
    /// nonce can't be used (expired, or already used: a replay, or a phone that reuses
    /// nonces). A fresh nonce is all the client needs, and a replaying attacker can't
    /// answer it without the password.
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::Stale | AuthError::Replay)
    }
}

/// Server-side digest authentication with stateless nonces.
#[derive(Debug)]
pub struct DigestServer {
    realm: ByteStr,
    key: ring::hmac::Key,
    /// How long a nonce is accepted, in seconds.
    nonce_ttl: u64,
    /// The nonces accepted so far and how they were used, ordered by issue time (the
    /// key is the nonce's bytes, timestamp first), so that the oldest goes first.
    used: BTreeMap<NonceKey, Use>,
    /// Nonces issued no later than this one are no longer tracked: answered as stale.
    forgotten: Option<NonceKey>,
    /// Nonces issued so far (their serial numbers).
    issued: std::sync::atomic::AtomicU64,
    max_tracked: usize,
}

/// A nonce's bytes: timestamp (8), serial (8), HMAC tag (16). Ordered by issue time.
type NonceKey = [u8; 32];

/// How an accepted nonce has been used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Answered without qop: spent.
    Once,
    /// With qop=auth, the highest nonce count accepted.
    Counted(u32),
}

/// The seconds of a nonce's timestamp.
fn issued_at(key: &NonceKey) -> u64 {
    let mut seconds = [0u8; 8];
    seconds.copy_from_slice(&key[..8]);
    u64::from_be_bytes(seconds)
}

/// Default bound of [`DigestServer::with_max_tracked`].
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

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
            used: BTreeMap::new(),
            forgotten: None,
            issued: std::sync::atomic::AtomicU64::new(0),
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }

    /// Bounds the number of nonces remembered against replay (default
    /// [`DEFAULT_MAX_TRACKED`], about 60 bytes each). Expired nonces are forgotten
    /// first, then the oldest; nonces issued no later than a forgotten one are then
    /// answered as stale.
    pub fn with_max_tracked(mut self, max: usize) -> DigestServer {
        self.max_tracked = max.max(1);
        self
    }

    /// Declares that this server starts remembering at `now` (Unix seconds): nonces
    /// issued before, whose use it could not have seen (a node restarting with the same
    /// secret), are answered as stale instead of being accepted. Nonces issued from
    /// `now` on, by this node or another sharing the secret, are verified as usual.
    /// Nonce timestamps are in seconds: a nonce issued by a previous run within the
    /// very second of `now` is not covered.
    pub fn remembering_since(mut self, now: u64) -> DigestServer {
        let mut key = [0xff; 32];
        key[..8].copy_from_slice(&now.saturating_sub(1).to_be_bytes());
        self.forgotten = self.forgotten.max(Some(key));
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

    /// Checks a nonce: ours and not expired. Returns its bytes.
    fn check_nonce(&self, nonce: &str, now: u64) -> Result<NonceKey, AuthError> {
        let (stamp_hex, tag_hex) = (nonce.get(..32), nonce.get(32..));
        let stamp = stamp_hex.and_then(unhex).ok_or(AuthError::Nonce)?;
        let tag = tag_hex.and_then(unhex).ok_or(AuthError::Nonce)?;
        let expected = ring::hmac::sign(&self.key, &[&stamp[..], self.realm.as_bytes()].concat());
        if stamp.len() != 16
            || tag.len() != 16
            || !equal_constant_time(&tag, &expected.as_ref()[..16])
        {
            return Err(AuthError::Nonce);
        }
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&stamp);
        key[16..].copy_from_slice(&tag);
        let issued = issued_at(&key);
        if issued > now.saturating_add(60) || now.saturating_sub(issued) > self.nonce_ttl {
            return Err(AuthError::Stale);
        }
        Ok(key)
    }

    /// Verifies credentials for a request with `method`. `password` looks a user's
    /// password up; an unknown user is refused like a wrong password. On success the
    /// nonce's use is recorded so that a replay is refused: a nonce answered without
    /// qop is spent, and with qop the next request must carry a higher nonce count.
    /// The response is checked before the replay, so that a guess can't spend a
    /// legitimate client's nonce.
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
        let key = self.check_nonce(&nonce, now)?;
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
        let use_ = match counted {
            Some((_, _, count)) => Use::Counted(count),
            None => Use::Once,
        };
        self.record_use(key, use_, now)?;
        Ok(Verified { username })
    }

    /// Records an accepted use of a nonce, or refuses it as a replay.
    fn record_use(&mut self, key: NonceKey, use_: Use, now: u64) -> Result<(), AuthError> {
        if let Some(seen) = self.used.get_mut(&key) {
            return match (*seen, use_) {
                (Use::Counted(last), Use::Counted(count)) if count > last => {
                    *seen = Use::Counted(count);
                    Ok(())
                }
                // Used without qop, or the count did not increase.
                _ => Err(AuthError::Replay),
            };
        }
        if self.forgotten.is_some_and(|f| key <= f) {
            // It may have been used while untracked: a fresh nonce costs one round trip.
            return Err(AuthError::Stale);
        }
        // Expired nonces are refused as stale before they get here: forget them.
        let ttl = self.nonce_ttl;
        while let Some(entry) = self.used.first_entry() {
            if now.saturating_sub(issued_at(entry.key())) <= ttl {
                break;
            }
            entry.remove();
        }
        while self.used.len() >= self.max_tracked {
            if let Some((oldest, _)) = self.used.pop_first() {
                self.forgotten = self.forgotten.max(Some(oldest));
            }
        }
        if self.forgotten.is_some_and(|f| key <= f) {
            return Err(AuthError::Stale);
        }
        self.used.insert(key, use_);
        Ok(())
    }

    /// Number of nonces remembered against replay.
    pub fn tracked(&self) -> usize {
        self.used.len()
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

    /// Credentials answering a challenge that did not offer qop (RFC 2069 style, what
    /// the replay of issue 23 used).
    fn answer_without_qop(server: &DigestServer, now: u64, password: &str) -> Auth {
        let mut challenge = server.challenge(now, Algorithm::Md5, false);
        assert!(challenge.params.remove("qop"));
        let creds = respond(
            &challenge,
            "REGISTER",
            "sip:192.0.2.10:5060",
            "1000",
            password,
            "c0ffee",
            1,
        )
        .unwrap();
        assert_eq!(creds.param("qop"), None);
        Auth::parse_value(&ByteStr::from(creds.to_string())).unwrap()
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_response_without_qop_is_good_for_one_request() {
        let mut server = DigestServer::new("pbxkit", KEY, 300);
        let creds = answer_without_qop(&server, 1_000, "secret");
        assert!(server.verify(&creds, "REGISTER", 1_001, lookup).is_ok());
        // The verifier sees only the credentials: the same bytes sent again, whatever
        // address they come from and however late within the nonce's life, are refused.
        for later in [1_001, 1_002, 1_150, 1_300] {
            assert_eq!(
                server.verify(&creds, "REGISTER", later, lookup),
                Err(AuthError::Replay)
            );
        }
        // The replay is answered with a fresh challenge, stale=true: a phone that reuses
        // nonces gets one without asking its user; an attacker can't answer it.
        assert!(AuthError::Replay.is_stale());
        // Once expired it is stale (and a fresh challenge follows), never accepted.
        assert_eq!(
            server.verify(&creds, "REGISTER", 1_301, lookup),
            Err(AuthError::Stale)
        );
        // A nonce spent without qop can't be reused with qop either.
        let challenge = server.challenge(2_000, Algorithm::Md5, false);
        let mut bare = challenge.clone();
        bare.params.remove("qop");
        let reply = |c: &Auth| {
            let creds = respond(c, "REGISTER", "sip:pbx", "1000", "secret", "c0ffee", 1).unwrap();
            Auth::parse_value(&ByteStr::from(creds.to_string())).unwrap()
        };
        assert!(
            server
                .verify(&reply(&bare), "REGISTER", 2_000, lookup)
                .is_ok()
        );
        assert_eq!(
            server.verify(&reply(&challenge), "REGISTER", 2_001, lookup),
            Err(AuthError::Replay)
        );
    }

    #[test]
    fn a_wrong_guess_does_not_spend_the_nonce() {
        let mut server = DigestServer::new("pbxkit", KEY, 300);
        let good = answer_without_qop(&server, 1_000, "secret");
        let mut guess = good.clone();
        guess.params.set(
            "response",
            Some(ByteStr::from_static("\"00000000000000000000000000000000\"")),
        );
        assert_eq!(
            server.verify(&guess, "REGISTER", 1_001, lookup),
            Err(AuthError::Refused)
        );
        assert!(server.verify(&good, "REGISTER", 1_001, lookup).is_ok());
    }

    #[test]
    fn nonce_counts_must_strictly_increase() {
        let mut server = DigestServer::new("pbxkit", KEY, 300);
        let challenge = server.challenge(1_000, Algorithm::Md5, false);
        let with_nc = |nc| {
            let creds = respond(
                &challenge, "REGISTER", "sip:pbx", "1000", "secret", "c0ffee", nc,
            )
            .unwrap();
            Auth::parse_value(&ByteStr::from(creds.to_string())).unwrap()
        };
        assert!(
            server
                .verify(&with_nc(1), "REGISTER", 1_000, lookup)
                .is_ok()
        );
        assert!(
            server
                .verify(&with_nc(5), "REGISTER", 1_001, lookup)
                .is_ok()
        );
        for old in [1, 4, 5] {
            assert_eq!(
                server.verify(&with_nc(old), "REGISTER", 1_002, lookup),
                Err(AuthError::Replay),
                "nc={old}"
            );
        }
        assert!(
            server
                .verify(&with_nc(6), "REGISTER", 1_003, lookup)
                .is_ok()
        );
        assert_eq!(server.tracked(), 1);
    }

    #[test]
    fn expired_nonces_are_stale_and_forgotten() {
        let mut server = DigestServer::new("pbxkit", KEY, 300);
        let old = answer(&server, 1_000, Algorithm::Md5, "secret", 1);
        assert!(server.verify(&old, "REGISTER", 1_000, lookup).is_ok());
        let e = server.verify(&old, "REGISTER", 1_301, lookup).unwrap_err();
        assert!(e.is_stale());
        // A wrong password on an expired nonce is stale too: the phone learns nothing
        // about the password before it answers a fresh challenge.
        let wrong = answer(&server, 1_000, Algorithm::Md5, "guess", 2);
        assert_eq!(
            server.verify(&wrong, "REGISTER", 1_301, lookup),
            Err(AuthError::Stale)
        );
        // The stale answer's challenge carries stale=true.
        let challenge = server.challenge(1_301, Algorithm::Md5, true);
        assert_eq!(challenge.param("stale").as_deref(), Some("true"));
        // The next accepted nonce drops the expired entry.
        let fresh = answer(&server, 1_301, Algorithm::Md5, "secret", 1);
        assert!(server.verify(&fresh, "REGISTER", 1_302, lookup).is_ok());
        assert_eq!(server.tracked(), 1);
    }

    #[test]
    fn another_node_sharing_the_secret_verifies_the_nonces() {
        let a = DigestServer::new("pbxkit", KEY, 300);
        let mut b = DigestServer::new("pbxkit", KEY, 300);
        let creds = answer_without_qop(&a, 1_000, "secret");
        assert!(b.verify(&creds, "REGISTER", 1_001, lookup).is_ok());
        assert_eq!(
            b.verify(&creds, "REGISTER", 1_002, lookup),
            Err(AuthError::Replay)
        );
        // The nonce is bound to the realm.
        let mut other_realm = DigestServer::new("elsewhere", KEY, 300);
        let mut moved = answer(&a, 1_000, Algorithm::Md5, "secret", 1);
        moved
            .params
            .set("realm", Some(ByteStr::from_static("\"elsewhere\"")));
        assert_eq!(
            other_realm.verify(&moved, "REGISTER", 1_001, lookup),
            Err(AuthError::Nonce)
        );
    }

    #[test]
    fn a_restarted_node_refuses_nonces_it_could_not_have_seen_as_stale() {
        let before = DigestServer::new("pbxkit", KEY, 300);
        let creds = answer_without_qop(&before, 1_000, "secret");
        let mut restarted = DigestServer::new("pbxkit", KEY, 300).remembering_since(1_010);
        assert_eq!(
            restarted.verify(&creds, "REGISTER", 1_011, lookup),
            Err(AuthError::Stale)
        );
        let fresh = answer_without_qop(&restarted, 1_010, "secret");
        assert!(restarted.verify(&fresh, "REGISTER", 1_011, lookup).is_ok());
    }

    #[test]
    fn a_full_table_makes_older_nonces_stale_not_replayable() {
        let mut server = DigestServer::new("pbxkit", KEY, 300).with_max_tracked(2);
        let first = answer_without_qop(&server, 1_000, "secret");
        assert!(server.verify(&first, "REGISTER", 1_000, lookup).is_ok());
        // A nonce issued but not used yet, older than what is about to be forgotten.
        let pending = answer_without_qop(&server, 1_001, "secret");
        for t in 2..5 {
            let creds = answer_without_qop(&server, 1_000 + t, "secret");
            assert!(server.verify(&creds, "REGISTER", 1_000 + t, lookup).is_ok());
        }
        assert_eq!(server.tracked(), 2);
        // `first` was forgotten: its replay is stale (a fresh challenge), not accepted.
        assert_eq!(
            server.verify(&first, "REGISTER", 1_005, lookup),
            Err(AuthError::Stale)
        );
        assert_eq!(
            server.verify(&pending, "REGISTER", 1_005, lookup),
            Err(AuthError::Stale)
        );
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
