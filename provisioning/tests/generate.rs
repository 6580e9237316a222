//! Generation end to end: devices and configs from a store, plugins from the registry,
//! files written into a directory, rewritten only when their content changes.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::PathBuf;

use pbxkit_provisioning::generate::{self, GenerateError};
use pbxkit_provisioning::model::{Config, ConfigError, Device, RawConfig};
use pbxkit_provisioning::plugins::{GeneratedFile, Registry};
use pbxkit_provisioning::store::{MemoryStore, Store};
use serde_json::json;

fn raw(v: serde_json::Value) -> RawConfig {
    RawConfig(v.as_object().cloned().unwrap())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pbxkit-gen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn store() -> MemoryStore {
    let mut store = MemoryStore::new();
    store
        .put_config(Config {
            id: Some("base".into()),
            raw_config: raw(
                json!({"ip": "10.0.0.1", "sip_proxy_ip": "10.0.0.1", "locale": "fr_FR"}),
            ),
            ..Config::default()
        })
        .unwrap();
    for (id, user) in [("yea", "u1"), ("snom", "u2"), ("none", "u3")] {
        store
            .put_config(Config {
                id: Some(id.into()),
                parent_ids: vec!["base".into()],
                raw_config: raw(json!({"sip_lines": {"1": {"username": user}}})),
                ..Config::default()
            })
            .unwrap();
    }
    let devices = [
        ("yea", "00:15:65:00:00:01", "xivo-yealink"),
        ("snom", "00:04:13:00:00:02", "xivo-snom"),
        ("none", "00:04:13:00:00:03", "null"),
    ];
    for (id, mac, plugin) in devices {
        store
            .put_device(Device {
                id: Some(id.into()),
                mac: Some(mac.parse().unwrap()),
                plugin: Some(plugin.into()),
                config: Some(id.into()),
                ..Device::default()
            })
            .unwrap();
    }
    store
}

#[test]
fn writes_then_rewrites_only_changed_files() {
    let dir = temp_dir("changed");
    let plugins = Registry::builtin(|_| None);
    let mut store = store();

    let results = generate::configure_all(store.devices(), &store.configs(), &plugins, &dir);
    let written: Vec<(String, Vec<String>)> = results
        .into_iter()
        .map(|(d, r)| (d.id.clone().unwrap().0, r.unwrap()))
        .collect();
    assert_eq!(
        written,
        [
            ("none".to_owned(), vec![]),
            ("snom".to_owned(), vec!["000413000002.xml".to_owned()]),
            ("yea".to_owned(), vec!["001565000001.cfg".to_owned()]),
        ]
    );
    let snom = std::fs::read_to_string(dir.join("000413000002.xml")).unwrap();
    assert!(
        snom.contains("<user_name idx=\"1\" perm=\"R\">u2</user_name>"),
        "{snom}"
    );

    // Nothing changed: nothing is written, and no temporary file is left.
    let again = generate::configure_all(store.devices(), &store.configs(), &plugins, &dir);
    assert!(again.iter().all(|(_, r)| r.as_ref().unwrap().is_empty()));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["000413000002.xml", "001565000001.cfg"]);

    // A change in the base config reaches both phones; a change in one device's config
    // only that phone.
    let mut base = store.config(&"base".into()).unwrap().clone();
    base.raw_config
        .0
        .insert("sip_proxy_ip".into(), json!("10.0.0.5"));
    store.put_config(base).unwrap();
    let configs = store.configs();
    let yea = store.device(&"yea".into()).unwrap();
    let snom = store.device(&"snom".into()).unwrap();
    assert_eq!(
        generate::configure(yea, &configs, &plugins, &dir).unwrap(),
        ["001565000001.cfg"]
    );
    assert_eq!(
        generate::configure(snom, &configs, &plugins, &dir).unwrap(),
        ["000413000002.xml"]
    );
    let mut own = store.config(&"snom".into()).unwrap().clone();
    own.raw_config
        .0
        .insert("sip_lines".into(), json!({"1": {"username": "changed"}}));
    store.put_config(own).unwrap();
    let results = generate::configure_all(store.devices(), &store.configs(), &plugins, &dir);
    let written: Vec<Vec<String>> = results.into_iter().map(|(_, r)| r.unwrap()).collect();
    assert_eq!(
        written,
        [vec![], vec!["000413000002.xml".to_owned()], vec![]]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failures_are_per_device_and_typed() {
    let dir = temp_dir("errors");
    let plugins = Registry::builtin(|_| None);
    let configs = store().configs();
    let base = Device {
        mac: Some("00:15:65:00:00:09".parse().unwrap()),
        plugin: Some("xivo-yealink".into()),
        config: Some("yea".into()),
        ..Device::default()
    };
    let no_plugin = Device {
        plugin: None,
        ..base.clone()
    };
    let unknown_plugin = Device {
        plugin: Some("xivo-teleport".into()),
        ..base.clone()
    };
    let no_config = Device {
        config: None,
        ..base.clone()
    };
    let missing_config = Device {
        config: Some("gone".into()),
        ..base.clone()
    };
    let no_mac = Device {
        mac: None,
        ..base.clone()
    };
    let devices = [
        no_plugin,
        unknown_plugin,
        no_config,
        missing_config,
        no_mac,
        base,
    ];
    let results = generate::configure_all(&devices, &configs, &plugins, &dir);
    let [a, b, c, d, e, f] = results.as_slice() else {
        panic!()
    };
    assert!(matches!(a.1, Err(GenerateError::NoPlugin)));
    assert!(matches!(&b.1, Err(GenerateError::UnknownPlugin(p)) if p == "xivo-teleport"));
    assert!(matches!(c.1, Err(GenerateError::NoConfig)));
    assert!(matches!(
        d.1,
        Err(GenerateError::Config(ConfigError::Unknown(_)))
    ));
    assert!(matches!(e.1, Err(GenerateError::Plugin(_))));
    assert_eq!(f.1.as_ref().unwrap(), &["001565000009.cfg"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_names_must_stay_in_the_directory() {
    let dir = temp_dir("names");
    for bad in ["../x.cfg", "/etc/x", "a/b.cfg", "", ".."] {
        let files = [
            GeneratedFile::new("ok.cfg", "x"),
            GeneratedFile::new(bad, "x"),
        ];
        assert!(
            matches!(
                generate::write_files(&dir, &files),
                Err(GenerateError::BadFileName(_))
            ),
            "{bad:?}"
        );
    }
    // Nothing was written, not even the valid file before the bad one.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let missing = dir.join("no-such-dir");
    assert!(matches!(
        generate::write_files(&missing, &[GeneratedFile::new("a.cfg", "x")]),
        Err(GenerateError::Io { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
