//! The built-in Snom, Polycom, Cisco SPA, Aastra and Grandstream plugins against golden
//! files: one device with 2 lines and 4 function keys (speeddial, BLF, park, and a
//! speeddial on line 2 after a free position), with NTP, time zone, locale, VLAN,
//! syslog, admin password, phonebook and feature codes set, renders byte for byte the
//! file in `tests/golden/`. `PBXKIT_BLESS=1` rewrites the golden files instead.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

use pbxkit_provisioning::Mac;
use pbxkit_provisioning::identify::{self, DeviceInfo, Support};
use pbxkit_provisioning::model::{Config, Configs, Device, RawConfig};
use pbxkit_provisioning::plugins::grandstream::{Grandstream, MAX_ACCOUNTS, max_accounts};
use pbxkit_provisioning::plugins::polycom::Polycom;
use pbxkit_provisioning::plugins::{GeneratedFile, PluginError, Registry};
use pbxkit_provisioning::template::TemplateDir;
use serde_json::json;

fn raw(v: serde_json::Value) -> RawConfig {
    RawConfig(v.as_object().cloned().unwrap())
}

fn effective() -> RawConfig {
    let mut configs = Configs::new();
    configs.insert(
        "base".into(),
        Config {
            raw_config: raw(json!({
                "ip": "10.0.0.1", "http_port": 8667, "sip_proxy_ip": "10.0.0.1",
                "ntp_enabled": true, "ntp_ip": "10.0.0.254", "locale": "fr_FR",
                "timezone": "Europe/Paris",
                "vlan_enabled": true, "vlan_id": 20, "vlan_priority": 5,
                "syslog_enabled": true, "syslog_ip": "10.0.0.9", "syslog_port": 514,
                "syslog_level": "warning",
                "admin_password": "s3cr<t",
                "X_xivo_phonebook_ip": "10.0.0.1",
                "exten_pickup_call": "*8", "exten_dnd": "*25", "exten_voicemail": "*98",
                "exten_fwd_unconditional": "*21", "exten_fwd_busy": "*23",
                "exten_fwd_no_answer": "*22", "exten_fwd_disable_all": "*20",
            })),
            ..Config::default()
        },
    );
    configs.insert(
        "dev".into(),
        Config {
            parent_ids: vec!["base".into()],
            raw_config: raw(json!({
                "sip_lines": {
                    "1": {"username": "ua1", "auth_username": "ua1", "password": "pw1",
                          "display_name": "Alice", "number": "1001"},
                    "2": {"username": "ua2", "password": "pw2", "display_name": "Alice 2",
                          "number": "1002", "proxy_ip": "10.0.0.2", "voicemail": "*99"},
                },
                "funckeys": {
                    "3": {"type": "speeddial", "value": "1003", "label": "Carol", "line": 1},
                    "4": {"type": "blf", "value": "1004", "label": "R&D", "line": "1"},
                    "5": {"type": "park", "value": "701", "label": "Park 701"},
                    "7": {"type": "speeddial", "value": "0612345678", "label": "Mobile", "line": 2},
                },
            })),
            ..Config::default()
        },
    );
    configs.effective(&"dev".into()).unwrap()
}

fn device(mac: &str, vendor: &str, model: &str) -> Device {
    Device {
        mac: Some(mac.parse().unwrap()),
        vendor: Some(vendor.into()),
        model: Some(model.into()),
        ..Device::default()
    }
}

