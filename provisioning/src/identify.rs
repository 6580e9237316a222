//! Device identification: vendor, model, firmware version and MAC address from what a
//! phone sends (HTTP `User-Agent`, requested file names, DHCP option 60), and the choice
//! of the plugin that supports a device best.
//!
//! Every extractor takes untrusted text and never panics; a MAC it returns is always a
//! valid [`Mac`] (a malformed or all-zero address is dropped, the rest of the
//! information kept).

use std::sync::LazyLock;

use regex::Regex;

use crate::mac::Mac;

/// What identification learnt about a device; every field may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// Vendor, in provd's spelling (`Yealink`, `Snom`, `Polycom`, `Aastra`, `Cisco`,
    /// `Grandstream`, `Digium`).
    pub vendor: Option<String>,
    /// Model (`T46S`, `D785`, `VVX400`, `6867i`, `SPA504G`, `GXP2170`, `D40`).
    pub model: Option<String>,
    /// Firmware version.
    pub version: Option<String>,
    /// MAC address.
    pub mac: Option<Mac>,
}

impl DeviceInfo {
    fn new(vendor: &str, model: Option<&str>, version: Option<&str>, mac: Option<&str>) -> Self {
        Self {
            vendor: Some(vendor.to_owned()),
            model: model.filter(|m| !m.is_empty()).map(str::to_owned),
            version: version.filter(|v| !v.is_empty()).map(str::to_owned),
            mac: mac.and_then(valid_mac),
        }
    }

    /// Whether nothing was learnt.
    pub fn is_empty(&self) -> bool {
        self.vendor.is_none()
            && self.model.is_none()
            && self.version.is_none()
            && self.mac.is_none()
    }

    /// Fills the fields missing in `self` from `other` (information from several
    /// requests of the same phone).
    pub fn merge(&mut self, other: DeviceInfo) {
        self.vendor = self.vendor.take().or(other.vendor);
        self.model = self.model.take().or(other.model);
        self.version = self.version.take().or(other.version);
        self.mac = self.mac.or(other.mac);
    }
}

/// A MAC from text, dropping all-zero placeholders (`000000000000`).
fn valid_mac(text: &str) -> Option<Mac> {
    Mac::parse(text).ok().filter(|m| m.octets() != [0; 6])
}

/// Capture group `i` of `c`, if it matched.
fn group<'h>(c: &regex::Captures<'h>, i: usize) -> Option<&'h str> {
    c.get(i).map(|m| m.as_str())
}

/// Compiles a regex of this module: every pattern is a literal, checked by the tests.
fn re(pattern: &str) -> Regex {
    #[expect(
        clippy::expect_used,
        reason = "literal patterns, each compiled by the tests"
    )]
    Regex::new(pattern).expect("valid literal regex")
}

static YEALINK_UA: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^yealink\s+(?:sip[\s-]+)?(?:vp-)?([\w-]+)\s+([\d.]+)(?:\s+([0-9a-f]{2}(?::[0-9a-f]{2}){5}))?",
    )
});
static SNOM_UA: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\bsnom(\w+)-SIP\s+([\d.]+)(?:.*?\b([0-9a-f]{12})\b)?"));
static POLYCOM_UA: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\bPolycom\w*-([A-Za-z]+)_?(\w*?)-UA/([\d.]+)(?:.*?\(SN:([0-9a-f]{12})\))?")
});
static AASTRA_UA: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^(?:Aastra|Mitel)(\w+)\s+MAC:([0-9a-f]{2}(?:-[0-9a-f]{2}){5})\s+V:([\d.]+)-SIP")
});
static CISCO_SPA_UA: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^(?:Cisco|Linksys)/((?:SPA|ATA|WRP)\w+)-([^\s(]+)(?:\s*\(([0-9a-z]+)\))?")
});
static GRANDSTREAM_UA: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^Grandstream\s+Model\s+HW\s+(\w+)(?:\s+V[\w.]+)?\s+SW\s+([\d.]+)(?:.*?\bDevId\s+([0-9a-f]{12}))?",
    )
});

