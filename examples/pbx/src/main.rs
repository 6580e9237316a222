//! `pbxkit`: the reference PBX built on the pbxkit crates.
//!
//! With no argument it runs on the embedded default configuration and prints the
//! ports it uses and the users that can register, with passwords generated on first
//! run (kept in `data_dir/passwords.json`). `pbxkit --config FILE` runs on a
//! file; `pbxkit check-config FILE` validates one.

mod agents;
mod api;
mod apps;
mod ban;
mod cdr;
mod codecs;
mod conference;
mod config;
mod control;
mod events;
mod features;
mod ids;
mod ivr;
mod journal;
mod live;
mod mail;
mod media;
mod moh;
mod passwords;
mod prompts;
mod provision;
mod recording;
mod routing;
mod session;
mod shell;
mod store;
mod subscriptions;
mod tools;
mod voicemail;

use clap::{Parser, Subcommand};
use config::Config;
use std::process::ExitCode;
use std::sync::Arc;

/// The pbxkit reference PBX.
#[derive(Debug, Parser)]
#[command(name = "pbxkit", version, about)]
struct Cli {
    /// Configuration file (TOML); the embedded default when absent.
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file; errors are printed as FILE:LINE:COL: message.
    #[command(after_help = "Example:\n  pbxkit check-config pbx.toml")]
    CheckConfig {
        /// The file to check.
        file: String,
    },
    /// SIP message tools.
    Sip {
        #[command(subcommand)]
        command: tools::SipCommand,
    },
    /// Dialplan tools: pattern order and matching.
    Dialplan {
        #[command(subcommand)]
        command: tools::DialplanCommand,
    },
    /// Call-centre tools: skill rules, queue statistics.
    Acd {
        #[command(subcommand)]
        command: tools::AcdCommand,
    },
    /// Provisioning tools: render templates, identify phones.
    Provisioning {
        #[command(subcommand)]
        command: tools::ProvisioningCommand,
    },
    /// Directory tools over a CSV file: search and reverse lookup.
    Directory {
        #[command(subcommand)]
        command: tools::DirectoryCommand,
    },
}

