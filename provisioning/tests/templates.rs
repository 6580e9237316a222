//! Jinja2 templates as provd plugins write them: `{% extends %}` with blocks, includes,
//! macros, Python dict methods, and the user directory overriding the plugin's.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::PathBuf;

use pbxkit_provisioning::template::{TemplateDir, TemplateError, Templates};
use serde_json::json;

/// A provd-style `base.tpl`: blocks a model template fills, an include, a macro, the
/// Python `iteritems()` loop over `sip_lines`.
const BASE_TPL: &str = r#"{% import 'macros.tpl' as m -%}
#!version:1.0.0.1
{% block header %}## base{% endblock %}
{% for line_no, line in sip_lines.iteritems() %}
account.{{ line_no }}.user_name = {{ line.username }}
account.{{ line_no }}.display_name = {{ line.display_name|e }}
account.{{ line_no }}.label = {{ m.or_null(line.number) }}
{% endfor %}
{% include 'common.tpl' %}
{% block model_specific %}{% endblock %}
"#;

const MACROS_TPL: &str =
    "{% macro or_null(v) %}{% if v %}{{ v }}{% else %}%NULL%{% endif %}{% endmacro %}\n";

const COMMON_TPL: &str = "local_time.ntp_server1 = {{ ntp_ip }}\nlang = {{ XX_lang }}\n";

const T46S_TPL: &str = r#"{% extends 'base.tpl' %}
{% block header %}## T46S ({{ super() }}){% endblock %}
{% block model_specific -%}
{% for k in range(1, 3) %}
expansion_module.1.key.{{ k }}.type = 0
{%- endfor %}
{%- endblock %}
"#;

const EXPECTED: &str = "#!version:1.0.0.1
## T46S (## base)

account.1.user_name = alice
account.1.display_name = Alice &amp; &#34;Co&#34;
account.1.label = 1001

account.2.user_name = bob
account.2.display_name = Bob
account.2.label = %NULL%

local_time.ntp_server1 = 10.0.0.1
lang = 

expansion_module.1.key.1.type = 0
expansion_module.1.key.2.type = 0";

fn context() -> serde_json::Value {
    json!({
        "ntp_ip": "10.0.0.1",
        "sip_lines": {
            "1": {"username": "alice", "display_name": "Alice & \"Co\"", "number": "1001"},
            "2": {"username": "bob", "display_name": "Bob"},
        },
    })
}

fn plugin() -> TemplateDir {
    TemplateDir::memory([
        ("base.tpl", BASE_TPL),
        ("macros.tpl", MACROS_TPL),
        ("common.tpl", COMMON_TPL),
        ("T46S.tpl", T46S_TPL),
    ])
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("pbxkit-prov-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn provd_style_base_with_extends_and_blocks() {
    let templates = Templates::new([plugin()]);
    let out = templates
        .render_device_file("805ec0112233.cfg", Some("T46S"), &context())
        .unwrap();
    assert_eq!(out, EXPECTED);
}

#[test]
fn user_directory_overrides_the_plugin() {
    let user = TempDir::new("user");
    // Override one included file, and add a per-device template.
    std::fs::write(user.0.join("common.tpl"), "ntp = {{ ntp_ip }}\n").unwrap();
    std::fs::write(
        user.0.join("001122aabbcc.cfg.tpl"),
        "{% extends 'T46S.tpl' %}{% block header %}## custom{% endblock %}\n",
    )
    .unwrap();
    let mut templates = Templates::new([TemplateDir::Dir(user.0.clone()), plugin()]);
    let out = templates
        .render_device_file("001122aabbcc.cfg", Some("T46S"), &context())
        .unwrap();
    assert!(out.starts_with("#!version:1.0.0.1\n## custom\n"), "{out}");
    assert!(out.contains("\nntp = 10.0.0.1\n"), "{out}");
    assert!(!out.contains("local_time"), "{out}");

    // Another device of the same model gets the plugin's model template.
    let out = templates
        .render_device_file("aabbccddeeff.cfg", Some("T46S"), &context())
        .unwrap();
    assert!(out.contains("## T46S (## base)"), "{out}");

    // Edited files are read again after a reload.
    std::fs::write(user.0.join("common.tpl"), "ntp2 = {{ ntp_ip }}\n").unwrap();
    templates.reload();
    let out = templates
        .render_device_file("aabbccddeeff.cfg", Some("T46S"), &context())
        .unwrap();
    assert!(out.contains("\nntp2 = 10.0.0.1\n"), "{out}");
}

#[test]
fn errors_in_files_on_disk_name_the_file_and_line() {
    let user = TempDir::new("err");
    std::fs::write(
        user.0.join("base.tpl"),
        "line one\nline two\n{{ sip_lines.x.y }}\n",
    )
    .unwrap();
    std::fs::write(
        user.0.join("bad.tpl"),
        "{% extends 'base.tpl' %}\n{% block %}\n",
    )
    .unwrap();
    let templates = Templates::new([TemplateDir::Dir(user.0.clone()), plugin()]);
    match templates.render("base.tpl", &json!({})) {
        Err(TemplateError::Render { file, line, .. }) => {
            assert_eq!((file.as_str(), line), ("base.tpl", 3))
        }
        other => panic!("{other:?}"),
    }
    match templates.render_device_file("x.cfg", Some("bad"), &json!({})) {
        Err(TemplateError::Render { file, line, .. }) => {
            assert_eq!((file.as_str(), line), ("bad.tpl", 2))
        }
        other => panic!("{other:?}"),
    }
    let err = templates
        .render("base.tpl", &json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("template base.tpl, line 3: "), "{err}");
}

#[test]
fn set_in_loops_does_not_leak_and_loop_filters_work() {
    let t = Templates::new([TemplateDir::memory([(
        "t.tpl",
        "{% set n = 0 %}{% for k, v in d.items() if v > 1 %}{% set n = n + v %}{{ k }}{{ n }}{% endfor %}|{{ n }}",
    )])]);
    assert_eq!(
        t.render("t.tpl", &json!({"d": {"a": 1, "b": 2, "c": 3}}))
            .unwrap(),
        "b2c3|0"
    );
}

#[test]
fn files_added_to_a_directory_are_seen_after_a_reload() {
    let user = TempDir::new("listing");
    std::fs::create_dir(user.0.join("parts")).unwrap();
    std::fs::write(user.0.join("parts").join("ntp.tpl"), "ntp {{ ntp_ip }}").unwrap();
    std::fs::write(user.0.join("T46S.tpl"), "{% include 'parts/ntp.tpl' %}").unwrap();
    let mut templates = Templates::new([TemplateDir::Dir(user.0.clone()), plugin()]);
    // The directory is listed once: a per-device file added afterwards waits for a
    // reload, as an edited file does.
    assert_eq!(
        templates
            .render_device_file("001122aabbcc.cfg", Some("T46S"), &context())
            .unwrap(),
        "ntp 10.0.0.1"
    );
    std::fs::write(user.0.join("001122aabbcc.cfg.tpl"), "per device").unwrap();
    assert!(!templates.exists("001122aabbcc.cfg.tpl").unwrap());
    templates.reload();
    assert_eq!(
        templates
            .render_device_file("001122aabbcc.cfg", Some("T46S"), &context())
            .unwrap(),
        "per device"
    );
    // A directory that does not exist holds no template; the plugin's are used.
    let gone = Templates::new([TemplateDir::Dir(user.0.join("nope")), plugin()]);
    assert!(
        gone.render_device_file("a.cfg", Some("T46S"), &context())
            .unwrap()
            .starts_with("#!version:1.0.0.1\n## T46S")
    );
}
