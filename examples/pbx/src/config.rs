//! The PBX configuration: TOML, with an embedded default so that the PBX runs with no file.

use serde::Deserialize;
use std::net::SocketAddr;

/// The configuration used when no file is given.
pub(crate) const DEFAULT: &str = include_str!("default.toml");

/// The whole PBX configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) sip: Sip,
    pub(crate) rtp: Rtp,
    pub(crate) http: Http,
    pub(crate) provisioning: Provisioning,
    #[serde(default)]
    pub(crate) users: Vec<User>,
    #[serde(default)]
    pub(crate) extensions: Vec<Extension>,
}

/// SIP listener (UDP and TCP on the same address).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sip {
    pub(crate) listen: SocketAddr,
}

/// The media relay's port pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rtp {
    pub(crate) port_min: u16,
    pub(crate) port_max: u16,
}

/// The REST API listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Http {
    pub(crate) listen: SocketAddr,
}

/// The phone provisioning server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provisioning {
    pub(crate) http_listen: SocketAddr,
}

/// A user with one SIP line whose username is the extension.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct User {
    pub(crate) exten: String,
    pub(crate) name: String,
    pub(crate) password: String,
}

/// A service extension (echo test, playback...).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Extension {
    pub(crate) exten: String,
    pub(crate) does: String,
}

impl Config {
    /// Parses a configuration, checking what serde cannot.
    pub(crate) fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.rtp.port_min > config.rtp.port_max {
            return Err(format!(
                "rtp: port_min {} is above port_max {}",
                config.rtp.port_min, config.rtp.port_max
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_with_ten_users() {
        let config = Config::parse(DEFAULT).unwrap();
        let extens: Vec<&str> = config.users.iter().map(|u| u.exten.as_str()).collect();
        assert_eq!(
            extens,
            [
                "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009"
            ]
        );
        assert_eq!(config.sip.listen.port(), 5060);
        assert_eq!((config.rtp.port_min, config.rtp.port_max), (10000, 20000));
    }

    #[test]
    fn inverted_rtp_range_is_refused() {
        let text = DEFAULT.replace("port_min = 10000", "port_min = 30000");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("port_min 30000"), "{err}");
    }
}
