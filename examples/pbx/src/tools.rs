//! `pbxkit sip ...` and `pbxkit dialplan ...`: each crate's parsers and decisions from
//! the shell, as thin layers over their public APIs. Exit status 0 on success, 1 on a
//! reported error (message on stderr).

use clap::Subcommand;
use pbxkit_dialplan::{ExtensionTable, Pattern};
use pbxkit_sip::{Message, StartLine};
use std::process::ExitCode;

/// SIP tools.
#[derive(Debug, Subcommand)]
pub(crate) enum SipCommand {
    /// Parse each file as one SIP message (exact bytes); print `FILE: OK <METHOD or
    /// status>` or `FILE: ERR <kind>: <message>`.
    #[command(after_help = "Example:\n  pbxkit sip check invite.sip register.sip")]
    Check {
        /// Files holding one message each.
        #[arg(required = true)]
        files: Vec<String>,
    },
}

/// ACD tools.
#[derive(Debug, Subcommand)]
pub(crate) enum AcdCommand {
    /// Queue statistics per period from an Asterisk or pbxkit queue_log file.
    #[command(
        after_help = "Example:\n  pbxkit acd stats --period 1h --format table pbxkit-data/queue_log"
    )]
    Stats {
        /// The queue_log file.
        queue_log: std::path::PathBuf,
        /// Period length.
        #[arg(long, default_value = "15m", value_parser = ["15m", "1h", "1d"])]
        period: String,
        /// Service level threshold in seconds.
        #[arg(long = "sl", default_value_t = 15)]
        service_level: u64,
        /// Output format.
        #[arg(long, default_value = "json", value_parser = ["json", "table"])]
        format: String,
    },
    /// Parse a skill rule and print it fully parenthesised, or the error with its column.
    #[command(
        after_help = "Example:\n  pbxkit acd rule-check \"french > 50 & (sales | support ! 0)\""
    )]
    RuleCheck {
        /// The rule, e.g. `french > 50 & (sales | support ! 0) & WT < 60`.
        expr: String,
    },
    /// The running PBX's queues and agents now: waiting callers, longest wait,
    /// agents by state, the day's answered/abandoned/timeout counts and service
    /// level, each agent's state and times (asked on the PBX's control socket).
    #[command(after_help = "Example:\n  pbxkit acd live --data-dir pbxkit-data --format table")]
    Live {
        /// The PBX's data directory (its `pbx.data_dir`).
        #[arg(long, default_value = "pbxkit-data")]
        data_dir: std::path::PathBuf,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["json", "table"])]
        format: String,
    },
}

