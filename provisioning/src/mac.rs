//! [`Mac`], an Ethernet address in any of the notations phones and files use.
//!
//! Accepted on input: `00:11:22:aa:bb:cc`, `00-11-22-AA-BB-CC`, `001122aabbcc` and
//! Cisco's `0011.22aa.bbcc`, in any case. Shown as `00:11:22:aa:bb:cc` by `Display`
//! (provd's form); [`Mac::compact`] and [`Mac::compact_upper`] give the forms used in
//! file names (Yealink `001122aabbcc.cfg`, Cisco `SEP001122AABBCC.cnf.xml`).

use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address (EUI-48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac([u8; 6]);

/// Why a text is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MacError {
    /// The text has the wrong length for every accepted notation.
    #[error(
        "MAC address {text:?}: {len} characters, expected 12 hex digits with or without separators"
    )]
    Length {
        /// The text, cut to 40 characters.
        text: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A character is neither a hex digit nor a separator at its place.
    #[error("MAC address {text:?}: unexpected {found:?} at byte {offset}")]
    Character {
        /// The text, cut to 40 characters.
        text: String,
        /// Byte offset of the bad character.
        offset: usize,
        /// The bad character.
        found: char,
    },
}

fn cut(text: &str) -> String {
    text.chars().take(40).collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Mac {
    /// The address from its six bytes.
    pub const fn new(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }

    /// The six bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Parses any accepted notation (see the module docs).
    ///
    /// ```
    /// use pbxkit_provisioning::Mac;
    /// let mac: Mac = "00-11-22-AA-BB-CC".parse()?;
    /// assert_eq!(mac.to_string(), "00:11:22:aa:bb:cc");
    /// assert_eq!(mac.compact().to_string(), "001122aabbcc");
    /// assert_eq!(mac.compact_upper().to_string(), "001122AABBCC");
    /// # Ok::<(), pbxkit_provisioning::MacError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, MacError> {
        let bytes = text.as_bytes();
        // Where the separators are, for each accepted length.
        let (separators, sep): (&[usize], Option<u8>) = match bytes.len() {
            12 => (&[], None),
            17 => (&[2, 5, 8, 11, 14], bytes.get(2).copied()),
            14 => (&[4, 9], Some(b'.')),
            len => {
                return Err(MacError::Length {
                    text: cut(text),
                    len,
                });
            }
        };
        let bad = |offset: usize| MacError::Character {
            text: cut(text),
            offset,
            found: text
                .get(offset..)
                .and_then(|s| s.chars().next())
                .unwrap_or('\u{fffd}'),
        };
        if let Some(sep) = sep
            && !matches!(sep, b':' | b'-' | b'.')
        {
            return Err(bad(2));
        }
        let mut out = [0u8; 6];
        let mut nibbles = 0usize;
        for (offset, &b) in bytes.iter().enumerate() {
            if separators.contains(&offset) {
                if Some(b) != sep {
                    return Err(bad(offset));
                }
                continue;
            }
            let value = hex(b).ok_or_else(|| bad(offset))?;
            let slot = out.get_mut(nibbles / 2).ok_or_else(|| bad(offset))?;
            *slot = (*slot << 4) | value;
            nibbles += 1;
        }
        Ok(Self(out))
    }

    /// Twelve lowercase hex digits, no separator (`001122aabbcc`: Yealink file names).
    pub const fn compact(&self) -> MacFormat {
        MacFormat {
            mac: *self,
            upper: false,
            separator: None,
        }
    }

    /// Twelve uppercase hex digits, no separator (`001122AABBCC`: Cisco `SEP…` names).
    pub const fn compact_upper(&self) -> MacFormat {
        MacFormat {
            mac: *self,
            upper: true,
            separator: None,
        }
    }

    /// Uppercase pairs joined by `separator` (`00-11-22-AA-BB-CC` with `'-'`).
    pub const fn upper_with(&self, separator: char) -> MacFormat {
        MacFormat {
            mac: *self,
            upper: true,
            separator: Some(separator),
        }
    }
}

/// A [`Mac`] in another notation, from [`Mac::compact`], [`Mac::compact_upper`] or
/// [`Mac::upper_with`]; shown with `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacFormat {
    mac: Mac,
    upper: bool,
    separator: Option<char>,
}

impl fmt::Display for MacFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.mac.0.iter().enumerate() {
            if i > 0
                && let Some(sep) = self.separator
            {
                write!(f, "{sep}")?;
            }
            if self.upper {
                write!(f, "{b:02X}")?;
            } else {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for Mac {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notations() {
        let want = Mac::new([0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc]);
        for text in [
            "00:11:22:aa:bb:cc",
            "00:11:22:AA:BB:CC",
            "001122AABBCC",
            "001122aabbcc",
            "00-11-22-aa-bb-cc",
            "0011.22aa.bbcc",
        ] {
            assert_eq!(Mac::parse(text), Ok(want), "{text}");
        }
        assert_eq!(want.upper_with('-').to_string(), "00-11-22-AA-BB-CC");
    }

    #[test]
    fn rejects() {
        for text in [
            "",
            "00:11:22:aa:bb",
            "00:11-22:aa:bb:cc",
            "00:11:22:aa:bb:cg",
            "00112233445g",
            "0011:22aa:bbcc",
            "00 11 22 aa bb cc",
            "é0112233445",
        ] {
            assert!(Mac::parse(text).is_err(), "{text}");
        }
        assert!(matches!(
            Mac::parse("00:11:22:aa:bb:zz"),
            Err(MacError::Character {
                offset: 15,
                found: 'z',
                ..
            })
        ));
    }

    #[test]
    fn serde_round_trip() {
        let mac = Mac::new([0x80, 0x5e, 0xc0, 0x11, 0x22, 0x33]);
        let json = serde_json::to_string(&mac).unwrap_or_default();
        assert_eq!(json, "\"80:5e:c0:11:22:33\"");
        assert_eq!(
            serde_json::from_str::<Mac>("\"805EC0112233\"").ok(),
            Some(mac)
        );
    }
}
