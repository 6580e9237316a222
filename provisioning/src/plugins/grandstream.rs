//! Grandstream GXP (GXP1600, GXP2100 series): one `cfg<mac>.xml` per phone (lower-case
//! MAC) in the `<gs_provision>` form, each setting a P-value element: `P2` admin
//! password, `P30` NTP server, `P64` time zone (a POSIX `TZ` string), `P1362`
//! language, `P51`/`P87` VLAN, `P207`/`P208` syslog, `P1347` pickup prefix,
//! `P330`/`P331` phonebook.
//!
//! Accounts: account 1 is `P271` (active), `P270` (name), `P47` (server), `P48`
//! (outbound proxy), `P35` (user), `P36` (auth id), `P34` (password), `P3` (display
//! name), `P33` (voicemail); account N from 2 to [`MAX_ACCOUNTS`] uses the same
//! settings numbered `P<N+2>01`... (`P401`, `P417`, `P402`, `P403`, `P404`, `P405`,
//! `P406`, `P407`, `P426`).
//!
//! Function keys are multi-purpose keys 1 to [`MAX_MPK`]: mode `P<322+N>` (0
//! speeddial, 1 BLF, 9 call park), account `P3<3N-2>` (0-based), name `P3<3N-1>` and
//! value `P3<3N>`; the codes of key 8 would overlap those of key 1.
//!
//! # What does not fit the phone
//!
//! A config may have more lines or keys than the phone: they are left out of the file
//! (the rest of the phone's configuration still applies), by these rules.
//!
//! - Lines: line N is written as account N when 1 ≤ N ≤ [`max_accounts`] of the
//!   model (its number of SIP accounts, at most [`MAX_ACCOUNTS`]; [`MAX_ACCOUNTS`]
//!   for a model not known); other lines are not.
//! - Function keys: a key is written when its position is 1 to [`MAX_MPK`] and its
//!   line (line 1 when it names none) is a line written as an account; other keys are
//!   not, as they would name a key or an account that the phone does not have.

use serde_json::Value;

use super::common::{self, Common};
use super::{GeneratedFile, Plugin, PluginError, require_mac};
use crate::identify::{DeviceInfo, Support, SupportRule};
use crate::mac::Mac;
use crate::model::{Device, FuncKeyType, RawConfig};
use crate::template::{Context, TemplateDir, Templates};

/// The plugin's `base.tpl`.
pub const BASE_TPL: &str = include_str!("grandstream_base.tpl");

/// The models this plugin supports.
pub const MODELS: &[&str] = &[
    "GXP1610", "GXP1615", "GXP1620", "GXP1625", "GXP1628", "GXP1630", "GXP2130", "GXP2135",
    "GXP2140", "GXP2160", "GXP2170",
];

/// The highest account written: the P-value numbering of accounts above 6 differs.
pub const MAX_ACCOUNTS: u32 = 6;
/// The highest multi-purpose key written.
pub const MAX_MPK: u32 = 7;

/// The number of accounts written for `model`: its number of SIP accounts, at most
/// [`MAX_ACCOUNTS`]; [`MAX_ACCOUNTS`] when the model is not known.
///
/// ```
/// use pbxkit_provisioning::plugins::grandstream::{max_accounts, MAX_ACCOUNTS};
/// assert_eq!(max_accounts(Some("GXP1610")), 1);
/// assert_eq!(max_accounts(Some("GXP2170")), 6);
/// assert_eq!(max_accounts(None), MAX_ACCOUNTS);
/// ```
pub fn max_accounts(model: Option<&str>) -> u32 {
    let accounts = match model {
        Some("GXP1610" | "GXP1615") => 1,
        Some("GXP1620" | "GXP1625" | "GXP1628") => 2,
        Some("GXP1630" | "GXP2130") => 3,
        Some("GXP2135" | "GXP2140") => 4,
        Some("GXP2160" | "GXP2170") => 6,
        _ => MAX_ACCOUNTS,
    };
    accounts.min(MAX_ACCOUNTS)
}

/// The Grandstream GXP plugin.
#[derive(Debug)]
pub struct Grandstream {
    templates: Templates,
}

impl Default for Grandstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Grandstream {
    /// The plugin with its own templates only.
    pub fn new() -> Self {
        Self::with_user_templates(None)
    }

    /// The plugin with a user template directory looked up before its own templates.
    pub fn with_user_templates(user: Option<TemplateDir>) -> Self {
        Self {
            templates: common::templates(user, BASE_TPL),
        }
    }

    /// The file name for `mac`: `cfg001122aabbcc.xml`.
    pub fn filename(mac: Mac) -> String {
        format!("cfg{}.xml", mac.compact())
    }

