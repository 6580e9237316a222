//! Polycom VVX (VVX 300 to 600 series): two files per phone (lower-case MAC).
//!
//! - `<mac>.cfg`, the master configuration file, which the phone asks for first when it
//!   boots (then `000000000000.cfg` if there is none): an `<APPLICATION>` element whose
//!   `CONFIG_FILES` names the files to load, here `<mac>-user.cfg`, and
//!   `APP_FILE_PATH` the firmware image (`sip.ld`; the phone keeps its firmware when the
//!   server has none). Rendered from `<mac>.cfg.tpl` or `master.tpl`.
//!   [`Polycom::default_master`] is the `000000000000.cfg` shared by phones not
//!   configured yet, which names `[PHONE_MAC_ADDRESS]-user.cfg` (the phone puts its
//!   own MAC in place of the variable).
//! - `<mac>-user.cfg`, a `<polycomConfig>` element whose attributes are the settings:
//!   `reg.N.*` per line, `tcpIpApp.sntp.*` for NTP and time zone, `lcl.ml.lang`,
//!   `device.net.vlanId`, `device.syslog.*`, and the directory in `mb.main.home` and
//!   soft key 1. Rendered from `<mac>-user.cfg.tpl`, `<model>.tpl` or `base.tpl`.
//!
//! Function keys are attendant resources (`attendant.resourceList.<position>.*`),
//! which the phone puts on the line keys after its registrations: BLF keys are
//! `normal` (monitored, press to pick up or call), speeddial and park keys `automata`
//! (pressing calls the number, or parks the call in progress on the slot). The
//! attendant subscribes through the line of the first function key that names one.

use super::common::{self, Common};
use super::{GeneratedFile, Plugin, PluginError, require_mac};
use crate::identify::{DeviceInfo, Support, SupportRule};
use crate::mac::Mac;
use crate::model::{Device, FuncKeyType, RawConfig};
use crate::template::{Context, TemplateDir, Templates, escape_str};
use crate::tz::{DstChange, TzInfo};

/// The plugin's `base.tpl`, for `<mac>-user.cfg`.
pub const BASE_TPL: &str = include_str!("polycom_base.tpl");

/// The plugin's `master.tpl`, for the master configuration file `<mac>.cfg`.
pub const MASTER_TPL: &str = include_str!("polycom_master.tpl");

/// The master configuration file of phones that have none of their own.
pub const DEFAULT_MASTER_FILENAME: &str = "000000000000.cfg";

/// The models this plugin supports.
pub const MODELS: &[&str] = &[
    "VVX101", "VVX201", "VVX300", "VVX301", "VVX310", "VVX311", "VVX400", "VVX401", "VVX410",
    "VVX411", "VVX450", "VVX500", "VVX501", "VVX600", "VVX601",
];

/// The Polycom VVX plugin.
#[derive(Debug)]
pub struct Polycom {
    templates: Templates,
}

impl Default for Polycom {
    fn default() -> Self {
        Self::new()
    }
}

impl Polycom {
    /// The plugin with its own templates only.
    pub fn new() -> Self {
        Self::with_user_templates(None)
    }

    /// The plugin with a user template directory looked up before its own templates.
    pub fn with_user_templates(user: Option<TemplateDir>) -> Self {
        let own = TemplateDir::memory([("base.tpl", BASE_TPL), ("master.tpl", MASTER_TPL)]);
        Self {
            templates: Templates::new(user.into_iter().chain([own])),
        }
    }

    /// The file name for `mac`: `001122aabbcc-user.cfg`.
    pub fn filename(mac: Mac) -> String {
        format!("{}-user.cfg", mac.compact())
    }

    /// The master configuration file name for `mac`: `001122aabbcc.cfg`.
    pub fn master_filename(mac: Mac) -> String {
        format!("{}.cfg", mac.compact())
    }

    /// Renders the master configuration file of the phone `mac`, which points it at
    /// its [`Polycom::filename`]: `(name, content)`.
    pub fn render_master(
        &self,
        mac: Mac,
        raw: &RawConfig,
    ) -> Result<(String, String), PluginError> {
        let name = Self::master_filename(mac);
        let mut context = Context::from_json(&raw.0);
        context.set("XX_mac", mac.compact().to_string());
        context.set("XX_config_files", Self::filename(mac));
        let per_device = format!("{name}.tpl");
        let template = self.templates.select(&[&per_device, "master.tpl"])?;
        let text = self.templates.render_context(template, context)?;
        Ok((name, text))
    }

    /// `000000000000.cfg`, the master configuration file for phones that have none of
    /// their own (not configured yet): it names `[PHONE_MAC_ADDRESS]-user.cfg`, which
    /// the phone reads as its own `<mac>-user.cfg`. Rendered from
    /// `000000000000.cfg.tpl` or `master.tpl`; write it once in the directory phones
    /// download from.
    pub fn default_master(&self) -> Result<GeneratedFile, PluginError> {
        let mut context = Context::default();
        context.set("XX_mac", "000000000000");
        context.set("XX_config_files", "[PHONE_MAC_ADDRESS]-user.cfg");
        let per_file = format!("{DEFAULT_MASTER_FILENAME}.tpl");
        let template = self.templates.select(&[&per_file, "master.tpl"])?;
        let text = self.templates.render_context(template, context)?;
        Ok(GeneratedFile::new(DEFAULT_MASTER_FILENAME, text))
    }

