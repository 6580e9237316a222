//! `pbxkit-provisioning`: rendering the Yealink configuration file of 10,000 devices
//! (2 lines and 4 function keys each, from a two-level config tree), as a
//! `(re)configure all` does. No peer crate renders provd templates, so the group has
//! pbxkit alone; throughput is in devices (renders) per second.
#![allow(clippy::unwrap_used, reason = "the fixtures are known to be valid")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pbxkit_provisioning::Mac;
use pbxkit_provisioning::model::{Config, Configs, RawConfig};
use pbxkit_provisioning::plugins::yealink::Yealink;
use serde_json::json;
use std::hint::black_box;

const DEVICES: usize = 10_000;

fn raw(v: serde_json::Value) -> RawConfig {
    RawConfig(v.as_object().cloned().unwrap())
}

/// The effective raw config of device `n`: a shared base and the device's lines.
fn effective(n: usize) -> RawConfig {
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
    let user = 1000 + n;
    configs.insert(
        "dev".into(),
        Config {
            parent_ids: vec!["base".into()],
            raw_config: raw(json!({
                "sip_lines": {
                    "1": {"username": format!("u{user}"), "password": "pw1",
                          "display_name": format!("User {user}"), "number": user.to_string()},
                    "2": {"username": format!("v{user}"), "password": "pw2",
                          "display_name": "Second", "number": (user + 50_000).to_string()},
                },
                "funckeys": {
                    "1": {"type": "speeddial", "value": "1003", "label": "Carol", "line": 1},
                    "2": {"type": "blf", "value": "1004", "label": "Dave", "line": 1},
                    "3": {"type": "park", "value": "701", "label": "Park 701"},
                    "5": {"type": "speeddial", "value": "0612345678", "label": "Mobile"},
                },
            })),
            ..Config::default()
        },
    );
    configs.effective(&"dev".into()).unwrap()
}

fn render(c: &mut Criterion) {
    let devices: Vec<(Mac, RawConfig)> = (0..DEVICES)
        .map(|n| {
            let mac: Mac = format!("00:15:65:00:{:02x}:{:02x}", n / 256, n % 256)
                .parse()
                .unwrap();
            (mac, effective(n))
        })
        .collect();
    let plugin = Yealink::new();
    let mut group = c.benchmark_group("provisioning/render-yealink-10k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(DEVICES as u64));
    group.bench_function("pbxkit", |b| {
        b.iter(|| {
            for (mac, raw) in &devices {
                black_box(plugin.render(*mac, Some("T46S"), raw).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
