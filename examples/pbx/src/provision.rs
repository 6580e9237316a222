//! The provisioning service: pbxkit-provisioning's HTTP server on `[provisioning]
//! http_listen`, serving each `[[devices]]` phone the configuration of its user's
//! line, as provd's plugins write it.
//!
//! Files are rendered when the phone asks, from the configuration in force: a
//! user's new name or password (a reload) is in the file the phone fetches next,
//! with nothing to regenerate. The request names the phone: its MAC from the
//! `User-Agent` (or the file name, for the phones that put it there), its vendor and
//! model choosing the plugin unless the device names one. The server address put in
//! the file is the PBX's SIP address as the phone reaches it (the local address
//! of the route to the phone when SIP listens on every interface).
//!
//! A file holds the line's password: the server listens on loopback unless the
//! operator opens it to the phones' network.

use crate::config::Config;
use pbxkit_provisioning::identify::{self, DeviceInfo};
use pbxkit_provisioning::mac::Mac;
use pbxkit_provisioning::model::{Configs, Device};
use pbxkit_provisioning::plugins::Registry;
use pbxkit_provisioning::server::http::{HttpConfig, HttpServer};
use pbxkit_provisioning::server::{MemoryFiles, RequestHook, RequestInfo};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::sync::watch;

/// Starts the server on `listen`; the address bound.
pub(crate) async fn serve(
    listen: SocketAddr,
    config: watch::Receiver<Arc<Config>>,
    sip: SocketAddr,
) -> std::io::Result<SocketAddr> {
    let files = Arc::new(MemoryFiles::default());
    let registry = Arc::new(Registry::builtin(|_| None));
    let hook_files = files.clone();
    let hook: RequestHook = Arc::new(move |request: RequestInfo<'_>| {
        let config = config.borrow().clone();
        let files = files_for(&config, &registry, &request, sip);
        if files.is_empty() {
            // A device removed since (or never configured): nothing left to serve.
            hook_files.remove(request.path);
        }
        for file in files {
            hook_files.insert(file.name, file.content);
        }
    });
    let server = HttpServer::bind(listen, files, HttpConfig::default())
        .await?
        .with_hook(hook);
    let local = server.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = server.run().await {
            tracing::error!(error = %e, "the provisioning server stopped");
        }
    });
    Ok(local)
}

/// Who asks, from its request.
fn identify(request: &RequestInfo<'_>) -> Option<DeviceInfo> {
    request
        .user_agent
        .and_then(identify::from_user_agent)
        .filter(|i| i.mac.is_some())
        .or_else(|| identify::from_filename(request.path))
}

/// The files of the configured device that sends `request` (none for a phone
/// the configuration does not list, or whose plugin can't be told).
fn files_for(
    config: &Config,
    registry: &Registry,
    request: &RequestInfo<'_>,
    sip: SocketAddr,
) -> Vec<pbxkit_provisioning::plugins::GeneratedFile> {
    let Some(info) = identify(request) else {
        return Vec::new();
    };
    let Some(mac) = info.mac else {
        return Vec::new();
    };
    let Some(device) = config
        .devices
        .iter()
        .find(|d| Mac::parse(&d.mac).ok() == Some(mac))
    else {
        return Vec::new();
    };
    let Some(user) = config.user(&device.user) else {
        return Vec::new();
    };
    let plugin = match &device.plugin {
        Some(name) => registry.get(name),
        None => registry.select(&info),
    };
    let Some(plugin) = plugin else {
        tracing::info!(peer = %request.peer, %mac, "no provisioning plugin for this phone");
        return Vec::new();
    };
    let address = reachable_address(sip, request.peer.ip());
    let raw = json!({
        "ip": address.to_string(),
        "sip_proxy_ip": address.to_string(),
        "sip_proxy_port": sip.port(),
        "sip_registrar_ip": address.to_string(),
        "sip_registrar_port": sip.port(),
        "exten_voicemail": "*98",
        "exten_dnd": "*25",
        "exten_fwd_unconditional": "*21",
        "exten_fwd_no_answer": "*22",
        "exten_fwd_busy": "*23",
        "exten_fwd_disable_all": "*20",
        "sip_lines": {
            "1": {
                "username": user.exten,
                "auth_username": user.exten,
                "password": user.password,
                "display_name": user.name,
                "number": user.exten,
                "voicemail": "*98",
            }
        }
    });
    let device_json = json!({
        "id": mac.to_string(),
        "mac": mac.to_string(),
        "ip": request.peer.ip().to_string(),
        "vendor": info.vendor,
        "model": info.model,
        "version": info.version,
        "plugin": plugin.name(),
        "config": "device",
    });
    let built = serde_json::from_value::<Device>(device_json).and_then(|device| {
        let config = serde_json::from_value(json!({ "id": "device", "raw_config": raw }))?;
        Ok((device, config))
    });
    let (device, device_config) = match built {
        Ok(built) => built,
        Err(e) => {
            tracing::warn!(error = %e, %mac, "provisioning: cannot describe the device");
            return Vec::new();
        }
    };
    let mut configs = Configs::new();
    configs.insert(
        pbxkit_provisioning::model::ConfigId("device".into()),
        device_config,
    );
    match pbxkit_provisioning::generate::device_files(&device, &configs, registry) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, %mac, "provisioning: files not generated");
            Vec::new()
        }
    }
}

/// The PBX's SIP address as a phone at `peer` reaches it: the listening address,
/// or when that is every interface, the local address of the route to the phone
/// (asked of the kernel by connecting a UDP socket: no packet is sent).
fn reachable_address(sip: SocketAddr, peer: IpAddr) -> IpAddr {
    if !sip.ip().is_unspecified() {
        return sip.ip();
    }
    let local = match peer {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    std::net::UdpSocket::bind(local)
        .and_then(|s| {
            s.connect((peer, 9))?;
            s.local_addr()
        })
        .map_or(sip.ip(), |a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_given_is_the_one_the_phone_reaches() {
        let any: SocketAddr = "0.0.0.0:5060"
            .parse()
            .unwrap_or(SocketAddr::from(([0; 4], 5060)));
        let loopback = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(reachable_address(any, loopback), loopback);
        let fixed = SocketAddr::from(([192, 0, 2, 7], 5060));
        assert_eq!(reachable_address(fixed, loopback), fixed.ip());
    }
}