/// Parses and checks a configuration, the dialplan it makes included (a bad route
/// pattern is a configuration error, found before start-up).
fn load(source: &str, text: &str) -> Result<Config, String> {
    let config = Config::parse(text).map_err(|e| e.describe(source))?;
    routing::dialplan(&config).map_err(|e| format!("{source}: {e}"))?;
    api::check(&config).map_err(|e| format!("{source}: {e}"))?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", config::DEFAULT);
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Sip { command }) => return tools::sip(command),
        Some(Command::Dialplan { command }) => return tools::dialplan(command),
        Some(Command::Acd { command }) => return tools::acd(command),
        Some(Command::Provisioning { command }) => return tools::provisioning(command),
        Some(Command::Directory { command }) => return tools::directory(command),
        _ => {}
    }
    if let Some(Command::CheckConfig { file }) = &cli.command {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{file}: cannot read: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match load(file, &text) {
            Ok(config) => {
                // Weak passwords are warnings: a file's passwords are used as written.
                for (name, password) in passwords::accounts(&config) {
                    if let Some(weakness) = passwords::weakness(name, password) {
                        eprintln!("{file}: warning: {weakness}");
                    }
                }
                println!("{file}: OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let (source, text) = match &cli.config {
        None => ("embedded default".to_owned(), config::DEFAULT.to_owned()),
        Some(file) => match std::fs::read_to_string(file) {
            Ok(text) => (file.clone(), text),
            Err(e) => {
                eprintln!("pbxkit: cannot read {file}: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut config = match load(&source, &text) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pbxkit: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut passwords_file = None;
    if cli.config.is_none() {
        // The embedded default is public: its example passwords must not guard a
        // running PBX. Random ones, generated on first run, are kept in data_dir.
        let config = &mut config;
        match passwords::apply_generated(
            &config.pbx.data_dir,
            &mut config.users,
            &mut config.api_users,
        ) {
            Ok(file) => passwords_file = Some(file),
            Err(e) => {
                eprintln!("pbxkit: cannot set up the users' passwords: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let config = Arc::new(config);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // One worker per core unless configured.
    let workers = match config.pbx.workers {
        0 => std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
        n => n,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pbxkit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if passwords_file.is_none() {
        for (name, password) in passwords::accounts(&config) {
            if let Some(weakness) = passwords::weakness(name, password) {
                tracing::warn!(file = %source, "{weakness}");
            }
        }
    }
    runtime.block_on(serve(source, cli.config, config, passwords_file))
}

/// Re-reads `file` on every SIGHUP and hands the checked, compiled configuration to
/// the service; a file that does not load is logged and the PBX goes on with the
/// configuration it has.
fn reload_on_sighup(file: Option<String>) -> tokio::sync::mpsc::Receiver<shell::Reload> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let hangup = signal(SignalKind::hangup());
        tokio::spawn(async move {
            let Ok(mut hangup) = hangup else {
                tracing::warn!("cannot listen for SIGHUP: no reload");
                return;
            };
            while hangup.recv().await.is_some() {
                let Some(file) = &file else {
                    tracing::warn!("SIGHUP: running on the embedded default, nothing to reload");
                    continue;
                };
                let path = file.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{path}: cannot read: {e}"))?;
                    let config = load(&path, &text)?;
                    let dialplan = routing::dialplan(&config)?;
                    Ok::<_, String>(shell::Reload {
                        config: Arc::new(config),
                        dialplan: Arc::new(dialplan),
                    })
                })
                .await;
                match loaded {
                    Ok(Ok(reload)) => {
                        if tx.send(reload).await.is_err() {
                            return;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "reload refused; the running configuration stays")
                    }
                    Err(e) => tracing::error!(error = %e, "reload failed"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop((tx, file));
    rx
}

async fn serve(
    source: String,
    file: Option<String>,
    config: Arc<Config>,
    passwords_file: Option<std::path::PathBuf>,
) -> ExitCode {
    // First, before any file of the data directory is opened: one PBX per data
    // directory (its control socket says whether another one runs).
    let (control_tx, control) = control::channel();
    match std::fs::create_dir_all(&config.pbx.data_dir)
        .and_then(|()| control::serve(&config.pbx.data_dir, control_tx.clone()))
    {
        Ok(()) => {}
        Err(e) => {
            eprintln!("pbxkit: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = match store::FileStore::open(&config.pbx.data_dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("pbxkit: cannot open {}: {e}", config.pbx.data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    let (cdr, cdr_writer) = match cdr::open(&config.pbx.data_dir) {
        Ok(cdr) => cdr,
        Err(e) => {
            eprintln!(
                "pbxkit: cannot open the CDR file in {}: {e}",
                config.pbx.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let queue_log_file = config.pbx.data_dir.join("queue_log");
    let (queue_log, queue_log_writer) = match journal::open(&queue_log_file, "queue_log") {
        Ok(journal) => journal,
        Err(e) => {
            eprintln!("pbxkit: cannot open {}: {e}", queue_log_file.display());
            return ExitCode::FAILURE;
        }
    };
    let dialplan = match routing::dialplan(&config) {
        Ok(dialplan) => Arc::new(dialplan),
        Err(e) => {
            eprintln!("pbxkit: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bus = events::Bus::new();
    let users = match live::Users::open(
        Arc::new(live::FileUserStore::new(&config.pbx.data_dir)),
        bus.clone(),
    )
    .await
    {
        Ok(users) => users,
        Err(e) => {
            eprintln!("pbxkit: cannot read the users' live state: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = stop_signal();
    let limits = pbxkit_sip::StreamLimits::default();
    let sockets = match pbxkit_sip::transports::Transports::bind(config.sip.listen, limits).await {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("pbxkit: cannot listen on {}: {e}", config.sip.listen);
            return ExitCode::FAILURE;
        }
    };
    let (config_tx, config_rx) = tokio::sync::watch::channel(config.clone());
    let api = api::Services {
        config: config_rx.clone(),
        shell: control_tx,
        users: users.clone(),
        bus: bus.clone(),
        node: config.pbx.node_id.clone(),
    };
    let provisioning = match provision::serve(
        config.provisioning.http_listen,
        config_rx.clone(),
        sockets.local_addr(),
    )
    .await
    {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!(
                "pbxkit: cannot listen on {} (provisioning): {e}",
                config.provisioning.http_listen
            );
            return ExitCode::FAILURE;
        }
    };
    let api = match api::serve(config.http.listen, api).await {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!(
                "pbxkit: cannot listen on {} (the REST API): {e}",
                config.http.listen
            );
            return ExitCode::FAILURE;
        }
    };
    print_banner(
        &source,
        &config,
        [sockets.local_addr(), api, provisioning],
        passwords_file.as_deref(),
    );
    let parts = shell::Parts {
        store,
        cdr,
        queue_log,
        users,
        bus,
        control,
        api_config: config_tx,
    };
    let reloads = reload_on_sighup(file);
    if let Err(e) = shell::run(config, dialplan, sockets, parts, reloads, stop).await {
        eprintln!("pbxkit: {e}");
        return ExitCode::FAILURE;
    }
    // Calls have ended (or the grace period is over): their CDRs are queued.
    cdr_writer.finish();
    queue_log_writer.finish();
    println!("pbxkit: stopped");
    ExitCode::SUCCESS
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called (before the
/// PBX says it is ready), not when the future is first polled: a signal that
/// arrives in between must stop the PBX cleanly, not kill it.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn print_banner(
    source: &str,
    config: &Config,
    [sip, api, provisioning]: [std::net::SocketAddr; 3],
    passwords_file: Option<&std::path::Path>,
) {
    println!(
        "pbxkit {} (pbxkit-sip {}) on {source} configuration",
        env!("CARGO_PKG_VERSION"),
        pbxkit_sip::VERSION
    );
    println!("ports:");
    println!("  SIP           udp+tcp {sip} (realm {})", config.sip.realm);
    println!(
        "  RTP           udp {}-{} (media relay)",
        config.rtp.port_min, config.rtp.port_max
    );
    println!("  HTTP API      tcp {api} (REST, WebSocket /events; OpenAPI at /api/api.yml)");
    println!("  provisioning  tcp {provisioning} (HTTP: the [[devices]] phones' files)");
    println!(
        "registrations are kept in {}, call records (CDR) in {}",
        config.pbx.data_dir.display(),
        config.pbx.data_dir.join("cdr.jsonl").display()
    );
    match passwords_file {
        Some(file) => println!(
            "users (SIP username = extension; passwords generated on first run, kept in {}):",
            file.display()
        ),
        None => println!("users (SIP username = extension):"),
    }
    for user in &config.users {
        println!(
            "  {:<6} password {:<12} {}",
            user.exten, user.password, user.name
        );
    }
    for account in &config.api_users {
        println!(
            "API user {} password {} (ACL {}): POST /token with these for a token",
            account.name,
            account.password,
            account.acl.join(" ")
        );
    }
    println!("extensions:");
    for ext in &config.extensions {
        println!("  {:<6} {}", ext.exten, ext.app.describe());
    }
    if !config.groups.is_empty() {
        println!("groups:");
        for g in &config.groups {
            println!(
                "  {:<6} {} ({}: {})",
                g.exten,
                g.name,
                g.strategy,
                g.members.join(", ")
            );
        }
    }
    for q in &config.queues {
        let agents: Vec<&str> = config
            .agents
            .iter()
            .filter(|a| a.queues.contains(&q.name))
            .map(|a| a.number.as_str())
            .collect();
        println!(
            "queue {:<6} {} ({}; agents {}: log in with *31<agent>, off *32, pause *34[<queue>][*<reason>], unpause *35[<queue>])",
            q.exten,
            q.name,
            q.strategy,
            agents.join(", ")
        );
    }
    for room in &config.conferences {
        let mut notes = Vec::new();
        if room.pin.is_some() {
            notes.push("PIN".to_owned());
        }
        if room.max_participants > 0 {
            notes.push(format!("at most {}", room.max_participants));
        }
        notes.push("*1 mutes".to_owned());
        println!(
            "conference {:<6} {} ({})",
            room.exten,
            room.name,
            notes.join(", ")
        );
    }
    for ivr in &config.ivrs {
        let choices: Vec<String> = ivr
            .choices
            .iter()
            .map(|(key, to)| format!("{key}: {to}"))
            .collect();
        println!("ivr {:<6} {} ({})", ivr.exten, ivr.name, choices.join(", "));
    }
    if !config.voicemails.is_empty() {
        let boxes: Vec<&str> = config
            .voicemails
            .iter()
            .map(|v| v.number.as_str())
            .collect();
        println!(
            "voicemail {} (leave a message when unanswered; listen with *98 from the owner's phone, *99<box> with its PIN)",
            boxes.join(", ")
        );
    }
    println!("ready; press Ctrl-C to stop");
}