/// Identifies a device from its HTTP `User-Agent`; `None` for an unknown vendor.
///
/// ```
/// use pbxkit_provisioning::identify::from_user_agent;
/// let info = from_user_agent("Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33").unwrap_or_default();
/// assert_eq!(info.vendor.as_deref(), Some("Yealink"));
/// assert_eq!(info.model.as_deref(), Some("T46S"));
/// assert_eq!(info.version.as_deref(), Some("66.84.0.15"));
/// assert_eq!(info.mac.map(|m| m.to_string()).as_deref(), Some("80:5e:c0:11:22:33"));
/// ```
pub fn from_user_agent(ua: &str) -> Option<DeviceInfo> {
    let ua = ua.trim();
    if let Some(c) = YEALINK_UA.captures(ua) {
        return Some(DeviceInfo::new(
            "Yealink",
            group(&c, 1),
            group(&c, 2),
            group(&c, 3),
        ));
    }
    if let Some(c) = AASTRA_UA.captures(ua) {
        return Some(DeviceInfo::new(
            "Aastra",
            group(&c, 1),
            group(&c, 3),
            group(&c, 2),
        ));
    }
    if let Some(c) = GRANDSTREAM_UA.captures(ua) {
        return Some(DeviceInfo::new(
            "Grandstream",
            group(&c, 1),
            group(&c, 2),
            group(&c, 3),
        ));
    }
    if let Some(c) = CISCO_SPA_UA.captures(ua) {
        // A Linksys serial number (`4MM00F602447`) is not a MAC: `valid_mac` drops it.
        return Some(DeviceInfo::new(
            "Cisco",
            group(&c, 1),
            group(&c, 2),
            group(&c, 3),
        ));
    }
    if let Some(c) = POLYCOM_UA.captures(ua) {
        let model = format!(
            "{}{}",
            group(&c, 1).unwrap_or(""),
            group(&c, 2).unwrap_or("")
        );
        return Some(DeviceInfo::new(
            "Polycom",
            Some(&model),
            group(&c, 3),
            group(&c, 4),
        ));
    }
    if let Some(c) = SNOM_UA.captures(ua) {
        return Some(DeviceInfo::new(
            "Snom",
            group(&c, 1),
            group(&c, 2),
            group(&c, 3),
        ));
    }
    None
}

static SEP_FILE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^SEP([0-9a-f]{12})\.cnf\.xml(?:\.sgn)?$"));
static SIP_FILE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^SIP([0-9a-f]{12})\.cnf$"));
static SPA_FILE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^spa([0-9a-f]{12})\.xml$"));
static SNOM_FILE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^snom(\w+?)-([0-9a-f]{12})\.htm$"));
static MAC_FILE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^([0-9a-f]{12})(?:-phone)?\.(?:cfg|xml|boot)$"));

/// Identifies a device from the name of a file it requests over TFTP or HTTP (leading
/// directories are ignored): Cisco `SEP<MAC>.cnf.xml` and `SIP<MAC>.cnf`, Cisco SPA
/// `spa<mac>.xml`, Snom `snom<model>-<MAC>.htm`, and the `<mac>.cfg` of Yealink,
/// Polycom and Aastra (which gives the MAC only).
///
/// ```
/// use pbxkit_provisioning::identify::from_filename;
/// let info = from_filename("/SEP001122AABBCC.cnf.xml").unwrap_or_default();
/// assert_eq!(info.vendor.as_deref(), Some("Cisco"));
/// assert_eq!(info.mac.map(|m| m.to_string()).as_deref(), Some("00:11:22:aa:bb:cc"));
/// ```
pub fn from_filename(path: &str) -> Option<DeviceInfo> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let info = if let Some(c) = SEP_FILE.captures(name).or_else(|| SIP_FILE.captures(name)) {
        DeviceInfo::new("Cisco", None, None, group(&c, 1))
    } else if let Some(c) = SPA_FILE.captures(name) {
        DeviceInfo::new("Cisco", None, None, group(&c, 1))
    } else if let Some(c) = SNOM_FILE.captures(name) {
        DeviceInfo::new("Snom", group(&c, 1), None, group(&c, 2))
    } else if let Some(c) = MAC_FILE.captures(name) {
        DeviceInfo {
            mac: group(&c, 1).and_then(valid_mac),
            ..DeviceInfo::default()
        }
    } else {
        return None;
    };
    // A file named after the all-zero MAC tells nothing of the device.
    (!info.is_empty() && (info.mac.is_some() || info.model.is_some())).then_some(info)
}

