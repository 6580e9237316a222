//! The users' passwords when the PBX runs on its embedded default configuration.
//!
//! The embedded default is public (it is in the binary and in `--print-default-config`),
//! so its example passwords must not guard a running PBX: a start with no `--config`
//! gives every user a random password, generated on first run from the system's
//! CSPRNG, stored in `data_dir/passwords.json` (written atomically, readable by the
//! owner only) and reused on later runs. A configuration file's passwords are used as
//! written; [`weakness`] says which deserve a warning (`check-config`, start-up log).

use crate::config::{ApiUser, User};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Where the generated passwords live, under `data_dir`.
pub(crate) const FILE: &str = "passwords.json";

/// Passwords shorter than this get a warning.
pub(crate) const MIN_LEN: usize = 12;

/// Length of a generated password: 16 characters of 56, about 93 bits.
const GENERATED_LEN: usize = 16;

/// Letters and digits without the look-alikes (0 O o 1 l I), to be read off a banner.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A random password from `rng`.
pub(crate) fn generate(rng: &dyn SecureRandom) -> io::Result<String> {
    let mut password = String::with_capacity(GENERATED_LEN);
    // Bytes at or above the largest multiple of the alphabet's size are dropped, so
    // that every character is equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut bytes = [0u8; 64];
    while password.len() < GENERATED_LEN {
        rng.fill(&mut bytes)
            .map_err(|_| io::Error::other("the system random generator failed"))?;
        for &b in &bytes {
            if usize::from(b) < limit && password.len() < GENERATED_LEN {
                password.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(password)
}

/// Replaces every user's and API user's password by the one stored for it in
/// `data_dir` (API users under `api:<name>`), generating (and storing) one for each
/// that has none yet. Returns the file's path.
pub(crate) fn apply_generated(
    data_dir: &Path,
    users: &mut [User],
    api_users: &mut [ApiUser],
) -> io::Result<std::path::PathBuf> {
    apply_generated_with(data_dir, users, api_users, &SystemRandom::new())
}

fn apply_generated_with(
    data_dir: &Path,
    users: &mut [User],
    api_users: &mut [ApiUser],
    rng: &dyn SecureRandom,
) -> io::Result<std::path::PathBuf> {
    let file = data_dir.join(FILE);
    let mut stored: BTreeMap<String, String> = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", file.display()),
            )
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    let mut changed = false;
    let accounts = users
        .iter_mut()
        .map(|u| (u.exten.clone(), &mut u.password))
        .chain(
            api_users
                .iter_mut()
                .map(|a| (format!("api:{}", a.name), &mut a.password)),
        );
    for (key, password) in accounts {
        *password = match stored.get(&key) {
            Some(p) => p.clone(),
            None => {
                let p = generate(rng)?;
                stored.insert(key, p.clone());
                changed = true;
                p
            }
        };
    }
    if changed {
        std::fs::create_dir_all(data_dir)?;
        let mut text = serde_json::to_vec_pretty(&stored).map_err(io::Error::other)?;
        text.push(b'\n');
        crate::store::write_atomic_private(&file, &text)?;
    }
    Ok(file)
}

/// Every account's name and password: the users' (by extension), then the API users'.
pub(crate) fn accounts(config: &crate::config::Config) -> impl Iterator<Item = (&str, &str)> {
    config
        .users
        .iter()
        .map(|u| (u.exten.as_str(), u.password.as_str()))
        .chain(
            config
                .api_users
                .iter()
                .map(|a| (a.name.as_str(), a.password.as_str())),
        )
}

/// Why a configured password deserves a warning, if it does.
pub(crate) fn weakness(exten: &str, password: &str) -> Option<String> {
    if is_published(password) {
        Some(format!(
            "the password of {exten} is one of the published example passwords"
        ))
    } else if password.chars().count() < MIN_LEN {
        Some(format!(
            "the password of {exten} is shorter than {MIN_LEN} characters"
        ))
    } else {
        None
    }
}

/// The example passwords of the embedded default: `pbx` + digits + `pw` (`pbx1000pw`),
/// and the API account's `pbxadminpw`.
fn is_published(password: &str) -> bool {
    password == "pbxadminpw"
        || password
            .strip_prefix("pbx")
            .and_then(|rest| rest.strip_suffix("pw"))
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<User> {
        let config = crate::config::Config::parse(crate::config::DEFAULT).unwrap();
        config.users
    }

    #[test]
    fn generated_passwords_are_long_distinct_and_from_the_alphabet() {
        let rng = SystemRandom::new();
        let a = generate(&rng).unwrap();
        let b = generate(&rng).unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.len(), GENERATED_LEN);
            assert!(p.bytes().all(|c| ALPHABET.contains(&c)), "{p}");
            assert_eq!(weakness("1000", p), None);
        }
    }

    #[test]
    fn passwords_are_generated_once_then_reused() {
        let dir = std::env::temp_dir().join(format!("pbxkit-passwords-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut first = users();
        let file = apply_generated(&dir.join("data"), &mut first, &mut []).unwrap();
        assert!(
            first
                .iter()
                .all(|u| weakness(&u.exten, &u.password).is_none())
        );
        let mut second = users();
        apply_generated(&dir.join("data"), &mut second, &mut []).unwrap();
        let passwords = |us: &[User]| us.iter().map(|u| u.password.clone()).collect::<Vec<_>>();
        assert_eq!(passwords(&first), passwords(&second));
        // A user added later gets its own, the others keep theirs.
        let mut more = users();
        more.truncate(2);
        let mut extra = more[0].clone();
        extra.exten = "1099".into();
        more.push(extra);
        apply_generated(&dir.join("data"), &mut more, &mut []).unwrap();
        assert_eq!(passwords(&more[..2]), passwords(&first[..2]));
        assert!(weakness("1099", &more[2].password).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
        // A damaged file is an error, not a silent new set of passwords.
        std::fs::write(&file, "{not json").unwrap();
        assert!(apply_generated(&dir.join("data"), &mut users(), &mut []).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn published_and_short_passwords_are_weak() {
        assert!(weakness("1000", "pbx1000pw").unwrap().contains("published"));
        assert!(weakness("1042", "pbx1042pw").unwrap().contains("published"));
        assert!(
            weakness("1000", "short pass")
                .unwrap()
                .contains("shorter than 12")
        );
        assert!(
            weakness("admin", "pbxadminpw")
                .unwrap()
                .contains("published")
        );
        assert_eq!(weakness("1000", "pbx-not-published-pw"), None);
        assert_eq!(weakness("1000", "twelve chars"), None);
    }
}