/// Renders `device` with the plugin `name` of the registry and compares its file
/// named `file` with `golden` (`tests/golden/<golden>`).
fn check(name: &str, device: &Device, file: &str, golden: &str) {
    let registry = Registry::builtin(|_| None);
    let plugin = registry.get(name).unwrap();
    let files = plugin.configure(device, &effective()).unwrap();
    let Some(GeneratedFile { content, .. }) = files.iter().find(|f| f.name == file) else {
        panic!("no {file} in {files:?}");
    };
    let text = String::from_utf8(content.clone()).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(golden);
    if std::env::var_os("PBXKIT_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, want, "\n--- got ---\n{text}\n--- want ---\n{want}");
}

#[test]
fn snom_d785_matches_the_golden_file() {
    check(
        "xivo-snom",
        &device("00:04:13:AA:BB:CC", "Snom", "D785"),
        "000413AABBCC.xml",
        "snom_d785_000413aabbcc.xml",
    );
}

#[test]
fn polycom_vvx400_matches_the_golden_file() {
    check(
        "xivo-polycom",
        &device("00:04:f2:aa:bb:cc", "Polycom", "VVX400"),
        "0004f2aabbcc-user.cfg",
        "polycom_vvx400_0004f2aabbcc-user.cfg",
    );
}

#[test]
fn polycom_master_config_points_at_the_user_file() {
    let device = device("00:04:f2:aa:bb:cc", "Polycom", "VVX400");
    check(
        "xivo-polycom",
        &device,
        "0004f2aabbcc.cfg",
        "polycom_vvx400_0004f2aabbcc.cfg",
    );
    // The user file is written before the master file that names it.
    let registry = Registry::builtin(|_| None);
    let files = registry
        .get("xivo-polycom")
        .unwrap()
        .configure(&device, &effective())
        .unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["0004f2aabbcc-user.cfg", "0004f2aabbcc.cfg"]);
    // Phones not configured yet read the shared master file.
    let shared = Polycom::new().default_master().unwrap();
    assert_eq!(shared.name, "000000000000.cfg");
    let text = String::from_utf8(shared.content).unwrap();
    assert!(
        text.contains(r#" CONFIG_FILES="[PHONE_MAC_ADDRESS]-user.cfg" "#),
        "{text}"
    );
    // Users can override the master template too.
    let user = TemplateDir::memory([("master.tpl", "files={{ XX_config_files }} ip={{ ip }}")]);
    let (name, text) = Polycom::with_user_templates(Some(user))
        .render_master("00:04:f2:aa:bb:cc".parse().unwrap(), &effective())
        .unwrap();
    assert_eq!(
        (name.as_str(), text.as_str()),
        (
            "0004f2aabbcc.cfg",
            "files=0004f2aabbcc-user.cfg ip=10.0.0.1"
        )
    );
}

#[test]
fn cisco_spa508g_matches_the_golden_file() {
    check(
        "xivo-cisco-spa",
        &device("00:18:b9:aa:bb:cc", "Cisco", "SPA508G"),
        "0018b9aabbcc.xml",
        "cisco_spa508g_0018b9aabbcc.xml",
    );
}

#[test]
fn aastra_6867i_matches_the_golden_file() {
    check(
        "xivo-aastra",
        &device("00:08:5d:aa:bb:cc", "Aastra", "6867i"),
        "00085DAABBCC.cfg",
        "aastra_6867i_00085daabbcc.cfg",
    );
}

#[test]
fn grandstream_gxp2170_matches_the_golden_file() {
    check(
        "xivo-grandstream",
        &device("00:0b:82:aa:bb:cc", "Grandstream", "GXP2170"),
        "cfg000b82aabbcc.xml",
        "grandstream_gxp2170_000b82aabbcc.xml",
    );
}

#[test]
fn the_registry_selects_each_vendor_from_what_phones_send() {
    let registry = Registry::builtin(|_| None);
    let cases = [
        (
            "Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33",
            "xivo-yealink",
        ),
        (
            "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33)",
            "xivo-snom",
        ),
        (
            "FileTransport PolycomVVX-VVX_400-UA/5.9.0.9373",
            "xivo-polycom",
        ),
        (
            "Cisco/SPA508G-7.4.9a (0018B9FFFFFF)(CBT141200HS)",
            "xivo-cisco-spa",
        ),
        (
            "Aastra6867i MAC:00-08-5D-11-22-33 V:4.3.0.2036-SIP",
            "xivo-aastra",
        ),
        (
            "Grandstream Model HW GXP2170 SW 1.0.11.3 DevId 000b82112233",
            "xivo-grandstream",
        ),
    ];
    for (ua, want) in cases {
        let info = identify::from_user_agent(ua).unwrap();
        let plugin = registry.select(&info).unwrap();
        assert_eq!(plugin.name(), want, "{ua}");
        assert!(plugin.support(&info) >= Support::Complete, "{ua}");
    }
    // An unknown model of a known vendor is still probable; no vendor, no plugin.
    let info = identify::from_user_agent("Mozilla/4.0 (compatible; snomM900-SIP 1.0)").unwrap();
    assert_eq!(registry.select(&info).map(|p| p.name()), Some("xivo-snom"));
    assert!(registry.select(&DeviceInfo::default()).is_none());
    // The null plugin is never chosen, but is there to be assigned.
    let null = registry.get("null").unwrap();
    assert!(
        null.configure(&Device::default(), &effective())
            .unwrap()
            .is_empty()
    );
    assert_eq!(registry.names().count(), 7);
}

#[test]
fn a_device_without_mac_is_a_typed_error() {
    let registry = Registry::builtin(|_| None);
    for name in [
        "xivo-yealink",
        "xivo-snom",
        "xivo-polycom",
        "xivo-cisco-spa",
        "xivo-aastra",
        "xivo-grandstream",
    ] {
        let err = registry
            .get(name)
            .unwrap()
            .configure(&Device::default(), &effective());
        assert!(
            matches!(err, Err(PluginError::NoMac { .. })),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn minimal_configs_render_without_optional_settings() {
    let registry = Registry::builtin(|_| None);
    let bare = raw(json!({"sip_lines": {"1": {"username": "u"}}}));
    let mac: Mac = "001122334455".parse().unwrap();
    for name in [
        "xivo-snom",
        "xivo-polycom",
        "xivo-cisco-spa",
        "xivo-aastra",
        "xivo-grandstream",
    ] {
        let dev = Device {
            mac: Some(mac),
            ..Device::default()
        };
        let files = registry.get(name).unwrap().configure(&dev, &bare).unwrap();
        let text = String::from_utf8(files[0].content.clone()).unwrap();
        // Nothing unset leaks in as Jinja's `None`, and the default password is there.
        assert!(!text.contains("None"), "{name}:\n{text}");
        assert!(text.contains("9486"), "{name}:\n{text}");
        assert!(!text.contains("10.0.0"), "{name}:\n{text}");
    }
}

#[test]
fn user_templates_override_the_plugins() {
    let user = |plugin: &str| {
        (plugin == "xivo-snom").then(|| {
            TemplateDir::memory([(
                "D785.tpl",
                "{% extends 'base.tpl' %}{% block funckeys %}<custom/>\n{% endblock %}",
            )])
        })
    };
    let registry = Registry::builtin(user);
    let files = registry
        .get("xivo-snom")
        .unwrap()
        .configure(&device("000413000001", "Snom", "D785"), &effective())
        .unwrap();
    let text = String::from_utf8(files[0].content.clone()).unwrap();
    assert!(
        text.contains("<functionKeys e=\"2\">\n<custom/>\n</functionKeys>"),
        "{text}"
    );
}

#[test]
fn values_cannot_inject_settings() {
    let registry = Registry::builtin(|_| None);
    let evil = raw(json!({
        "sip_lines": {"1": {"username": "u", "display_name": "x\nadmin password: 0</a>"}},
        "funckeys": {"1": {"type": "speeddial", "value": "1\r\nadmin password: 0", "label": "<b>"}},
    }));
    let aastra = registry
        .get("xivo-aastra")
        .unwrap()
        .configure(&device("00085d000001", "Aastra", "6867i"), &evil)
        .unwrap();
    let text = String::from_utf8(aastra[0].content.clone()).unwrap();
    let settings = text.lines().filter(|l| l.starts_with("admin password:"));
    assert_eq!(settings.count(), 1, "{text}");
    for (name, model) in [
        ("xivo-snom", "D785"),
        ("xivo-cisco-spa", "SPA508G"),
        ("xivo-grandstream", "GXP2170"),
        ("xivo-polycom", "VVX400"),
    ] {
        let files = registry
            .get(name)
            .unwrap()
            .configure(&device("000413000001", "X", model), &evil)
            .unwrap();
        let text = String::from_utf8(files[0].content.clone()).unwrap();
        assert!(
            !text.contains("</a>") && !text.contains("<b>"),
            "{name}:\n{text}"
        );
    }
}

#[test]
fn cisco_keeps_line_keys_and_overflows_to_the_sidecar() {
    let registry = Registry::builtin(|_| None);
    let config = raw(json!({
        "sip_proxy_ip": "10.0.0.1",
        "sip_lines": {"1": {"username": "u"}},
        "funckeys": {
            "1": {"type": "blf", "value": "1001"},
            "2": {"type": "speeddial", "value": "1002", "label": "Two"},
            "5": {"type": "blf", "value": "1005", "label": "Five"},
            "38": {"type": "park", "value": "701", "label": "P"},
            "80": {"type": "park", "value": "702", "label": "Too far"},
        },
    }));
    let files = registry
        .get("xivo-cisco-spa")
        .unwrap()
        .configure(&device("0018b9000001", "Cisco", "SPA504G"), &config)
        .unwrap();
    let text = String::from_utf8(files[0].content.clone()).unwrap();
    assert!(!text.contains("sub=1001"), "{text}");
    assert!(
        text.contains(
            "<Extended_Function_2_>fnc=sd;ext=1002@$PROXY;nme=Two</Extended_Function_2_>"
        ),
        "{text}"
    );
    // SPA504G has 4 keys: 5 is key 1 of the first unit, 38 key 2 of the second.
    assert!(
        text.contains("<Unit_1_Key_1>fnc=sd+blf+cp;sub=1005@$PROXY;nme=Five</Unit_1_Key_1>"),
        "{text}"
    );
    assert!(
        text.contains("<Unit_2_Key_2>fnc=prk;sub=701@$PROXY;nme=P</Unit_2_Key_2>"),
        "{text}"
    );
    assert!(!text.contains("702"), "{text}");
}

#[test]
fn unknown_timezone_leaves_the_phone_setting() {
    let registry = Registry::builtin(|_| None);
    let config = raw(json!({"timezone": "Mars/Olympus", "sip_lines": {}}));
    let files = registry
        .get("xivo-polycom")
        .unwrap()
        .configure(&device("0004f2000001", "Polycom", "VVX400"), &config)
        .unwrap();
    let text = String::from_utf8(files[0].content.clone()).unwrap();
    assert!(!text.contains("gmtOffset"), "{text}");
}

/// Lines and keys that the phone does not have are left out, by the documented rules
/// of the Grandstream plugin, rather than written as settings of other keys.
#[test]
fn grandstream_leaves_out_what_the_phone_does_not_have() {
    let plugin = Grandstream::new();
    let mac: Mac = "000b82000001".parse().unwrap();
    let config = raw(json!({
        "sip_lines": {
            "0": {"username": "zero"},
            "1": {"username": "one"},
            "2": {"username": "two"},
            "7": {"username": "seven"},
        },
        "funckeys": {
            "1": {"type": "speeddial", "value": "101"},
            "2": {"type": "blf", "value": "102", "line": 2},
            "3": {"type": "speeddial", "value": "103", "line": 7},
            "4": {"type": "speeddial", "value": "104", "line": "x"},
            "5": {"type": "speeddial", "value": "105", "line": 3},
            "8": {"type": "speeddial", "value": "108"},
        },
    }));
    let render = |model| plugin.render(mac, model, &config).unwrap().1;

    // A GXP1610 has one account: line 2 and the key on it are left out.
    let text = render(Some("GXP1610"));
    assert!(text.contains("<P35>one</P35>"), "{text}");
    assert!(!text.contains("two") && !text.contains("<P404>"), "{text}");
    assert!(text.contains("<P303>101</P303>"), "{text}");
    assert!(!text.contains("102"), "{text}");

    // A GXP2170 has six: line 2 and its key are written.
    let text = render(Some("GXP2170"));
    assert!(text.contains("<P404>two</P404>"), "{text}");
    assert!(
        text.contains("<P324>1</P324>\n<P304>1</P304>\n<P305>102</P305>\n<P306>102</P306>"),
        "{text}"
    );

    // For any model: no line 0 (it would be written as P2xx settings) nor line 7 (past
    // the accounts this numbering has); no key on a line that is not written (7),
    // unknown (`x`) or not configured (3); no key past position 7, whose codes would
    // be those of key 1's mode.
    for model in [None, Some("GXP1610"), Some("GXP2170")] {
        let text = render(model);
        for absent in [
            "zero", "seven", "103", "104", "105", "108", "<P201>", "<P901>",
        ] {
            assert!(!text.contains(absent), "{model:?} {absent}:\n{text}");
        }
        assert_eq!(text.matches("<P323>").count(), 1, "{text}");
    }
    assert_eq!(max_accounts(Some("GXP2135")), 4);
    assert_eq!(max_accounts(Some("GXP9999")), MAX_ACCOUNTS);
}