static DIGIUM_VCI: LazyLock<Regex> = LazyLock::new(|| re(r"^digium_(D\d\d)_([\d_]+)$"));
static AASTRA_VCI: LazyLock<Regex> = LazyLock::new(|| re(r"^AastraIPPhone(\w+)$"));
static SNOM_VCI: LazyLock<Regex> = LazyLock::new(|| re(r"^snom(\w+)$"));
static POLYCOM_VCI: LazyLock<Regex> = LazyLock::new(|| re(r"^Polycom-(\w+)$"));
static GRANDSTREAM_VCI: LazyLock<Regex> = LazyLock::new(|| re(r"^Grandstream\s+(\w+)\b"));
static CISCO_VCI: LazyLock<Regex> =
    LazyLock::new(|| re(r"^Cisco Systems, Inc\. IP Phone CP-(\w+)$"));

/// Identifies a device from its DHCP vendor class identifier (option 60):
/// `digium_D40_1_1_0_0_48178`, `AastraIPPhone6867i`, `snomD785`, `Polycom-VVX400`,
/// `Grandstream GXP2170 dslforum.org`, `Cisco Systems, Inc. IP Phone CP-7940G`, and
/// any class starting with `yealink` (vendor only).
///
/// ```
/// use pbxkit_provisioning::identify::from_dhcp_vendor_class;
/// let info = from_dhcp_vendor_class("digium_D40_1_1_0_0_48178").unwrap_or_default();
/// assert_eq!(info.model.as_deref(), Some("D40"));
/// assert_eq!(info.version.as_deref(), Some("1.1.0.0.48178"));
/// ```
pub fn from_dhcp_vendor_class(vci: &str) -> Option<DeviceInfo> {
    let vci = vci.trim();
    if let Some(c) = DIGIUM_VCI.captures(vci) {
        let version = group(&c, 2).map(|v| v.replace('_', "."));
        return Some(DeviceInfo::new(
            "Digium",
            group(&c, 1),
            version.as_deref(),
            None,
        ));
    }
    let table: [(&LazyLock<Regex>, &str); 5] = [
        (&AASTRA_VCI, "Aastra"),
        (&SNOM_VCI, "Snom"),
        (&POLYCOM_VCI, "Polycom"),
        (&GRANDSTREAM_VCI, "Grandstream"),
        (&CISCO_VCI, "Cisco"),
    ];
    for (regex, vendor) in table {
        if let Some(c) = regex.captures(vci) {
            return Some(DeviceInfo::new(vendor, group(&c, 1), None, None));
        }
    }
    let lower = vci.get(..7).map(str::to_ascii_lowercase);
    (lower.as_deref() == Some("yealink")).then(|| DeviceInfo::new("Yealink", None, None, None))
}

/// How well a plugin supports a device, from worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum Support {
    /// Not at all.
    #[default]
    None,
    /// The vendor is right; the model is unknown or not listed.
    Probable,
    /// The vendor and model are supported.
    Complete,
    /// The vendor, model and firmware version are known to work.
    Exact,
}

