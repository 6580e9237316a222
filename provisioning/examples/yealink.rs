//! Provisioning files for a Yealink phone, from a device and its configs given as JSON.
//!
//! The device and a two-level config tree (a shared `base` and the device's own config,
//! with one SIP line and two function keys) are JSON as provd stores them, deserialised
//! into the crate's [`Device`] and [`Config`]. A request from the phone is identified
//! from its `User-Agent`, which selects the Yealink plugin from the built-in
//! [`Registry`]; [`generate`] then renders the phone's `<mac>.cfg` from the effective
//! config. The example checks that the file names the SIP line's user and server, and
//! prints the file names and their first lines.
//!
//! Run it with `cargo run -p pbxkit-provisioning --example yealink [-- DIR]`: with a
//! directory, the files are also written there (atomically, only when changed), as a
//! provisioning server's TFTP/HTTP root would hold them.

use std::path::PathBuf;

use pbxkit_provisioning::generate;
use pbxkit_provisioning::identify;
use pbxkit_provisioning::model::{Config, Configs, Device};
use pbxkit_provisioning::plugins::Registry;

/// The device, as auto-created when the phone first asked for a file: it has a MAC,
/// an IP and a config, but no plugin yet.
const DEVICE: &str = r#"{
    "id": "3f1c9a0e",
    "mac": "80:5e:c0:11:22:33",
    "ip": "10.0.0.42",
    "config": "3f1c9a0e",
    "added": "auto"
}"#;

/// The config tree: the device's config inherits the server-wide `base`.
const CONFIGS: &str = r#"[
    {
        "id": "base",
        "raw_config": {
            "ip": "10.0.0.1", "http_port": 8667, "sip_proxy_ip": "10.0.0.1",
            "ntp_enabled": true, "ntp_ip": "10.0.0.254", "locale": "fr_FR",
            "exten_pickup_call": "*8"
        }
    },
    {
        "id": "3f1c9a0e",
        "parent_ids": ["base"],
        "raw_config": {
            "sip_lines": {
                "1": {"username": "alice-1001", "password": "s3cret",
                      "display_name": "Alice", "number": "1001", "voicemail": "*98"}
            },
            "funckeys": {
                "1": {"type": "blf", "value": "1002", "label": "Bob", "line": 1},
                "2": {"type": "speeddial", "value": "0612345678", "label": "Mobile"}
            }
        }
    }
]"#;

/// What the phone sends with each HTTP request.
const USER_AGENT: &str = "Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33";

/// Lines of each file to print.
const HEAD: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(std::env::args_os().nth(1).map(PathBuf::from))
}

fn run(out_dir: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let mut device: Device = serde_json::from_str(DEVICE)?;
    let mut configs = Configs::new();
    for config in serde_json::from_str::<Vec<Config>>(CONFIGS)? {
        let id = config.id.clone().ok_or("a config without id")?;
        configs.insert(id, config);
    }

    // Identification: who is asking? The MAC in the User-Agent finds the device; the
    // vendor and model choose the plugin (the best support among all built-in ones).
    let info = identify::from_user_agent(USER_AGENT).ok_or("unknown User-Agent")?;
    if info.mac != device.mac {
        return Err(format!("{USER_AGENT:?} is not device {:?}", device.mac).into());
    }
    let registry = Registry::builtin(|_plugin| None); // no user template overrides
    let plugin = registry
        .select(&info)
        .ok_or("no plugin supports this phone")?;
    println!(
        "{USER_AGENT:?}\n  -> {} {} firmware {}, plugin {} ({:?} support)",
        info.vendor.as_deref().unwrap_or("?"),
        info.model.as_deref().unwrap_or("?"),
        info.version.as_deref().unwrap_or("?"),
        plugin.name(),
        plugin.support(&info),
    );
    // What a provisioning server records about the device once it is identified.
    device.plugin = Some(plugin.name().to_owned());
    device.vendor = info.vendor.clone();
    device.model = info.model.clone();
    device.version = info.version.clone();

    // The effective config: `base` merged under the device's own values.
    let config_id = device.config.clone().ok_or("the device has no config")?;
    let effective = configs.effective(&config_id)?;
    let lines = effective.sip_lines()?;
    let line = lines.get(&1).ok_or("no SIP line 1")?;
    let username = line.username.as_deref().ok_or("line 1 has no username")?;
    // No registrar is set, line or config: the phone registers to the proxy of `base`.
    let server = effective.sip_proxy_ip().ok_or("no SIP proxy")?;

    let files = generate::device_files(&device, &configs, &registry)?;
    let [file] = files.as_slice() else {
        return Err(format!("expected one file for a Yealink, got {}", files.len()).into());
    };
    let text = std::str::from_utf8(&file.content)?;
    for expected in [
        format!("account.1.user_name = {username}\n"),
        format!("account.1.sip_server.1.address = {server}\n"),
    ] {
        if !text.contains(&expected) {
            return Err(format!("{} lacks {expected:?}", file.name).into());
        }
    }
    assert_eq!(
        file.name, "805ec0112233.cfg",
        "Yealink files are named after the MAC"
    );

    println!(
        "\n== {} ({} bytes), first {HEAD} lines:",
        file.name,
        text.len()
    );
    for line in text.lines().take(HEAD) {
        println!("  {line}");
    }

    if let Some(dir) = out_dir {
        std::fs::create_dir_all(&dir)?;
        // Only changed files are written: a second run with the same config writes none.
        let written = generate::write_files(&dir, &files)?;
        match written.is_empty() {
            true => println!("\n{}: files unchanged, nothing written", dir.display()),
            false => println!("\nwritten to {}: {}", dir.display(), written.join(", ")),
        }
        device.configured = true;
    }
    println!("\ndevice now: {}", serde_json::to_string(&device)?);
    println!("checked: line 1 user {username:?} on server {server}");
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<(), Box<dyn std::error::Error>> {
    run(None)
}
