//! The API's tokens (wazo-auth's): issued for a user's or an API user's
//! credentials, good until they expire or are revoked. Sans-IO: the caller passes
//! the time and the random token identifiers.
//!
//! Tokens live in memory: a restart revokes them all (clients ask again with their
//! credentials). Their number is bounded per identity, so that a client that asks
//! for a token per request only replaces its own oldest ones, and in all.

use super::acl::Acl;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Tokens one identity holds at once; a new one revokes its oldest.
pub(crate) const MAX_PER_IDENTITY: usize = 100;
/// Tokens held at once by everyone.
pub(crate) const MAX_TOTAL: usize = 10_000;

/// An issued token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// The token itself (what `X-Auth-Token` carries).
    pub(crate) id: String,
    /// Who it was issued to: `1000` (a user) or `admin` (an API user).
    pub(crate) auth_id: String,
    /// The user it acts for (`me` in ACLs), when issued for a user's credentials.
    pub(crate) user: Option<String>,
    pub(crate) acl: Acl,
    /// Unix seconds.
    pub(crate) issued_at: u64,
    pub(crate) expires_at: u64,
    expires: Instant,
    /// Issue order, to find an identity's oldest token.
    serial: u64,
}

impl Token {
    /// Whether it is still good at `now`.
    pub(crate) fn is_valid(&self, now: Instant) -> bool {
        now < self.expires
    }
}

/// What a token is issued for.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Who asks: a user's extension or an API user's name.
    pub(crate) auth_id: String,
    /// The user it acts for, when a user asks.
    pub(crate) user: Option<String>,
    pub(crate) acl: Acl,
    /// How long it lasts.
    pub(crate) lifetime: Duration,
}

/// Why no token was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IssueError {
    /// [`MAX_TOTAL`] tokens are held.
    #[error("too many tokens are in use; try again later")]
    Full,
}

/// The tokens in force.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    by_id: HashMap<String, Token>,
    serial: u64,
}

impl Tokens {
    /// Issues token `id` for `grant`, from `now` (`unix` seconds since 1970 at
    /// the same moment).
    pub(crate) fn issue(
        &mut self,
        id: String,
        grant: Grant,
        (now, unix): (Instant, u64),
    ) -> Result<Token, IssueError> {
        let Grant {
            auth_id,
            user,
            acl,
            lifetime,
        } = grant;
        let auth_id = auth_id.as_str();
        self.expire(now);
        let held: Vec<(u64, &String)> = self
            .by_id
            .values()
            .filter(|t| t.auth_id == auth_id)
            .map(|t| (t.serial, &t.id))
            .collect();
        if held.len() >= MAX_PER_IDENTITY {
            if let Some((_, oldest)) = held.iter().min() {
                let oldest = (*oldest).clone();
                self.by_id.remove(&oldest);
            }
        } else if self.by_id.len() >= MAX_TOTAL {
            return Err(IssueError::Full);
        }
        self.serial += 1;
        let token = Token {
            id: id.clone(),
            auth_id: auth_id.to_owned(),
            user,
            acl,
            issued_at: unix,
            expires_at: unix.saturating_add(lifetime.as_secs()),
            expires: now + lifetime,
            serial: self.serial,
        };
        self.by_id.insert(id, token.clone());
        Ok(token)
    }

    /// The token `id` if it is good at `now`.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<&Token> {
        self.by_id.get(id).filter(|t| t.is_valid(now))
    }

    /// Revokes `id`; whether it was held.
    pub(crate) fn revoke(&mut self, id: &str) -> bool {
        self.by_id.remove(id).is_some()
    }

    /// Revokes every token of `auth_id` (its user was removed, its password changed).
    pub(crate) fn revoke_all_of(&mut self, auth_id: &str) {
        self.by_id.retain(|_, t| t.auth_id != auth_id);
    }

    /// Forgets the tokens expired at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.by_id.retain(|_, t| t.is_valid(now));
    }

    /// How many are held (expired ones included until the next issue or expire).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn issue(tokens: &mut Tokens, id: &str, who: &str, now: Instant) -> Result<Token, IssueError> {
        let grant = Grant {
            auth_id: who.to_owned(),
            user: Some(who.to_owned()),
            acl: Acl::new(&["#"], None),
            lifetime: HOUR,
        };
        tokens.issue(id.to_owned(), grant, (now, 1_000))
    }

    #[test]
    fn a_token_is_good_until_it_expires_or_is_revoked() {
        let t0 = Instant::now();
        let mut tokens = Tokens::default();
        let token = issue(&mut tokens, "a", "1000", t0).unwrap();
        assert_eq!((token.issued_at, token.expires_at), (1_000, 4_600));
        assert!(
            tokens
                .get("a", t0 + HOUR - Duration::from_secs(1))
                .is_some()
        );
        assert!(tokens.get("a", t0 + HOUR).is_none());
        assert!(tokens.get("b", t0).is_none());
        issue(&mut tokens, "b", "1000", t0).unwrap();
        assert!(tokens.revoke("b"));
        assert!(!tokens.revoke("b"));
        assert!(tokens.get("b", t0).is_none());
        tokens.expire(t0 + HOUR);
        assert_eq!(tokens.len(), 0);
    }

    #[test]
    fn one_identity_replaces_its_own_oldest_tokens_not_others() {
        let t0 = Instant::now();
        let mut tokens = Tokens::default();
        issue(&mut tokens, "other", "1001", t0).unwrap();
        for i in 0..MAX_PER_IDENTITY + 5 {
            issue(&mut tokens, &format!("t{i}"), "1000", t0).unwrap();
        }
        assert_eq!(tokens.len(), MAX_PER_IDENTITY + 1);
        assert!(tokens.get("t4", t0).is_none(), "the oldest went first");
        assert!(tokens.get("t5", t0).is_some());
        assert!(tokens.get("other", t0).is_some());
        tokens.revoke_all_of("1000");
        assert_eq!(tokens.len(), 1);
    }

    #[test]
    fn the_total_is_bounded() {
        let t0 = Instant::now();
        let mut tokens = Tokens::default();
        for i in 0..MAX_TOTAL {
            issue(&mut tokens, &format!("t{i}"), &format!("u{}", i % 200), t0).unwrap();
        }
        assert_eq!(
            issue(&mut tokens, "one more", "new", t0).unwrap_err(),
            IssueError::Full
        );
        // Expired ones make room.
        assert!(issue(&mut tokens, "later", "new", t0 + HOUR).is_ok());
    }
}
