//! Yealink T4x (T41S, T42S, T46S, T48S, T53, T54W...): one `<mac>.cfg` per phone, in
//! Yealink's `key = value` format, unset values written `%NULL%` so that the phone
//! resets them.
//!
//! As in provd's `xivo-yealink` plugin, the plugin computes `XX_*` values (resolved
//! lines, function keys) and adds them to the raw config before rendering `base.tpl`
//! (or `<model>.tpl`, or `<mac>.cfg.tpl`) from the user's templates then its own.
//! Function key type codes: speeddial 13, blf 16, park 10; a key position left free
//! below the highest configured one is written as type 0 with `%NULL%` values.

use serde_json::{Map, Value};

use crate::identify::SupportRule;
use crate::mac::Mac;
use crate::model::{FuncKeyType, RawConfig, RawConfigError};
use crate::template::{TemplateDir, TemplateError, Templates};

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
            .render_device_file(&name, model, &Value::Object(context))?;
        Ok((name, text))
    }
}

fn or_null(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or(NULL).to_owned()
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
fn context(mac: Mac, raw: &RawConfig) -> Result<Map<String, Value>, RawConfigError> {
    let mut ctx = raw.0.clone();
    let lines = raw.sip_lines()?;
    let proxy = raw.sip_proxy_ip();
    let registrar = raw.sip_registrar_ip();
    let xx_lines: Vec<Value> = lines
        .iter()
        .map(|(no, line)| {
            let line_proxy = line.proxy_ip.as_deref().or(proxy);
            serde_json::json!({
                "no": no,
                "label": or_null(line.number.as_deref()),
                "display_name": or_null(line.display_name.as_deref()),
                "auth_name": or_null(line.auth_username.as_deref().or(line.username.as_deref())),
                "user_name": or_null(line.username.as_deref()),
                "password": or_null(line.password.as_deref()),
                "server": or_null(line.registrar_ip.as_deref().or(registrar).or(line_proxy)),
                "outbound_proxy": or_null(line_proxy),
                "voicemail": or_null(line.voicemail.as_deref()),
            })
        })
        .collect();
    let keys = raw.funckeys()?;
    let mut fkeys = Vec::new();
    let last = keys.keys().next_back().copied().unwrap_or(0);
    for position in 1..=last {
        let Some(key) = keys.get(&position) else {
            fkeys.push(format!("linekey.{position}.type = 0"));
            for field in ["line", "value", "label", "extension"] {
                fkeys.push(format!("linekey.{position}.{field} = {NULL}"));
            }
            continue;
        };
        let code = match key.kind {
            FuncKeyType::Speeddial => 13,
            FuncKeyType::Blf => 16,
            FuncKeyType::Park => 10,
        };
        let value = or_null(key.value.as_deref());
        let extension = match key.kind {
            FuncKeyType::Blf => or_null(raw.str("exten_pickup_call")),
            FuncKeyType::Park => value.clone(),
            FuncKeyType::Speeddial => NULL.to_owned(),
        };
        fkeys.push(format!("linekey.{position}.type = {code}"));
        fkeys.push(format!(
            "linekey.{position}.line = {}",
            key.line.as_deref().unwrap_or("1")
        ));
        fkeys.push(format!("linekey.{position}.value = {value}"));
        fkeys.push(format!(
            "linekey.{position}.label = {}",
            key.label.as_deref().unwrap_or("")
        ));
        fkeys.push(format!("linekey.{position}.extension = {extension}"));
    }
    let ntp = raw.ntp()?;
    let ntp_ip = ntp.filter(|n| n.enabled).and_then(|n| n.ip);
    ctx.insert("XX_mac".into(), Value::from(mac.compact().to_string()));
    ctx.insert("XX_lines".into(), Value::from(xx_lines));
    ctx.insert("XX_fkeys".into(), Value::from(fkeys.join("\n")));
    ctx.insert("XX_ntp_ip".into(), Value::from(or_null(ntp_ip.as_deref())));
    ctx.insert("XX_lang".into(), Value::from(language(raw.locale())));
    ctx.insert(
        "XX_admin_password".into(),
        Value::from(raw.str("admin_password").unwrap_or("9486")),
    );
    ctx.insert("XX_dnd".into(), Value::from(or_null(raw.str("exten_dnd"))));
    Ok(ctx)
}
