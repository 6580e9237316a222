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
    Check {
        /// Files holding one message each.
        #[arg(required = true)]
        files: Vec<String>,
    },
}

/// ACD tools.
#[derive(Debug, Subcommand)]
pub(crate) enum AcdCommand {
    /// Parse a skill rule and print it fully parenthesised, or the error with its column.
    RuleCheck {
        /// The rule, e.g. `french > 50 & (sales | support ! 0) & WT < 60`.
        expr: String,
    },
}

pub(crate) fn acd(command: AcdCommand) -> ExitCode {
    match command {
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
#[derive(Debug, Subcommand)]
pub(crate) enum DialplanCommand {
    /// Print extensions and patterns in the order Asterisk tries them.
    Order {
        /// Extensions (`1000`) and patterns (`_1XXX`).
        #[arg(required = true)]
        patterns: Vec<String>,
    },
    /// Print the extension or pattern that wins for a number, or `no match`.
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

pub(crate) fn dialplan(command: DialplanCommand) -> ExitCode {
    match command {
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
                None => {
                    println!("no match");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
