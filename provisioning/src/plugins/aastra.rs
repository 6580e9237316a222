//! Aastra/Mitel 6700i and 6800i (6731i, 6757i, 6865i, 6867i, 6869i...): one
//! `<MAC>.cfg` per phone (upper-case MAC, no separators) of `key: value` lines:
//! `sip lineN ...` per line, `time server1`, a custom time zone (`time zone minutes`
//! and `dst ...`), language files, VLAN tagging, log server, pickup prefix and
//! directory script.
//!
//! Function keys fill each model's keys in order: programmable keys (`prgkeyN`), then
//! top soft keys (`topsoftkeyN`), then soft keys (`softkeyN`); a position beyond the
//! model's keys, or any position on an unknown model, is not written. Each key is
//! `type` (`speeddial`, `blf`, `park`), `value` (`asterisk;<slot>` for park), `label`
//! and `line`. The 6800i series has no BLF on soft keys: they become speeddials.
//! A park key also sets the park pickup of every line to its slot (the first slot
//! when several keys park).
//!
//! The format is line based: line breaks and other control characters in values are
//! written as spaces, so that a value cannot add settings.

use serde_json::Value;

use super::common::{self, Common};
use super::{GeneratedFile, Plugin, PluginError, require_mac};
use crate::identify::{DeviceInfo, Support, SupportRule};
use crate::mac::Mac;
use crate::model::{Device, FuncKeyType, RawConfig};
use crate::template::{Context, TemplateDir, Templates};
use crate::tz::{DstChange, TzInfo};

/// The plugin's `base.tpl`.
pub const BASE_TPL: &str = include_str!("aastra_base.tpl");

/// The keys of a model: programmable keys, top soft keys, soft keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    /// `prgkeyN`.
    pub prgkey: u32,
    /// `topsoftkeyN`.
    pub topsoftkey: u32,
    /// `softkeyN`.
    pub softkey: u32,
}

const fn keys(prgkey: u32, topsoftkey: u32, softkey: u32) -> Keys {
    Keys {
        prgkey,
        topsoftkey,
        softkey,
    }
}

/// The models this plugin supports, with their keys.
pub const MODELS: &[(&str, Keys)] = &[
    ("6730i", keys(8, 0, 0)),
    ("6731i", keys(8, 0, 0)),
    ("6735i", keys(6, 0, 20)),
    ("6737i", keys(0, 10, 20)),
    ("6739i", keys(0, 0, 55)),
    ("6753i", keys(6, 0, 0)),
    ("6755i", keys(6, 0, 20)),
    ("6757i", keys(0, 10, 20)),
    ("6863i", keys(3, 0, 0)),
    ("6865i", keys(8, 0, 0)),
    ("6867i", keys(0, 20, 18)),
    ("6869i", keys(0, 44, 24)),
    ("6873i", keys(0, 48, 24)),
    ("9143i", keys(7, 0, 0)),
    ("9480i", keys(0, 0, 6)),
];

/// The Aastra/Mitel plugin.
#[derive(Debug)]
pub struct Aastra {
    templates: Templates,
}

impl Default for Aastra {
    fn default() -> Self {
        Self::new()
    }
}

impl Aastra {
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

    /// The file name for `mac`: `001122AABBCC.cfg`.
    pub fn filename(mac: Mac) -> String {
        format!("{}.cfg", mac.compact_upper())
    }

    /// Renders the file of the phone `mac` (of `model`, if known): `(name, content)`.
    pub fn render(
        &self,
        mac: Mac,
        model: Option<&str>,
        raw: &RawConfig,
    ) -> Result<(String, String), PluginError> {
        let name = Self::filename(mac);
        let mut c = common::common(raw, "aastra")?;
        c.set("XX_mac", mac.compact_upper().to_string());
        add_vendor_values(&mut c, model);
        let mut ctx = c.ctx;
        one_line_values(&mut ctx);
        let text = self
            .templates
            .render_device_context(&name, model, Context::from_json(&ctx))?;
        Ok((name, text))
    }
}

impl Plugin for Aastra {
    fn name(&self) -> &str {
        "xivo-aastra"
    }

