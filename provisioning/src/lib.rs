//! # pbxkit-provisioning
//!
//! What wazo-provd does, as an embeddable crate: phones are identified from their HTTP,
//! TFTP or DHCP requests, matched to a plugin, and receive configuration files rendered
//! from Jinja2 templates compatible with provd plugins. The HTTP and TFTP servers are
//! behind the `server` feature (tokio). Without it the crate still touches files, in
//! three places and nowhere else: [`template`] reads template files, [`store`] keeps
//! devices and configs in a durable JSON file, and [`generate`] writes a device's
//! files (atomically, only when changed); identification, plugins, time zones and
//! TFTP packets are pure.
//!
//! - [`model`]: [`Device`], [`Config`] and [`RawConfig`] (with typed accessors for
//!   `sip_lines`, `funckeys`, `timezone`...), and [`Configs`], which computes the
//!   effective raw config of a config tree.
//! - [`mac`](mod@mac): [`Mac`], MAC addresses in every notation phones use.
//! - [`identify`]: vendor, model, version and MAC from a `User-Agent`, a requested file
//!   name or a DHCP vendor class; plugin [`Support`] scores and plugin selection.
//! - [`template`]: [`Templates`], Jinja2 templates with provd's lookup order.
//! - [`plugins`]: the [`Plugin`](plugins::Plugin) trait, a [`Registry`](plugins::Registry)
//!   that picks the plugin of a device, and the built-in plugins (Yealink, Snom,
//!   Polycom, Cisco SPA, Aastra/Mitel, Grandstream, `null`).
//! - [`tz`]: IANA time zones as offsets and DST rules, for the vendors' notations.
//! - [`store`]: the [`Store`](store::Store) of devices and configs, in memory or in a
//!   durable JSON file.
//! - [`generate`]: a device's files from its config and plugin, written atomically and
//!   only when changed.
//! - [`tftp`]: TFTP packets (RFC 1350, 2347, 2348, 2349), sans I/O.
//! - `server` (feature `server`): the TFTP and HTTP servers phones download their
//!   files from, serving a `server::FileSource`.
//!
//! ```
//! use pbxkit_provisioning::identify::{self, select_plugin, Support};
//! use pbxkit_provisioning::model::{Config, Configs, RawConfig};
//! use pbxkit_provisioning::plugins::yealink;
//!
//! // A phone asks for a file: who is it, and which plugin serves it?
//! let info = identify::from_user_agent("Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33")
//!     .unwrap_or_default();
//! let plugin = select_plugin([
//!     ("xivo-yealink", identify::support(&yealink::support_rules(), &info)),
//!     ("xivo-snom", Support::None),
//! ]);
//! assert_eq!(plugin, Some("xivo-yealink"));
//!
//! // Its config inherits the base config.
//! let raw = |v: serde_json::Value| RawConfig(v.as_object().cloned().unwrap_or_default());
//! let mut configs = Configs::new();
//! configs.insert("base".into(), Config {
//!     raw_config: raw(serde_json::json!({"ip": "10.0.0.1", "sip_proxy_ip": "10.0.0.1"})),
//!     ..Config::default()
//! });
//! configs.insert("dev1".into(), Config {
//!     parent_ids: vec!["base".into()],
//!     raw_config: raw(serde_json::json!({"sip_lines": {"1": {
//!         "username": "abc", "password": "secret", "display_name": "Alice", "number": "1001"
//!     }}})),
//!     ..Config::default()
//! });
//! let effective = configs.effective(&"dev1".into())?;
//!
//! // The plugin renders `<mac>.cfg`.
//! let mac = info.mac.ok_or("no MAC")?;
//! let (name, text) = yealink::Yealink::new().render(mac, info.model.as_deref(), &effective)?;
//! assert_eq!(name, "805ec0112233.cfg");
//! assert!(text.contains("account.1.user_name = abc\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod generate;
pub mod identify;
pub mod mac;
pub mod model;
pub mod plugins;
pub mod store;
pub mod template;
pub mod tftp;
pub mod tz;

#[cfg(feature = "server")]
pub mod server;

pub use identify::{DeviceInfo, Support};
pub use mac::{Mac, MacError};
pub use model::{Config, ConfigError, ConfigId, Configs, Device, DeviceId, RawConfig};
pub use template::{TemplateError, Templates};

/// Entry points for the fuzz targets in `fuzz/fuzz_targets/provisioning_*.rs`; each
/// takes arbitrary bytes and panics only on a broken invariant.
pub mod fuzzing {
    use crate::identify;
    use crate::mac::Mac;
    use crate::template::{TemplateDir, TemplateError, Templates};
    use crate::tftp::{self, Packet};

    /// A fuzz entry point.
    pub type Target = fn(&[u8]);

    /// Every fuzz target of the crate, by name.
    pub const TARGETS: &[(&str, Target)] = &[
        ("provisioning_user_agent", provisioning_user_agent),
        ("provisioning_template", provisioning_template),
        ("provisioning_tftp_packet", provisioning_tftp_packet),
    ];

    /// At most this many bytes of one input are used, to keep runs fast.
    const MAX_LEN: usize = 4096;

