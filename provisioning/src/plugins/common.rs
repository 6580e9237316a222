//! What every vendor plugin computes the same way: resolved SIP lines (per-line values
//! falling back to the global ones), NTP, VLAN, syslog, credentials and phonebook URL,
//! added to the template context as `XX_*` values.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{FuncKey, RawConfig, RawConfigError};
use crate::template::{TemplateDir, Templates};
use crate::tz::{self, TzInfo};

/// The default phone administrator password, as provd's.
pub(crate) const DEFAULT_ADMIN_PASSWORD: &str = "9486";

/// A SIP line with every fallback applied; missing values are empty strings so that
/// templates print nothing for them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Line {
    pub(crate) no: u32,
    pub(crate) username: String,
    pub(crate) auth_username: String,
    pub(crate) password: String,
    pub(crate) display_name: String,
    pub(crate) number: String,
    pub(crate) proxy_ip: String,
    pub(crate) registrar_ip: String,
    pub(crate) voicemail: String,
}

/// The shared part of a vendor plugin's context.
#[derive(Debug)]
pub(crate) struct Common {
    /// The raw config plus the shared `XX_*` values.
    pub(crate) ctx: Map<String, Value>,
    pub(crate) lines: Vec<Line>,
    pub(crate) keys: BTreeMap<u32, FuncKey>,
    pub(crate) tz: Option<TzInfo>,
    /// The language part of `locale` (`fr` for `fr_FR`).
    pub(crate) lang: Option<String>,
}

impl Common {
    /// Adds a vendor value to the context.
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.ctx.insert(key.to_owned(), value.into());
    }

    /// Whether `no` is a configured SIP line.
    pub(crate) fn has_line(&self, no: u32) -> bool {
        self.lines.iter().any(|l| l.no == no)
    }
}

fn owned(v: Option<&str>) -> String {
    v.unwrap_or_default().to_owned()
}

/// The shared values for a plugin whose phonebook URL ends in `vendor`.
pub(crate) fn common(raw: &RawConfig, vendor: &str) -> Result<Common, RawConfigError> {
    let mut ctx = raw.0.clone();
    let proxy = raw.sip_proxy_ip();
    let registrar = raw.sip_registrar_ip();
    let voicemail = raw.str("exten_voicemail");
    let lines: Vec<Line> = raw
        .sip_line_refs()?
        .into_iter()
        .map(|(no, l)| {
            let line_proxy = l.proxy_ip.or(proxy);
            Line {
                no,
                auth_username: owned(l.auth_username.or(l.username)),
                username: owned(l.username),
                password: owned(l.password),
                display_name: owned(l.display_name),
                number: owned(l.number),
                proxy_ip: owned(line_proxy),
                registrar_ip: owned(l.registrar_ip.or(registrar).or(line_proxy)),
                voicemail: owned(l.voicemail.or(voicemail)),
            }
        })
        .collect();
    let keys = raw.funckeys()?;
    let ntp_ip = raw.ntp()?.filter(|n| n.enabled).and_then(|n| n.ip);
    let vlan = raw.vlan()?;
    let syslog = raw.syslog()?;
    let phonebook = raw.phonebook_url(vendor)?;
    let tz = raw.timezone().and_then(tz::lookup);
    let lang = raw
        .locale()
        .and_then(|l| l.split(['_', '-']).next())
        .filter(|l| !l.is_empty())
        .map(str::to_ascii_lowercase);

    let set = |ctx: &mut Map<String, Value>, k: &str, v: Value| {
        ctx.insert(k.to_owned(), v);
    };
    set(
        &mut ctx,
        "XX_lines",
        // A list of structs of strings and numbers always serializes.
        serde_json::to_value(&lines).unwrap_or_default(),
    );
    set(&mut ctx, "XX_ntp_ip", Value::from(owned(ntp_ip.as_deref())));
    set(&mut ctx, "XX_vlan_enabled", Value::from(vlan.is_some()));
    if let Some(vlan) = &vlan {
        set(&mut ctx, "XX_vlan_id", Value::from(vlan.id));
        set(
            &mut ctx,
            "XX_vlan_priority",
            Value::from(vlan.priority.unwrap_or(0)),
        );
    }
    set(&mut ctx, "XX_syslog_enabled", Value::from(syslog.is_some()));
    if let Some(syslog) = &syslog {
        set(&mut ctx, "XX_syslog_ip", Value::from(syslog.ip.clone()));
        set(&mut ctx, "XX_syslog_port", Value::from(syslog.port));
    }
    set(
        &mut ctx,
        "XX_admin_username",
        Value::from(raw.str("admin_username").unwrap_or("admin")),
    );
    set(
        &mut ctx,
        "XX_admin_password",
        Value::from(
            raw.str("admin_password")
                .filter(|p| !p.is_empty())
                .unwrap_or(DEFAULT_ADMIN_PASSWORD),
        ),
    );
    set(
        &mut ctx,
        "XX_phonebook_url",
        Value::from(phonebook.unwrap_or_default()),
    );
    Ok(Common {
        ctx,
        lines,
        keys,
        tz,
        lang,
    })
}

/// Templates of a plugin: the user's directory first, then the plugin's own `base.tpl`.
pub(crate) fn templates(user: Option<TemplateDir>, base: &'static str) -> Templates {
    let own = TemplateDir::memory([("base.tpl", base)]);
    Templates::new(user.into_iter().chain([own]))
}
