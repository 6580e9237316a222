//! Cisco SPA (SPA30x, SPA50x, SPA51x, SPA525G): one `<mac>.xml` per phone (lower-case
//! MAC), a `<flat-profile>` of `<Parameter_Name_N_>` elements: `Line_Enable_N_`,
//! `User_ID_N_`, `Proxy_N_`... per line, `Primary_NTP_Server`, `Time_Zone` with the
//! daylight saving rule, `Language_Selection`, VLAN, syslog, feature codes and the XML
//! directory.
//!
//! Function keys are line keys: key N of the phone gets `Extension_N_` `Disabled`, a
//! `Short_Name_N_` and an `Extended_Function_N_` (`fnc=sd` speeddial, `fnc=sd+blf+cp`
//! BLF with call pickup, `fnc=prk` park), `$PROXY` standing for the line's proxy.
//! A position used by a SIP line stays that line's key (as the phone does with provd's
//! files, where the line settings come last), and positions beyond the phone's keys
//! go to the attendant console units (`Unit_U_Key_K`, 32 keys each, two units).

use super::common::{self, Common};
use super::{GeneratedFile, Plugin, PluginError, require_mac};
use crate::identify::{DeviceInfo, Support, SupportRule};
use crate::mac::Mac;
use crate::model::{Device, FuncKeyType, RawConfig};
use crate::template::{Context, TemplateDir, Templates, escape_str};
use crate::tz::{DstChange, TzInfo, format_offset};

/// The plugin's `base.tpl`.
pub const BASE_TPL: &str = include_str!("cisco_base.tpl");

/// The models this plugin supports, with their number of line keys.
pub const MODELS: &[(&str, u32)] = &[
    ("SPA301", 1),
    ("SPA303", 3),
    ("SPA501G", 8),
    ("SPA502G", 1),
    ("SPA504G", 4),
    ("SPA508G", 8),
    ("SPA509G", 12),
    ("SPA512G", 1),
    ("SPA514G", 4),
    ("SPA525G", 5),
    ("SPA525G2", 5),
];

/// Line keys assumed for a model not in [`MODELS`].
const DEFAULT_KEYS: u32 = 8;
/// Keys of one attendant console unit, and the number of units a phone takes.
const UNIT_KEYS: u32 = 32;
const UNITS: u32 = 2;

/// The Cisco SPA plugin.
#[derive(Debug)]
pub struct CiscoSpa {
    templates: Templates,
}

impl Default for CiscoSpa {
    fn default() -> Self {
        Self::new()
    }
}

impl CiscoSpa {
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

    /// The file name for `mac`: `001122aabbcc.xml`.
    pub fn filename(mac: Mac) -> String {
        format!("{}.xml", mac.compact())
    }

    /// Renders the file of the phone `mac` (of `model`, if known): `(name, content)`.
    pub fn render(
        &self,
        mac: Mac,
        model: Option<&str>,
        raw: &RawConfig,
    ) -> Result<(String, String), PluginError> {
        let name = Self::filename(mac);
        let mut c = common::common(raw, "cisco")?;
        c.set("XX_mac", mac.compact().to_string());
        add_vendor_values(&mut c, model);
        let text =
            self.templates
                .render_device_context(&name, model, Context::from_json(&c.ctx))?;
        Ok((name, text))
    }
}

impl Plugin for CiscoSpa {
    fn name(&self) -> &str {
        "xivo-cisco-spa"
    }

    fn support(&self, device: &DeviceInfo) -> Support {
        let rules: Vec<SupportRule> = MODELS
            .iter()
            .map(|(m, _)| SupportRule::model("Cisco", m))
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

/// SPA's `month/day/weekday/h:m:s`: day -1 is the last weekday of the month, else the
/// first day of the week searched; weekdays count from Monday (1) to Sunday (7).
fn dst_change(c: &DstChange) -> String {
    let day = if c.is_last() {
        -1
    } else {
        (i32::from(c.week) - 1) * 7 + 1
    };
    format!(
        "{}/{day}/{}/{}:{}:0",
        c.month,
        c.weekday_from_monday(),
        c.minutes / 60,
        c.minutes % 60
    )
}

fn timezone(tz: &TzInfo) -> String {
    let mut out = vec![format!(
        "<Time_Zone>GMT{}</Time_Zone>",
        format_offset(tz.utc_offset_minutes)
    )];
    match &tz.dst {
        None => {
            out.push("<Daylight_Saving_Time_Enable>no</Daylight_Saving_Time_Enable>".to_owned())
        }
        Some(dst) => {
            out.push("<Daylight_Saving_Time_Enable>yes</Daylight_Saving_Time_Enable>".to_owned());
            out.push(format!(
                "<Daylight_Saving_Time_Rule>start={};end={};save={}:{}:0</Daylight_Saving_Time_Rule>",
                dst_change(&dst.start),
                dst_change(&dst.end),
                dst.save_minutes / 60,
                dst.save_minutes % 60
            ));
        }
    }
    out.join("\n")
}

fn add_vendor_values(c: &mut Common, model: Option<&str>) {
    let phone_keys = model
        .and_then(|m| MODELS.iter().find(|(name, _)| name.eq_ignore_ascii_case(m)))
        .map_or(DEFAULT_KEYS, |(_, keys)| *keys);
    let mut keys = Vec::new();
    for (&position, key) in &c.keys {
        if position <= phone_keys && c.has_line(position) {
            continue;
        }
        // `;` separates the fields of a function: a value cannot add fields.
        let value = key.value.as_deref().unwrap_or_default().replace(';', " ");
        let label = key
            .label
            .as_deref()
            .map_or_else(|| value.clone(), |l| l.replace(';', " "));
        let function = match key.kind {
            FuncKeyType::Speeddial => format!("fnc=sd;ext={value}@$PROXY;nme={label}"),
            FuncKeyType::Blf => format!("fnc=sd+blf+cp;sub={value}@$PROXY;nme={label}"),
            FuncKeyType::Park => format!("fnc=prk;sub={value}@$PROXY;nme={label}"),
        };
        // The values live in XML elements and the function string splits on `;`.
        let function = escape_str(&function);
        if position <= phone_keys {
            keys.push(format!(
                "<Extension_{position}_>Disabled</Extension_{position}_>"
            ));
            keys.push(format!(
                "<Short_Name_{position}_>{}</Short_Name_{position}_>",
                escape_str(&label)
            ));
            keys.push(format!(
                "<Extended_Function_{position}_>{function}</Extended_Function_{position}_>"
            ));
        } else {
            let index = position - phone_keys - 1;
            let unit = index / UNIT_KEYS + 1;
            if unit > UNITS {
                continue;
            }
            let unit_key = index % UNIT_KEYS + 1;
            keys.push(format!(
                "<Unit_{unit}_Key_{unit_key}>{function}</Unit_{unit}_Key_{unit_key}>"
            ));
        }
    }
    c.set("XX_fkeys", keys.join("\n"));
    c.set(
        "XX_timezone",
        c.tz.as_ref().map(timezone).unwrap_or_default(),
    );
    let language = match c.lang.as_deref() {
        Some("fr") => "French",
        Some("de") => "German",
        Some("es") => "Spanish",
        Some("it") => "Italian",
        Some("nl") => "Dutch",
        Some("en") => "English",
        _ => "",
    };
    c.set("XX_language", language);
    c.set(
        "XX_directory_name",
        if c.lang.as_deref() == Some("fr") {
            "Annuaire"
        } else {
            "Directory"
        },
    );
}