    /// Renders the file of the phone `mac` (of `model`, if known): `(name, content)`.
    pub fn render(
        &self,
        mac: Mac,
        model: Option<&str>,
        raw: &RawConfig,
    ) -> Result<(String, String), PluginError> {
        let name = Self::filename(mac);
        let mut c = common::common(raw, "grandstream")?;
        c.set("XX_mac", mac.compact().to_string());
        add_vendor_values(&mut c, raw, max_accounts(model));
        let text =
            self.templates
                .render_device_context(&name, model, Context::from_json(&c.ctx))?;
        Ok((name, text))
    }
}

impl Plugin for Grandstream {
    fn name(&self) -> &str {
        "xivo-grandstream"
    }

    fn support(&self, device: &DeviceInfo) -> Support {
        let rules: Vec<SupportRule> = MODELS
            .iter()
            .map(|m| SupportRule::model("Grandstream", m))
            .collect();
        crate::identify::support(&rules, device)
    }

    fn configure(
        &self,
        device: &Device,
        raw: &RawConfig,
    ) -> Result<Vec<GeneratedFile>, PluginError> {
        let mac = require_mac(self.name(), device)?;
        let (name, text) = self.render(mac, device.model.as_deref(), raw)?;
        Ok(vec![GeneratedFile::new(name, text)])
    }
}

fn pair(code: impl Into<String>, value: impl Into<Value>) -> Value {
    Value::from(vec![Value::from(code.into()), value.into()])
}

/// Adds the Grandstream values, for a phone with `accounts` accounts.
fn add_vendor_values(c: &mut Common, raw: &RawConfig, accounts: u32) {
    let written = |no: u32| (1..=accounts).contains(&no);
    let mut values = Vec::new();
    for line in c.lines.iter().filter(|l| written(l.no)) {
        // Account 1 has historical codes; the others follow one numbering.
        let codes: [(String, &str); 9] = if line.no == 1 {
            [
                ("P271".into(), "1"),
                ("P270".into(), &line.number),
                ("P47".into(), &line.registrar_ip),
                ("P48".into(), &line.proxy_ip),
                ("P35".into(), &line.username),
                ("P36".into(), &line.auth_username),
                ("P34".into(), &line.password),
                ("P3".into(), &line.display_name),
                ("P33".into(), &line.voicemail),
            ]
        } else {
            let base = line.no + 2;
            [
                (format!("P{base}01"), "1"),
                (format!("P{base}17"), &line.number),
                (format!("P{base}02"), &line.registrar_ip),
                (format!("P{base}03"), &line.proxy_ip),
                (format!("P{base}04"), &line.username),
                (format!("P{base}05"), &line.auth_username),
                (format!("P{base}06"), &line.password),
                (format!("P{base}07"), &line.display_name),
                (format!("P{base}26"), &line.voicemail),
            ]
        };
        values.extend(codes.into_iter().map(|(code, v)| pair(code, v)));
    }
    c.set("XX_line_values", values);

    let mut keys = Vec::new();
    for (&n, key) in c.keys.range(1..=MAX_MPK) {
        let line = match key.line.as_deref() {
            None => Some(1),
            Some(line) => line.parse::<u32>().ok(),
        };
        let Some(line) = line.filter(|&no| written(no) && c.has_line(no)) else {
            continue;
        };
        let mode = match key.kind {
            FuncKeyType::Speeddial => 0,
            FuncKeyType::Blf => 1,
            FuncKeyType::Park => 9,
        };
        // Grandstream numbers accounts from 0.
        let account = line - 1;
        let value = key.value.as_deref().unwrap_or_default();
        keys.push(pair(format!("P{}", 322 + n), mode));
        keys.push(pair(format!("P3{:02}", 3 * n - 2), account));
        keys.push(pair(
            format!("P3{:02}", 3 * n - 1),
            key.label.as_deref().unwrap_or(value),
        ));
        keys.push(pair(format!("P3{:02}", 3 * n), value));
    }
    c.set("XX_fkeys", keys);
    c.set(
        "XX_timezone",
        c.tz.as_ref().map(|tz| tz.posix()).unwrap_or_default(),
    );
    let language = match c.lang.as_deref() {
        Some(l @ ("fr" | "de" | "es" | "it" | "nl" | "en")) => l.to_owned(),
        _ => String::new(),
    };
    c.set("XX_language", language);
    // Grandstream levels: 1 debug, 2 info, 3 warning, 4 error.
    let level = match raw.str("syslog_level") {
        Some("debug") => 1,
        Some("warning") => 3,
        Some("error" | "critical") => 4,
        _ => 2,
    };
    c.set("XX_syslog_level", level);
}