    /// The input, as text, is a `User-Agent`, a file name and a DHCP vendor class:
    /// identification never panics, and every MAC it extracts is valid (it re-parses
    /// from each of its notations, and is not all zeros).
    pub fn provisioning_user_agent(data: &[u8]) {
        let text = String::from_utf8_lossy(data.get(..MAX_LEN).unwrap_or(data));
        let found = [
            identify::from_user_agent(&text),
            identify::from_filename(&text),
            identify::from_dhcp_vendor_class(&text),
        ];
        for info in found.into_iter().flatten() {
            assert!(!info.is_empty());
            if let Some(mac) = info.mac {
                assert_ne!(mac.octets(), [0; 6]);
                assert_eq!(Mac::parse(&mac.to_string()), Ok(mac));
                assert_eq!(Mac::parse(&mac.compact().to_string()), Ok(mac));
                assert_eq!(Mac::parse(&mac.compact_upper().to_string()), Ok(mac));
            }
            for field in [&info.vendor, &info.model, &info.version]
                .into_iter()
                .flatten()
            {
                assert!(!field.is_empty() && text.len() + 16 >= field.len());
            }
        }
        if let Ok(mac) = Mac::parse(&text) {
            assert_eq!(Mac::parse(&mac.to_string()), Ok(mac));
        }
    }

    /// Work allowed to one rendering of [`provisioning_template`].
    const TEMPLATE_FUEL: u64 = 20_000;
    /// Output allowed to one rendering of [`provisioning_template`].
    const TEMPLATE_OUTPUT: usize = 64 * 1024;

    /// The input, as text, is the source of `t.tpl`, rendered with a fixed context
    /// shaped like a raw config, next to a `base.tpl` with blocks and an `inc.tpl` to
    /// extend or include, under fuel and output limits: rendering never panics, and
    /// succeeds within the output limit or fails with a typed error.
    ///
    /// Inputs with an integer literal of six digits or more are skipped: minijinja
    /// bounds each string repetition (to 100 MB) but not repeated concatenation of the
    /// result, so such inputs would measure the machine's memory, not the code.
    pub fn provisioning_template(data: &[u8]) {
        let text = String::from_utf8_lossy(data.get(..MAX_LEN).unwrap_or(data));
        let mut digits = 0;
        for c in text.chars() {
            digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
            if digits >= 6 {
                return;
            }
        }
        let dir = TemplateDir::memory([
            ("t.tpl", text.as_ref()),
            (
                "base.tpl",
                "head {{ ip }}\n{% block body %}base{% endblock %}\n{% block keys %}{% endblock %}",
            ),
            ("inc.tpl", "{{ sip_lines['1'].username|e }}"),
        ]);
        let mut templates = Templates::new([dir]);
        templates.set_fuel(Some(TEMPLATE_FUEL));
        let context = serde_json::json!({
            "ip": "10.0.0.1", "http_port": 8667, "ntp_enabled": true, "vlan_id": null,
            "locale": "fr_FR", "exten_pickup_call": "*8",
            "sip_lines": {
                "1": {"username": "a<b", "password": "p&'\"", "number": "1001"},
                "10": {"username": "ten"},
                "2": {"username": "two", "display_name": "Zoë"},
            },
            "funckeys": {"1": {"type": "blf", "value": "1002", "line": 1, "label": ""}},
            "XX_list": [1, 2.5, "x", [true, false], {"k": "v"}],
        });
        match templates.render_limited("t.tpl", &context, TEMPLATE_OUTPUT) {
            Ok(out) => assert!(out.len() <= TEMPLATE_OUTPUT),
            Err(TemplateError::OutputTooLarge { limit, .. }) => {
                assert_eq!(limit, TEMPLATE_OUTPUT);
            }
            Err(TemplateError::Render { file, .. }) => assert!(!file.is_empty()),
            Err(_) => {}
        }
    }

    /// The input is a TFTP datagram: parsing never panics and never reads past the
    /// end; a packet that parses encodes again, and its encoding parses to the same
    /// packet (unknown options and padding dropped, an invalid UTF-8 error message
    /// replaced); options are in their ranges.
    pub fn provisioning_tftp_packet(data: &[u8]) {
        let Ok(packet) = Packet::parse(data) else {
            return;
        };
        let options = match &packet {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                assert!(!r.filename.is_empty() && !r.filename.contains('\0'));
                Some(r.options)
            }
            Packet::Oack(o) => Some(*o),
            Packet::Data { data: block, .. } => {
                assert_eq!(block.len() + 4, data.len());
                None
            }
            Packet::Ack { .. } => {
                assert_eq!(data.len(), 4);
                None
            }
            Packet::Error { message, .. } => {
                assert!(!message.contains('\0'));
                None
            }
        };
        if let Some(o) = options {
            if let Some(b) = o.blksize {
                assert!((tftp::MIN_BLKSIZE..=tftp::MAX_BLKSIZE).contains(&b));
            }
            assert_ne!(o.timeout, Some(0));
        }
        let bytes = match packet.to_bytes() {
            Ok(bytes) => bytes,
            Err(e) => panic!("a parsed packet does not encode: {e}"),
        };
        // At most: each invalid byte of an error message becomes U+FFFD (3 bytes), and
        // its NUL is added if it was missing.
        assert!(bytes.len() <= 3 * data.len() + 1);
        assert_eq!(Packet::parse(&bytes).as_ref(), Ok(&packet));
    }
}

// The README's example is a doctest too: the crate's page on crates.io stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
