//! Snom D7xx (D712, D715, D717, D725, D735, D745, D765, D785...): one `<MAC>.xml` per
//! phone (upper-case MAC, no separators), a `<settings>` document with
//! `<phone-settings>` (identities `user_*` indexed by line, NTP, `utc_offset`/`dst`,
//! language and tone scheme, VLAN, syslog, directory key) and `<functionKeys>`.
//!
//! Function keys: `fkey idx` is the position minus one; speeddial is `speed <number>`,
//! BLF `blf <sip:<number>@<proxy>>|<pickup code>` (the code after `|` picks up a
//! ringing call), park `orbit <slot>` on models that know park orbits (D765 and the
//! 7xx series) and `speed <slot>` elsewhere. `context` is the key's line, `active`
//! when it names none.

use super::common::{self, Common};
use super::{GeneratedFile, Plugin, PluginError, require_mac};
use crate::identify::{DeviceInfo, Support, SupportRule};
use crate::mac::Mac;
use crate::model::{Device, FuncKeyType, RawConfig};
use crate::template::{Context, TemplateDir, Templates, escape_str};
use crate::tz::{DstChange, TzInfo};

/// The plugin's `base.tpl`.
pub const BASE_TPL: &str = include_str!("snom_base.tpl");

/// The models this plugin supports.
pub const MODELS: &[&str] = &[
    "710", "715", "720", "725", "760", "D710", "D712", "D715", "D717", "D725", "D735", "D745",
    "D765", "D785",
];

/// Models whose park keys are `orbit` keys.
const ORBIT_MODELS: &[&str] = &["710", "715", "720", "725", "760", "D765"];

/// The Snom D7xx plugin.
#[derive(Debug)]
pub struct Snom {
    templates: Templates,
}

impl Default for Snom {
    fn default() -> Self {
        Self::new()
    }
}

impl Snom {
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

    /// The file name for `mac`: `001122AABBCC.xml`.
    pub fn filename(mac: Mac) -> String {
        format!("{}.xml", mac.compact_upper())
    }

    /// Renders the file of the phone `mac` (of `model`, if known): `(name, content)`.
    pub fn render(
        &self,
        mac: Mac,
        model: Option<&str>,
        raw: &RawConfig,
    ) -> Result<(String, String), PluginError> {
        let name = Self::filename(mac);
        let mut c = common::common(raw, "snom")?;
        c.set("XX_mac", mac.compact_upper().to_string());
        add_vendor_values(&mut c, raw, model);
        let text =
            self.templates
                .render_device_context(&name, model, Context::from_json(&c.ctx))?;
        Ok((name, text))
    }
}

impl Plugin for Snom {
    fn name(&self) -> &str {
        "xivo-snom"
    }

    fn support(&self, device: &DeviceInfo) -> Support {
        let rules: Vec<SupportRule> = MODELS
            .iter()
            .map(|m| SupportRule::model("Snom", m))
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

/// Snom's `MM.WW.DD HH:MM:SS` (week 5 is the last, day 1 is Monday).
fn dst_change(c: &DstChange) -> String {
    format!(
        "{:02}.{:02}.{:02} {}",
        c.month,
        c.week,
        c.weekday_from_monday(),
        c.hms()
    )
}

fn timezone(tz: &TzInfo) -> String {
    let dst = match &tz.dst {
        Some(d) => format!(
            "{} {} {}",
            u32::from(d.save_minutes) * 60,
            dst_change(&d.start),
            dst_change(&d.end)
        ),
        None => String::new(),
    };
    format!(
        "<utc_offset perm=\"R\">{}</utc_offset>\n<dst perm=\"R\">{dst}</dst>",
        tz.utc_offset_seconds()
    )
}

fn add_vendor_values(c: &mut Common, raw: &RawConfig, model: Option<&str>) {
    let pickup = raw.str("exten_pickup_call");
    let orbit = model.is_some_and(|m| ORBIT_MODELS.iter().any(|o| o.eq_ignore_ascii_case(m)));
    let mut keys = Vec::new();
    for (position, key) in &c.keys {
        let value = key.value.as_deref().unwrap_or_default();
        let line = key.line.as_deref();
        let function = match key.kind {
            FuncKeyType::Speeddial => format!("speed {value}"),
            FuncKeyType::Park if orbit => format!("orbit {value}"),
            FuncKeyType::Park => format!("speed {value}"),
            FuncKeyType::Blf => {
                let line_no = line.and_then(|l| l.parse::<u32>().ok()).unwrap_or(1);
                let proxy = c
                    .lines
                    .iter()
                    .find(|l| l.no == line_no)
                    .or(c.lines.first())
                    .map(|l| l.proxy_ip.as_str())
                    .filter(|p| !p.is_empty());
                let target = match proxy {
                    Some(proxy) => format!("<sip:{value}@{proxy}>"),
                    None => value.to_owned(),
                };
                match pickup {
                    Some(code) => format!("blf {target}|{code}"),
                    None => format!("blf {target}"),
                }
            }
        };
        let label = escape_str(key.label.as_deref().unwrap_or(value));
        keys.push(format!(
            "<fkey idx=\"{}\" context=\"{}\" label=\"{label}\" perm=\"R\">{}</fkey>",
            position.saturating_sub(1),
            escape_str(line.unwrap_or("active")),
            escape_str(&function)
        ));
    }
    c.set("XX_fkeys", keys.join("\n"));
    c.set(
        "XX_timezone",
        c.tz.as_ref().map(timezone).unwrap_or_default(),
    );
    let (language, tones) = match c.lang.as_deref() {
        Some("fr") => ("Français", "FRA"),
        Some("de") => ("Deutsch", "GER"),
        Some("es") => ("Espanol", "ESP"),
        Some("it") => ("Italiano", "ITA"),
        Some("nl") => ("Nederlands", "NLD"),
        Some("en") => ("English", "USA"),
        _ => ("", ""),
    };
    c.set("XX_language", language);
    c.set("XX_tone_scheme", tones);
}