/// A family of devices a plugin supports: a vendor, optionally a model and a firmware
/// version (matched exactly; vendor and model without regard to case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportRule {
    /// Vendor, as [`DeviceInfo::vendor`].
    pub vendor: String,
    /// Model, if the rule is for one model.
    pub model: Option<String>,
    /// Firmware version, if the rule is for one version of the model.
    pub version: Option<String>,
}

impl SupportRule {
    /// A rule for `model` of `vendor` in any version.
    pub fn model(vendor: &str, model: &str) -> Self {
        Self {
            vendor: vendor.to_owned(),
            model: Some(model.to_owned()),
            version: None,
        }
    }

    /// A rule for `model` of `vendor` in `version`.
    pub fn exact(vendor: &str, model: &str, version: &str) -> Self {
        Self {
            version: Some(version.to_owned()),
            ..Self::model(vendor, model)
        }
    }

    /// How well this rule covers `device`.
    pub fn support(&self, device: &DeviceInfo) -> Support {
        let eq =
            |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
        if !eq(&device.vendor, &self.vendor) {
            return Support::None;
        }
        let Some(model) = &self.model else {
            return Support::Probable;
        };
        if !eq(&device.model, model) {
            return Support::Probable;
        }
        match &self.version {
            Some(version) if device.version.as_deref() == Some(version.as_str()) => Support::Exact,
            _ => Support::Complete,
        }
    }
}

/// The best support any of `rules` gives `device`.
pub fn support(rules: &[SupportRule], device: &DeviceInfo) -> Support {
    rules
        .iter()
        .map(|r| r.support(device))
        .max()
        .unwrap_or(Support::None)
}

/// The plugin to use among `(name, support)` pairs: the best support above
/// [`Support::None`], ties going to the highest name (so `xivo-yealink-v84` wins over
/// `xivo-yealink-v83`).
///
/// ```
/// use pbxkit_provisioning::identify::{select_plugin, Support};
/// let scores = [("yealink-v83", Support::Complete), ("yealink-v84", Support::Complete), ("snom", Support::None)];
/// assert_eq!(select_plugin(scores), Some("yealink-v84"));
/// ```
pub fn select_plugin<'a>(scores: impl IntoIterator<Item = (&'a str, Support)>) -> Option<&'a str> {
    scores
        .into_iter()
        .filter(|(_, s)| *s > Support::None)
        .max_by(|(a, sa), (b, sb)| sa.cmp(sb).then_with(|| a.cmp(b)))
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_regex_compiles() {
        for regex in [
            &YEALINK_UA,
            &SNOM_UA,
            &POLYCOM_UA,
            &AASTRA_UA,
            &CISCO_SPA_UA,
            &GRANDSTREAM_UA,
            &SEP_FILE,
            &SIP_FILE,
            &SPA_FILE,
            &SNOM_FILE,
            &MAC_FILE,
            &DIGIUM_VCI,
            &AASTRA_VCI,
            &SNOM_VCI,
            &POLYCOM_VCI,
            &GRANDSTREAM_VCI,
            &CISCO_VCI,
        ] {
            assert!(!regex.as_str().is_empty());
        }
    }

    #[test]
    fn support_ordering() {
        assert!(Support::None < Support::Probable);
        assert!(Support::Probable < Support::Complete);
        assert!(Support::Complete < Support::Exact);
        let dev =
            from_user_agent("Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33").unwrap_or_default();
        let rules = [
            SupportRule::model("Yealink", "T48S"),
            SupportRule::exact("yealink", "t46s", "66.84.0.15"),
        ];
        assert_eq!(support(&rules, &dev), Support::Exact);
        assert_eq!(support(&rules[..1], &dev), Support::Probable);
        assert_eq!(support(&[], &dev), Support::None);
        assert_eq!(select_plugin([("a", Support::None)]), None);
        assert_eq!(
            select_plugin([
                ("b", Support::Probable),
                ("a", Support::Exact),
                ("c", Support::Probable)
            ]),
            Some("a")
        );
    }
}
