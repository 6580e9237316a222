//! Yealink T4x (T41S, T42S, T46S, T48S, T53, T54W...): one `<mac>.cfg` per phone, in
//! Yealink's `key = value` format, unset values written `%NULL%` so that the phone
//! resets them.
//!
//! As in provd's `xivo-yealink` plugin, the plugin computes `XX_*` values (resolved
//! lines, function keys) and adds them to the raw config before rendering `base.tpl`
//! (or `<model>.tpl`, or `<mac>.cfg.tpl`) from the user's templates then its own.
//! Function key type codes: speeddial 13, blf 16, park 10; a key position left free
//! below the highest configured one is written as type 0 with `%NULL%` values.
//! Positions above [`MAX_LINEKEY`] are not written: no T4x/T5x has that many line keys,
//! and a config naming position 4,000,000,000 must not make the PBX write billions of
//! lines.

use std::collections::BTreeMap;

use minijinja::Value;

use crate::identify::SupportRule;
use crate::mac::Mac;
use crate::model::{FuncKey, FuncKeyType, RawConfig, RawConfigError};
use crate::template::{Context, TemplateDir, TemplateError, Templates, map_value};

/// The value Yealink firmware reads as "unset".
pub const NULL: &str = "%NULL%";

/// The plugin's `base.tpl`.
pub const BASE_TPL: &str = include_str!("yealink_base.tpl");

/// The models this plugin supports.
pub const MODELS: &[&str] = &[
    "T41P", "T41S", "T42G", "T42S", "T46G", "T46S", "T48G", "T48S", "T53", "T53W", "T54W", "T57W",
];

/// Support rules for [`crate::identify::support`].
pub fn support_rules() -> Vec<SupportRule> {
    MODELS
        .iter()
        .map(|m| SupportRule::model("Yealink", m))
        .collect()
}

/// Why a Yealink file cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum YealinkError {
    /// A raw config key has the wrong shape.
    #[error(transparent)]
    RawConfig(#[from] RawConfigError),
    /// A template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The Yealink T4x plugin.
#[derive(Debug)]
pub struct Yealink {
    templates: Templates,
}

impl Default for Yealink {
    fn default() -> Self {
        Self::new()
    }
}

impl Yealink {
    /// The plugin with its own templates only.
    pub fn new() -> Self {
        Self::with_user_templates(None)
    }

    /// The plugin with a user template directory looked up before its own templates.
    pub fn with_user_templates(user: Option<TemplateDir>) -> Self {
        let own = TemplateDir::memory([("base.tpl", BASE_TPL)]);
        Self {
            templates: Templates::new(user.into_iter().chain([own])),
        }
    }

    /// The file name for `mac`: `001122aabbcc.cfg`.
    pub fn filename(mac: Mac) -> String {
        format!("{}.cfg", mac.compact())
    }

    /// Renders the file of the phone `mac` (of `model`, if known) from its effective
    /// raw config: `(file name, content)`.
    pub fn render(
        &self,
        mac: Mac,
        model: Option<&str>,
        raw: &RawConfig,
    ) -> Result<(String, String), YealinkError> {
        let name = Self::filename(mac);
        let context = context(mac, raw)?;
        let text = self
            .templates
            .render_device_context(&name, model, context)?;
        Ok((name, text))
    }
}

/// `value`, or [`NULL`] when it is missing or empty.
fn non_empty_or_null(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or(NULL)
}

/// [`non_empty_or_null`] as a template value.
fn or_null(value: Option<&str>) -> Value {
    Value::from(non_empty_or_null(value))
}

fn language(locale: Option<&str>) -> &'static str {
    match locale.and_then(|l| l.get(..2)) {
        Some("fr") => "French",
        Some("de") => "German",
        Some("es") => "Spanish",
        Some("it") => "Italian",
        Some("nl") => "Dutch",
        Some("en") => "English",
        _ => NULL,
    }
}

