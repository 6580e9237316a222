//! The built-in Yealink T4x plugin against a golden file: a device with 2 lines and 4
//! function keys (speeddial, blf, park, and a free position between them).
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use pbxkit_provisioning::Mac;
use pbxkit_provisioning::model::{Config, Configs, RawConfig};
use pbxkit_provisioning::plugins::yealink::Yealink;
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
                "exten_pickup_call": "*8", "exten_dnd": "*25",
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
                          "display_name": "Alice", "number": "1001", "voicemail": "*98"},
                    "2": {"username": "ua2", "password": "pw2", "display_name": "Alice 2",
                          "number": "1002", "proxy_ip": "10.0.0.2"},
                },
                "funckeys": {
                    "1": {"type": "speeddial", "value": "1003", "label": "Carol", "line": 1},
                    "2": {"type": "blf", "value": "1004", "label": "Dave", "line": "1"},
                    "3": {"type": "park", "value": "701", "label": "Park 701"},
                    "5": {"type": "speeddial", "value": "0612345678", "label": "Mobile", "line": 2},
                },
            })),
            ..Config::default()
        },
    );
    configs.effective(&"dev".into()).unwrap()
}

#[test]
fn two_lines_four_funckeys_match_the_golden_file() {
    let mac: Mac = "00:15:65:AA:BB:CC".parse().unwrap();
    let (name, text) = Yealink::new()
        .render(mac, Some("T46S"), &effective())
        .unwrap();
    assert_eq!(name, "001565aabbcc.cfg");
    let golden = include_str!("golden/yealink_t46s_001565aabbcc.cfg");
    assert_eq!(
        text, golden,
        "\n--- got ---\n{text}\n--- want ---\n{golden}"
    );
}

#[test]
fn unset_values_are_null_and_user_templates_win() {
    let mac: Mac = "001565000001".parse().unwrap();
    let bare = raw(json!({"sip_lines": {"1": {"username": "u"}}}));
    let (_, text) = Yealink::new().render(mac, None, &bare).unwrap();
    assert!(text.contains("account.1.password = %NULL%\n"), "{text}");
    assert!(text.contains("local_time.ntp_server1 = %NULL%\n"), "{text}");
    assert!(!text.contains("linekey"), "{text}");

    let user = TemplateDir::memory([(
        "T46S.tpl",
        "{% extends 'base.tpl' %}{% block funckeys %}custom keys{% endblock %}",
    )]);
    let (_, text) = Yealink::with_user_templates(Some(user))
        .render(mac, Some("T46S"), &bare)
        .unwrap();
    assert!(text.ends_with("custom keys"), "{text}");
}

#[test]
fn malformed_funckeys_are_a_typed_error() {
    let mac: Mac = "001565000001".parse().unwrap();
    let bad = raw(json!({"funckeys": {"1": {"type": "teleport"}}}));
    let err = Yealink::new().render(mac, None, &bad).unwrap_err();
    assert!(
        err.to_string().starts_with("raw_config key funckeys.1: "),
        "{err}"
    );
}

#[test]
fn a_sip_port_other_than_5060_is_written_for_every_line() {
    let mac: Mac = "00:15:65:AA:BB:CC".parse().unwrap();
    let mut config = effective();
    config.0.insert("sip_registrar_port".into(), json!(5070));
    let (_, text) = Yealink::new().render(mac, Some("T46S"), &config).unwrap();
    for no in [1, 2] {
        assert!(
            text.contains(&format!("account.{no}.sip_server.1.port = 5070\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("account.{no}.outbound_port = 5070\n")),
            "{text}"
        );
    }
    // Without it, nothing: the golden file above has no port line.
    let (_, text) = Yealink::new()
        .render(mac, Some("T46S"), &effective())
        .unwrap();
    assert!(!text.contains(".port ="), "{text}");
}