pub(crate) fn acd(command: AcdCommand) -> ExitCode {
    match command {
        AcdCommand::Stats {
            queue_log,
            period,
            service_level,
            format,
        } => {
            use pbxkit_acd::stats::{Period, StatsConfig, from_lines};
            let text = match std::fs::read(&queue_log) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => {
                    eprintln!("pbxkit acd stats: {}: {e}", queue_log.display());
                    return ExitCode::FAILURE;
                }
            };
            let mut lines = Vec::new();
            let mut malformed = 0;
            for parsed in pbxkit_acd::queue_log::parse_lines(&text) {
                match parsed {
                    Ok(line) => lines.push(line),
                    Err(e) => {
                        malformed += 1;
                        eprintln!("{}: {e}", queue_log.display());
                    }
                }
            }
            if malformed > 0 {
                eprintln!(
                    "{}: {malformed} malformed line(s) skipped",
                    queue_log.display()
                );
            }
            let period = match period.as_str() {
                "1h" => Period::Hour,
                "1d" => Period::Day,
                _ => Period::FifteenMinutes,
            };
            let config = StatsConfig {
                period,
                service_level,
                ..StatsConfig::default()
            };
            let stats = from_lines(&lines, &config);
            if format == "table" {
                println!(
                    "{:<16} {:<20} {:>8} {:>8} {:>9} {:>7} {:>6} {:>6} {:>8} {:>8}",
                    "queue",
                    "period start (UTC)",
                    "received",
                    "answered",
                    "abandoned",
                    "timeout",
                    "closed",
                    "full",
                    "ans_rate",
                    "sl"
                );
                for s in &stats {
                    // The JSON keeps Unix seconds; people read a date.
                    let start = i64::try_from(s.period_start)
                        .ok()
                        .and_then(|t| jiff::Timestamp::from_second(t).ok())
                        .map_or_else(
                            || s.period_start.to_string(),
                            |t| t.strftime("%Y-%m-%d %H:%M").to_string(),
                        );
                    println!(
                        "{:<16} {:<20} {:>8} {:>8} {:>9} {:>7} {:>6} {:>6} {:>8.3} {:>8.3}",
                        s.queue,
                        start,
                        s.received,
                        s.answered,
                        s.abandoned,
                        s.timeout,
                        s.closed,
                        s.full,
                        s.answered_rate,
                        s.service_level
                    );
                }
            } else {
                match serde_json::to_string_pretty(&stats) {
                    Ok(json) => println!("{json}"),
                    Err(e) => {
                        eprintln!("pbxkit acd stats: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        AcdCommand::Live { data_dir, format } => match crate::control::ask(&data_dir, "live") {
            Ok(live) => {
                if format == "json" {
                    println!("{live}");
                } else {
                    print!("{}", live_table(&live));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pbxkit acd live: {e}");
                ExitCode::FAILURE
            }
        },
        AcdCommand::RuleCheck { expr } => match expr.parse::<pbxkit_acd::skills::Expr>() {
            Ok(rule) => {
                println!("{rule}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pbxkit acd rule-check: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Dialplan tools.
/// `pbxkit acd live`'s tables: one line per queue, then one per agent.
fn live_table(live: &serde_json::Value) -> String {
    use std::fmt::Write;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let empty = Vec::new();
    let rows = |key: &str| {
        live.get(key)
            .and_then(|v| v.as_array())
            .unwrap_or(&empty)
            .clone()
    };
    // A pause everywhere, else each queue's: `support: lunch, sales: Auto-Pause`.
    let reason = |a: &serde_json::Value| match a["paused_reason"].as_str() {
        Some(r) => r.to_owned(),
        None => a["paused_in"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(q, r)| format!("{q}: {}", text(r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>6} {:>7} {:>7} {:>5} {:>6} {:>5} {:>7} {:>8} {:>8} {:>9} {:>7} {:>5}",
        "queue",
        "number",
        "waiting",
        "longest",
        "ewt",
        "logged",
        "avail",
        "talking",
        "received",
        "answered",
        "abandoned",
        "timeout",
        "sl"
    );
    for q in rows("queues") {
        let sl = q["service_level"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0));
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>7} {:>6}s {:>4}s {:>6} {:>5} {:>7} {:>8} {:>8} {:>9} {:>7} {:>5}",
            text(&q["name"]),
            text(&q["number"]),
            text(&q["waiting"]),
            text(&q["longest_wait"]),
            text(&q["expected_wait"]),
            text(&q["logged"]),
            text(&q["available"]),
            text(&q["talking"]),
            text(&q["received"]),
            text(&q["answered"]),
            text(&q["abandoned"]),
            text(&q["timeout"]),
            sl
        );
    }
    let _ = writeln!(
        out,
        "\n{:<8} {:<8} {:<10} {:>7} {:>7} {:>8} {:>8} {:>8} {:>10}  reason",
        "agent",
        "phone",
        "state",
        "ready",
        "paused",
        "wrap_up",
        "on_call",
        "answered",
        "unanswered",
    );
    for a in rows("agents") {
        let _ = writeln!(
            out,
            "{:<8} {:<8} {:<10} {:>6}s {:>6}s {:>7}s {:>7}s {:>8} {:>10}  {}",
            text(&a["number"]),
            text(&a["phone"]),
            text(&a["state"]),
            text(&a["ready"]),
            text(&a["paused"]),
            text(&a["wrap_up"]),
            text(&a["on_call"]),
            text(&a["answered"]),
            text(&a["unanswered"]),
            reason(&a),
        );
    }
    // What the call centre costs inside the PBX: its steps, of which its decisions.
    let mut first = true;
    for (key, what) in [("steps", "ACD steps"), ("decisions", "of which decisions")] {
        let f = &live["acd"][key];
        let Some(count) = f["count"].as_u64().filter(|n| *n > 0) else {
            continue;
        };
        let us = |key: &str| f[key].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{}{what}: {count}, median {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            if first { "\n" } else { "" },
            us("median_us"),
            us("p99_us"),
            us("max_us")
        );
        first = false;
    }
    out
}

#[derive(Debug, Subcommand)]
pub(crate) enum DialplanCommand {
    /// Print extensions and patterns in the order Asterisk tries them.
    #[command(after_help = "Example:\n  pbxkit dialplan order _X. _1XXX 1000 _NXXX")]
    Order {
        /// Extensions (`1000`) and patterns (`_1XXX`).
        #[arg(required = true)]
        patterns: Vec<String>,
    },
    /// The decision for a call on the PBX configuration and the rules that led to it.
    #[command(after_help = "Example:\n  pbxkit dialplan explain --from 1000 --number 9000")]
    Explain {
        /// PBX configuration file (the embedded default when absent).
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
        /// The calling user's extension.
        #[arg(long)]
        from: String,
        /// The dialled number.
        #[arg(long)]
        number: String,
        /// When the call happens (RFC 3339; now when absent).
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
    },
    /// Print the extension or pattern that wins for a number, or `no match`.
    #[command(after_help = "Example:\n  pbxkit dialplan match --number 1042 _1XXX _10XX")]
    Match {
        /// The dialled number.
        #[arg(long)]
        number: String,
        /// Extensions and patterns to choose from.
        #[arg(required = true)]
        patterns: Vec<String>,
    },
}

pub(crate) fn sip(command: SipCommand) -> ExitCode {
    match command {
        SipCommand::Check { files } => {
            let mut failed = false;
            for file in files {
                let line = match std::fs::read(&file) {
                    Err(e) => Err(format!("io: {e}")),
                    Ok(bytes) => Message::parse(bytes)
                        .map_err(|e| format!("{}: {e}", e.kind))
                        .map(|m| match &m.start {
                            StartLine::Request { method, .. } => method.to_string(),
                            StartLine::Response { code, .. } => code.to_string(),
                        }),
                };
                match line {
                    Ok(what) => println!("{file}: OK {what}"),
                    Err(why) => {
                        failed = true;
                        let why: String = why
                            .chars()
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .collect();
                        println!("{file}: ERR {why}");
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

fn patterns(texts: &[String]) -> Result<Vec<Pattern>, String> {
    texts
        .iter()
        .map(|t| Pattern::parse(t).map_err(|e| format!("{t}: {e}")))
        .collect()
}

fn explain(
    config: Option<String>,
    from: &str,
    number: &str,
    at: Option<String>,
) -> Result<String, String> {
    let (source, text) = match &config {
        Some(file) => (
            file.clone(),
            std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?,
        ),
        None => (
            "embedded default".to_owned(),
            crate::config::DEFAULT.to_owned(),
        ),
    };
    let config = crate::config::Config::parse(&text).map_err(|e| e.describe(&source))?;
    let dialplan = crate::routing::dialplan(&config)?;
    let at: jiff::Timestamp = match at {
        Some(t) => t.parse().map_err(|e| format!("--at {t}: {e}"))?,
        None => jiff::Timestamp::now(),
    };
    let caller = config
        .user(from)
        .ok_or_else(|| format!("--from {from}: no such user"))?;
    // As the engine: a service extension is answered before the dialplan is asked.
    if let Some(ext) = config.extension(number) {
        return Ok(format!(
            "extension            DECIDED '{number}' is a service extension of the PBX\n\
             => answered by the PBX: {}",
            ext.app.describe()
        ));
    }
    let attempt = pbxkit_dialplan::CallAttempt {
        context: "default",
        caller: pbxkit_dialplan::Caller {
            number: &caller.exten,
            name: &caller.name,
            user: Some(&caller.exten),
        },
        dialed: number,
        at,
        user_state: &(),
    };
    match dialplan.decide(&attempt) {
        Ok(routed) => Ok(routed.to_string()),
        // What the engine does with a number the dialplan does not route.
        Err(e) => Ok(format!(
            "lookup               DECIDED {e}\n=> refused with 404 Not Found"
        )),
    }
}

pub(crate) fn dialplan(command: DialplanCommand) -> ExitCode {
    match command {
        DialplanCommand::Explain {
            config,
            from,
            number,
            at,
        } => match explain(config, &from, &number, at) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pbxkit dialplan explain: {e}");
                ExitCode::FAILURE
            }
        },
        DialplanCommand::Order { patterns: texts } => match patterns(&texts) {
            Ok(mut list) => {
                list.sort();
                for p in list {
                    println!("{}", p.as_str());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pbxkit dialplan order: {e}");
                ExitCode::FAILURE
            }
        },
        DialplanCommand::Match {
            number,
            patterns: texts,
        } => {
            let list = match patterns(&texts) {
                Ok(list) => list,
                Err(e) => {
                    eprintln!("pbxkit dialplan match: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut table = ExtensionTable::new();
            for p in list {
                // Patterns equal in Asterisk's order are the same entry: keep the first.
                let _ = table.insert(p, ());
            }
            match table.lookup(&number) {
                Some((p, ())) => {
                    println!("{}", p.as_str());
                    ExitCode::SUCCESS
                }
                // Nothing found is an answer, not an error: exit 0, as every tool.
                None => {
                    println!("no match");
                    ExitCode::SUCCESS
                }
            }
        }
    }
}

/// Provisioning tools.
#[derive(Debug, Subcommand)]
pub(crate) enum ProvisioningCommand {
    /// Render a template with a JSON object as its context; the output is byte-exact.
    #[command(
        after_help = "Example:\n  pbxkit provisioning render --templates ./mine --templates ./plugin --context ctx.json T46S.tpl"
    )]
    Render {
        /// Template directories, searched in the order given (the first that has a
        /// template wins).
        #[arg(long = "templates", value_name = "DIR", required = true)]
        templates: Vec<std::path::PathBuf>,
        /// A JSON object: the template's context.
        #[arg(long, value_name = "FILE.json")]
        context: std::path::PathBuf,
        /// The template to render, e.g. `base.tpl` or `T46S.tpl`.
        template: String,
    },
    /// Identify a phone from what it sends; prints vendor, model, version, mac as JSON.
    #[command(
        after_help = "Example:\n  pbxkit provisioning identify --user-agent \"Yealink SIP-T46S 66.84.0.15 80:5e:c0:11:22:33\""
    )]
    Identify {
        /// An HTTP User-Agent.
        #[arg(long, group = "source")]
        user_agent: Option<String>,
        /// A TFTP (or HTTP) file name the phone asked for.
        #[arg(long, group = "source")]
        tftp_file: Option<String>,
        /// A DHCP option 60 vendor class.
        #[arg(long, group = "source")]
        dhcp_vendor: Option<String>,
    },
}

pub(crate) fn provisioning(command: ProvisioningCommand) -> ExitCode {
    use pbxkit_provisioning::identify;
    use pbxkit_provisioning::template::{TemplateDir, Templates};
    match command {
        ProvisioningCommand::Render {
            templates,
            context,
            template,
        } => {
            let text = match std::fs::read_to_string(&context) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("pbxkit provisioning render: {}: {e}", context.display());
                    return ExitCode::FAILURE;
                }
            };
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(serde_json::Value::Object(map)) => serde_json::Value::Object(map),
                Ok(_) => {
                    eprintln!(
                        "pbxkit provisioning render: {}: the context must be a JSON object",
                        context.display()
                    );
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!(
                        "pbxkit provisioning render: {}:{}:{}: {e}",
                        context.display(),
                        e.line(),
                        e.column()
                    );
                    return ExitCode::FAILURE;
                }
            };
            let engine = Templates::new(templates.into_iter().map(TemplateDir::Dir));
            match engine.render(&template, &value) {
                Ok(out) => {
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    if stdout
                        .write_all(out.as_bytes())
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pbxkit provisioning render: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ProvisioningCommand::Identify {
            user_agent,
            tftp_file,
            dhcp_vendor,
        } => {
            let found = match (user_agent, tftp_file, dhcp_vendor) {
                (Some(ua), _, _) => identify::from_user_agent(&ua),
                (_, Some(file), _) => identify::from_filename(&file),
                (_, _, Some(vci)) => identify::from_dhcp_vendor_class(&vci),
                _ => {
                    eprintln!(
                        "pbxkit provisioning identify: give --user-agent, --tftp-file or --dhcp-vendor"
                    );
                    return ExitCode::FAILURE;
                }
            };
            let Some(info) = found else {
                eprintln!("pbxkit provisioning identify: not recognised");
                return ExitCode::FAILURE;
            };
            let mut json = serde_json::Map::new();
            for (key, value) in [
                ("vendor", info.vendor),
                ("model", info.model),
                ("version", info.version),
                ("mac", info.mac.map(|m| m.to_string())),
            ] {
                if let Some(v) = value {
                    json.insert(key.to_owned(), serde_json::Value::String(v));
                }
            }
            println!("{}", serde_json::Value::Object(json));
            ExitCode::SUCCESS
        }
    }
}

/// Directory tools over a CSV file.
#[derive(Debug, Subcommand)]
pub(crate) enum DirectoryCommand {
    /// Contacts with a column containing TERM (case-insensitive), as JSON lines.
    #[command(after_help = "Example:\n  pbxkit directory search --csv people.csv martin")]
    Search {
        /// The CSV file (first line: column names).
        #[arg(long)]
        csv: std::path::PathBuf,
        /// The field delimiter.
        #[arg(long, default_value = ",")]
        delimiter: char,
        /// Columns to search (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// The text to look for.
        term: String,
    },
    /// Contacts whose number columns hold NUMBER (spaces, dots, +/00 ignored), as JSON lines.
    #[command(
        after_help = "Example:\n  pbxkit directory reverse --csv people.csv --country-code 33 \"+33 6 12 34 56 78\""
    )]
    Reverse {
        /// The CSV file (first line: column names).
        #[arg(long)]
        csv: std::path::PathBuf,
        /// The field delimiter.
        #[arg(long, default_value = ",")]
        delimiter: char,
        /// Number columns (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// The local country code (digits, e.g. 33): `+33 6 98…` then finds `06 98…`.
        #[arg(long)]
        country_code: Option<String>,
        /// The calling number.
        number: String,
    },
}

pub(crate) fn directory(command: DirectoryCommand) -> ExitCode {
    use pbxkit_directory::index::ContactIndex;
    use pbxkit_directory::number::NumberPlan;
    use pbxkit_directory::source::SourceConfig;
    let (csv, delimiter, columns, reverse, country_code, query) = match command {
        DirectoryCommand::Search {
            csv,
            delimiter,
            columns,
            term,
        } => (csv, delimiter, columns, false, None, term),
        DirectoryCommand::Reverse {
            csv,
            delimiter,
            columns,
            country_code,
            number,
        } => (csv, delimiter, columns, true, country_code, number),
    };
    if let Some(cc) = &country_code
        && (cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()))
    {
        eprintln!("pbxkit directory: --country-code {cc:?}: one to three digits (33, 1, 351)");
        return ExitCode::FAILURE;
    }
    let data = match std::fs::read(&csv) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("pbxkit directory: {}: {e}", csv.display());
            return ExitCode::FAILURE;
        }
    };
    let records = match pbxkit_directory::csv_source::parse(&data, delimiter) {
        Ok(records) => records,
        Err(e) => {
            eprintln!("pbxkit directory: {}: {e}", csv.display());
            return ExitCode::FAILURE;
        }
    };
    let known: Vec<String> = records
        .first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    // A misspelt column would silently find nothing.
    if let Some(unknown) = columns
        .iter()
        .find(|c| !records.is_empty() && !known.contains(c))
    {
        eprintln!(
            "pbxkit directory: {}: no column {unknown:?} (columns: {})",
            csv.display(),
            known.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let columns = if columns.is_empty() { known } else { columns };
    let mut config = SourceConfig::named("csv");
    config.searched_columns = columns.clone();
    config.first_matched_columns = columns;
    let plan = country_code
        .as_deref()
        .map_or_else(NumberPlan::default, NumberPlan::with_country_code);
    let index = ContactIndex::build(&config, &plan, records);
    let found: Vec<&pbxkit_directory::Contact> = if reverse {
        index.reverse(&plan, &query).collect()
    } else {
        index.search(&query).collect()
    };
    for contact in found {
        let fields: serde_json::Map<String, serde_json::Value> = contact
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        println!("{}", serde_json::Value::Object(fields));
    }
    ExitCode::SUCCESS
}