    /// Renders the file of the phone `mac` (of `model`, if known): `(name, content)`.
    pub fn render(
        &self,
        mac: Mac,
        model: Option<&str>,
        raw: &RawConfig,
    ) -> Result<(String, String), PluginError> {
        let name = Self::filename(mac);
        let mut c = common::common(raw, "polycom")?;
        c.set("XX_mac", mac.compact().to_string());
        add_vendor_values(&mut c, raw);
        let text =
            self.templates
                .render_device_context(&name, model, Context::from_json(&c.ctx))?;
        Ok((name, text))
    }
}

impl Plugin for Polycom {
    fn name(&self) -> &str {
        "xivo-polycom"
    }

    fn support(&self, device: &DeviceInfo) -> Support {
        let rules: Vec<SupportRule> = MODELS
            .iter()
            .map(|m| SupportRule::model("Polycom", m))
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
        let (master, master_text) = self.render_master(mac, raw)?;
        // The user file first: files are written in this order, and a phone that reads
        // the new master file must find the file it names.
        Ok(vec![
            GeneratedFile::new(name, text),
            GeneratedFile::new(master, master_text),
        ])
    }
}

fn dst_change(out: &mut Vec<String>, which: &str, c: &DstChange) {
    let prefix = format!("tcpIpApp.sntp.daylightSavings.{which}");
    out.push(format!("{prefix}.month=\"{}\"", c.month));
    if !c.is_last() {
        out.push(format!(
            "{prefix}.date=\"{}\"",
            (u16::from(c.week) - 1) * 7 + 1
        ));
    }
    out.push(format!("{prefix}.time=\"{}\"", c.hour()));
    out.push(format!(
        "{prefix}.dayOfWeek=\"{}\"",
        c.weekday_from_sunday()
    ));
    out.push(format!(
        "{prefix}.dayOfWeek.lastInMonth=\"{}\"",
        u8::from(c.is_last())
    ));
}

fn timezone(tz: &TzInfo) -> String {
    let mut out = vec![format!(
        "tcpIpApp.sntp.gmtOffset=\"{}\"",
        tz.utc_offset_seconds()
    )];
    match &tz.dst {
        None => out.push("tcpIpApp.sntp.daylightSavings.enable=\"0\"".to_owned()),
        Some(dst) => {
            out.push("tcpIpApp.sntp.daylightSavings.enable=\"1\"".to_owned());
            out.push("tcpIpApp.sntp.daylightSavings.fixedDayEnable=\"0\"".to_owned());
            dst_change(&mut out, "start", &dst.start);
            dst_change(&mut out, "stop", &dst.end);
        }
    }
    out.join("\n")
}

fn add_vendor_values(c: &mut Common, raw: &RawConfig) {
    let mut keys = Vec::new();
    if let Some(line) = c.keys.values().find_map(|k| k.line.as_deref()) {
        keys.push(format!("attendant.reg=\"{}\"", escape_str(line)));
    }
    for (position, key) in &c.keys {
        let value = escape_str(key.value.as_deref().unwrap_or_default());
        let label = key
            .label
            .as_deref()
            .map(escape_str)
            .unwrap_or_else(|| value.clone());
        let kind = match key.kind {
            FuncKeyType::Blf => "normal",
            FuncKeyType::Speeddial | FuncKeyType::Park => "automata",
        };
        keys.push(format!(
            "attendant.resourceList.{position}.address=\"{value}\""
        ));
        keys.push(format!(
            "attendant.resourceList.{position}.label=\"{label}\""
        ));
        keys.push(format!("attendant.resourceList.{position}.type=\"{kind}\""));
    }
    c.set("XX_fkeys", keys.join("\n"));
    c.set(
        "XX_timezone",
        c.tz.as_ref().map(timezone).unwrap_or_default(),
    );
    let language = match c.lang.as_deref() {
        Some("fr") => "Francais_France",
        Some("de") => "Deutsch_Deutschland",
        Some("es") => "Espanol_Espana",
        Some("it") => "Italiano_Italia",
        Some("nl") => "Nederlands_Nederland",
        Some("en") => "English_United_States",
        _ => "",
    };
    c.set("XX_language", language);
    c.set(
        "XX_directory_label",
        if c.lang.as_deref() == Some("fr") {
            "Annuaire"
        } else {
            "Directory"
        },
    );
    // Polycom's render levels run from 0 (debug) to 6 (critical).
    let level = match raw.str("syslog_level") {
        Some("critical") => 5,
        Some("error") => 4,
        Some("warning") => 3,
        Some("debug") => 1,
        _ => 2,
    };
    c.set("XX_syslog_level", level);
}
