//! `sipcheck FILE...`: parses each file as one SIP message (exact bytes) and prints
//! `FILE: OK <method or status>` or `FILE: ERR <kind>: <message>`. Exits 0 when all
//! parse, 1 otherwise (2 on usage errors).
//!
//! ```sh
//! cargo run -p pbxkit-sip --example sipcheck -- sip-core/tests/rfc4475/*.sip
//! ```

use pbxkit_sip::{Message, StartLine};
use std::process::ExitCode;

fn check(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("io: {e}"))?;
    let message = Message::parse(bytes).map_err(|e| format!("{}: {e}", e.kind))?;
    Ok(match &message.start {
        StartLine::Request { method, .. } => method.to_string(),
        StartLine::Response { code, .. } => code.to_string(),
    })
}

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: sipcheck FILE...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for file in &files {
        match check(file) {
            Ok(what) => println!("{file}: OK {what}"),
            Err(why) => {
                failed = true;
                // One line per file, whatever the message held.
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