/// The raw config plus the plugin's `XX_*` values.
fn context(mac: Mac, raw: &RawConfig) -> Result<Context, RawConfigError> {
    let lines = raw.sip_line_refs()?;
    let proxy = raw.sip_proxy_ip();
    let registrar = raw.sip_registrar_ip();
    // provd's `sip_registrar_port` (else `sip_proxy_port`): written only when set,
    // the phone's 5060 otherwise.
    let port = ["sip_registrar_port", "sip_proxy_port"]
        .iter()
        .find_map(|key| raw.get(key).and_then(serde_json::Value::as_u64))
        .filter(|p| (1..=65_535).contains(p))
        .map_or(Value::from(()), Value::from);
    let xx_lines: Value = lines
        .iter()
        .map(|(no, line)| {
            let line_proxy = line.proxy_ip.or(proxy);
            map_value([
                ("no", Value::from(*no)),
                ("label", or_null(line.number)),
                ("display_name", or_null(line.display_name)),
                ("auth_name", or_null(line.auth_username.or(line.username))),
                ("user_name", or_null(line.username)),
                ("password", or_null(line.password)),
                (
                    "server",
                    or_null(line.registrar_ip.or(registrar).or(line_proxy)),
                ),
                ("outbound_proxy", or_null(line_proxy)),
                ("port", port.clone()),
                ("voicemail", or_null(line.voicemail)),
            ])
        })
        .collect();
    let fkeys = funckey_settings(raw, &raw.funckeys()?);
    let ntp = raw.ntp()?;
    let ntp_ip = ntp.filter(|n| n.enabled).and_then(|n| n.ip);
    let mut ctx = Context::from_json(&raw.0);
    ctx.set("XX_mac", mac.compact().to_string());
    ctx.set("XX_lines", xx_lines);
    ctx.set("XX_fkeys", fkeys);
    ctx.set("XX_ntp_ip", or_null(ntp_ip.as_deref()));
    ctx.set("XX_lang", language(raw.locale()));
    ctx.set(
        "XX_admin_password",
        raw.str("admin_password").unwrap_or("9486"),
    );
    ctx.set("XX_dnd", or_null(raw.str("exten_dnd")));
    Ok(ctx)
}

/// The highest line key position written (the T57W has 29, over pages).
pub const MAX_LINEKEY: u32 = 100;

/// The `linekey.<position>.*` settings of the function keys `keys`, one a line, for
/// every position up to the highest configured one (at most [`MAX_LINEKEY`]).
fn funckey_settings(raw: &RawConfig, keys: &BTreeMap<u32, FuncKey>) -> String {
    let last = keys
        .range(..=MAX_LINEKEY)
        .next_back()
        .map_or(0, |(position, _)| *position);
    // About 150 bytes a key; built with `push_str` rather than `format!`, as this runs
    // for every device of a (re)configure-all.
    let mut out = String::with_capacity(keys.len() * 160);
    for position in 1..=last {
        let (code, line, value, label, extension) = match keys.get(&position) {
            // A free position below the last key is cleared, so that the phone drops
            // a key it had there from an earlier configuration.
            None => ("0", NULL, NULL, NULL, NULL),
            Some(key) => {
                let value = non_empty_or_null(key.value.as_deref());
                let (code, extension) = match key.kind {
                    FuncKeyType::Speeddial => ("13", NULL),
                    FuncKeyType::Blf => ("16", non_empty_or_null(raw.str("exten_pickup_call"))),
                    FuncKeyType::Park => ("10", value),
                };
                let line = key.line.as_deref().unwrap_or("1");
                (
                    code,
                    line,
                    value,
                    key.label.as_deref().unwrap_or(""),
                    extension,
                )
            }
        };
        let position = position.to_string();
        for (field, setting) in [
            ("type", code),
            ("line", line),
            ("value", value),
            ("label", label),
            ("extension", extension),
        ] {
            if !out.is_empty() {
                out.push('\n');
            }
            for part in ["linekey.", &position, ".", field, " = ", setting] {
                out.push_str(part);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_positions_past_the_last_line_key_are_not_written() {
        let serde_json::Value::Object(map) = serde_json::json!({
            "funckeys": {
                "2": {"type": "speeddial", "value": "1002"},
                "4000000000": {"type": "speeddial", "value": "1003"}
            }
        }) else {
            unreachable!()
        };
        let raw = RawConfig(map);
        let keys = raw.funckeys().unwrap();
        let out = funckey_settings(&raw, &keys);
        assert!(out.contains("linekey.2.value = 1002"), "{out}");
        assert!(out.contains("linekey.1.type = 0"), "{out}");
        assert!(!out.contains("1003"), "{out}");
        assert!(out.lines().count() < 20, "{out}");
    }
}
