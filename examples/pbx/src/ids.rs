//! Random identifiers (tags, Call-IDs, branches, nonce keys) from the standard
//! library's randomly seeded hasher: unpredictable enough for SIP, no extra crate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 64 random bits.
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A random token of 16 hex digits.
pub(crate) fn token() -> String {
    format!("{:016x}", random_u64())
}

/// A random decimal number (an SDP session id).
pub(crate) fn numeric_id() -> String {
    (random_u64() >> 1).to_string()
}

/// 32 random bytes (the digest nonce key of this run).
pub(crate) fn secret() -> [u8; 32] {
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&random_u64().to_le_bytes());
    }
    key
}
