//! `pbxkit`: the reference PBX built on the pbxkit crates.
//!
//! With no argument it runs on the embedded default configuration and prints the
//! ports it uses and the users that can register. `pbxkit --config FILE` runs on a file.

mod config;

use config::Config;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (source, text) = match args.as_slice() {
        [] => ("embedded default".to_owned(), config::DEFAULT.to_owned()),
        [flag, file] if flag == "--config" => match std::fs::read_to_string(file) {
            Ok(text) => (file.clone(), text),
            Err(e) => {
                eprintln!("pbxkit: cannot read {file}: {e}");
                return ExitCode::FAILURE;
            }
        },
        [flag] if flag == "--print-default-config" => {
            print!("{}", config::DEFAULT);
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("usage: pbxkit [--config FILE | --print-default-config]");
            return ExitCode::from(2);
        }
    };
    let config = match Config::parse(&text) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pbxkit: {source}: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_banner(&source, &config);

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pbxkit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => {
                println!("pbxkit: interrupted, stopping");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pbxkit: cannot listen for Ctrl-C: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn print_banner(source: &str, config: &Config) {
    println!(
        "pbxkit {} (pbxkit-sip {}) on {source} configuration",
        env!("CARGO_PKG_VERSION"),
        pbxkit_sip::VERSION
    );
    // The call services land one by one (see README); the ports are final already.
    println!("ports:");
    println!("  SIP           udp+tcp {}", config.sip.listen);
    println!(
        "  RTP           udp {}-{}",
        config.rtp.port_min, config.rtp.port_max
    );
    println!("  HTTP API      tcp {}", config.http.listen);
    println!("  provisioning  tcp {}", config.provisioning.http_listen);
    println!("users (SIP username = extension):");
    for user in &config.users {
        println!(
            "  {:<6} password {:<12} {}",
            user.exten, user.password, user.name
        );
    }
    println!("extensions:");
    for ext in &config.extensions {
        println!("  {:<6} {}", ext.exten, ext.does);
    }
    println!("ready (signalling not served yet in this release); press Ctrl-C to stop");
}