    fn support(&self, device: &DeviceInfo) -> Support {
        let rules: Vec<SupportRule> = MODELS
            .iter()
            .map(|(m, _)| SupportRule::model("Aastra", m))
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

/// Replaces control characters in every string of the context (but the `XX_*`
/// values this plugin formats line by line itself) with spaces.
fn one_line_values(ctx: &mut serde_json::Map<String, Value>) {
    fn clean(value: &mut Value) {
        match value {
            Value::String(s) if s.chars().any(char::is_control) => {
                *s = s
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
            }
            Value::Array(items) => items.iter_mut().for_each(clean),
            Value::Object(map) => map.values_mut().for_each(clean),
            _ => {}
        }
    }
    for (key, value) in ctx.iter_mut() {
        if !matches!(key.as_str(), "XX_fkeys" | "XX_timezone") {
            clean(value);
        }
    }
}

fn single_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn dst_change(out: &mut Vec<String>, which: &str, c: &DstChange) {
    out.push(format!("dst {which} month: {}", c.month));
    out.push(format!("dst {which} hour: {}", c.hour().min(23)));
    let week = if c.is_last() {
        "-1".to_owned()
    } else {
        c.week.to_string()
    };
    out.push(format!("dst {which} week: {week}"));
    out.push(format!("dst {which} day: {}", c.weekday_from_sunday()));
}

fn timezone(tz: &TzInfo) -> String {
    // Aastra counts minutes west of UTC.
    let mut out = vec![
        "time zone name: Custom".to_owned(),
        format!("time zone minutes: {}", -i32::from(tz.utc_offset_minutes)),
    ];
    match &tz.dst {
        None => out.push("dst config: 0".to_owned()),
        Some(dst) => {
            out.push("dst config: 3".to_owned());
            out.push(format!("dst minutes: {}", dst.save_minutes.min(60)));
            out.push("dst [start|end] relative date: 1".to_owned());
            dst_change(&mut out, "start", &dst.start);
            dst_change(&mut out, "end", &dst.end);
        }
    }
    out.join("\n")
}

/// The key name of `position` on a model with `keys`, if it has that many.
fn key_name(keys: Keys, position: u32) -> Option<String> {
    let mut n = position;
    for (name, count) in [
        ("prgkey", keys.prgkey),
        ("topsoftkey", keys.topsoftkey),
        ("softkey", keys.softkey),
    ] {
        if n >= 1 && n <= count {
            return Some(format!("{name}{n}"));
        }
        n = n.checked_sub(count)?;
    }
    None
}

fn add_vendor_values(c: &mut Common, model: Option<&str>) {
    let found = model.and_then(|m| MODELS.iter().find(|(name, _)| name.eq_ignore_ascii_case(m)));
    let series_68 = model.is_some_and(|m| m.starts_with("68"));
    let mut lines = Vec::new();
    let mut park = None;
    for (&position, key) in &c.keys {
        let Some(name) = found.and_then(|(_, keys)| key_name(*keys, position)) else {
            continue;
        };
        let value = single_line(key.value.as_deref().unwrap_or_default());
        let (kind, value) = match key.kind {
            FuncKeyType::Speeddial => ("speeddial", value),
            FuncKeyType::Blf if series_68 && name.starts_with("softkey") => ("speeddial", value),
            FuncKeyType::Blf => ("blf", value),
            FuncKeyType::Park => {
                park.get_or_insert_with(|| value.clone());
                ("park", format!("asterisk;{value}"))
            }
        };
        let label = key
            .label
            .as_deref()
            .map_or_else(|| value.clone(), single_line);
        let line = single_line(key.line.as_deref().unwrap_or("1"));
        lines.push(format!("{name} type: {kind}"));
        lines.push(format!("{name} value: {value}"));
        lines.push(format!("{name} label: {label}"));
        lines.push(format!("{name} line: {line}"));
    }
    c.set("XX_fkeys", lines.join("\n"));
    c.set("XX_park", park.unwrap_or_default());
    c.set(
        "XX_timezone",
        c.tz.as_ref().map(timezone).unwrap_or_default(),
    );
    let (file, tones, input) = match c.lang.as_deref() {
        Some("fr") => ("lang_fr.txt", "France", "French"),
        Some("de") => ("lang_de.txt", "Germany", "German"),
        Some("es") => ("lang_es.txt", "Europe", "Spanish"),
        Some("it") => ("lang_it.txt", "Italy", "Italian"),
        Some("nl") => ("lang_nl_NL.txt", "Europe", "Dutch"),
        _ => ("", "", ""),
    };
    c.set("XX_language_file", file);
    c.set("XX_tone_set", tones);
    c.set("XX_input_language", input);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fill_in_order() {
        let k = keys(2, 3, 1);
        let names: Vec<Option<String>> = (0..=7).map(|p| key_name(k, p)).collect();
        assert_eq!(
            names,
            [
                None,
                Some("prgkey1".into()),
                Some("prgkey2".into()),
                Some("topsoftkey1".into()),
                Some("topsoftkey2".into()),
                Some("topsoftkey3".into()),
                Some("softkey1".into()),
                None
            ]
        );
    }
}
