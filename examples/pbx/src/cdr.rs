//! Call detail records: one JSON object per line in `<data_dir>/cdr.jsonl`, one line
//! per call, written when the call ends.
//!
//! Durability: records go to a writer thread that appends every record waiting, then
//! calls `fsync` (`sync_data`) once for the batch (group commit). A record is on disk
//! when the batch's fsync returns; a crash can lose at most the batch being written,
//! never a line already synced, and a torn last line is the only damage it can leave
//! (readers skip a last line that does not parse). At shutdown the thread drains
//! what is queued before the PBX exits.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// How a call ended, with Asterisk's disposition names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Disposition {
    /// Answered.
    #[serde(rename = "ANSWERED")]
    Answered,
    /// Rang until the ring time or the caller hung up first.
    #[serde(rename = "NO ANSWER")]
    NoAnswer,
    /// The callee was busy.
    #[serde(rename = "BUSY")]
    Busy,
    /// Anything else: unknown number, unreachable, refused.
    #[serde(rename = "FAILED")]
    Failed,
}

/// One call.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Record {
    /// When the INVITE arrived, Unix seconds with milliseconds.
    pub(crate) start: f64,
    /// When the callee answered.
    pub(crate) answer: Option<f64>,
    /// When the call ended.
    pub(crate) end: f64,
    /// The caller's extension.
    pub(crate) src: String,
    /// The dialed number.
    pub(crate) dst: String,
    /// The caller's Call-ID.
    pub(crate) call_id: String,
    pub(crate) disposition: Disposition,
    /// The SIP status the caller got when the call was not answered.
    pub(crate) status: Option<u16>,
    /// Seconds from start to end, and from answer to end.
    pub(crate) duration: f64,
    pub(crate) billsec: f64,
    /// Who hung up an answered call: `caller`, `callee`, `transfer`, `timer` (session
    /// timer expired) or `pbx` (shutdown, limits).
    pub(crate) hangup_by: Option<&'static str>,
    /// The Q.850 cause the call ended with: 16 (normal clearing) or what the Reason
    /// of the BYE said for answered calls, the caller's status mapped (RFC 3398) for
    /// the others.
    pub(crate) hangup_cause: u8,
}

/// Unix time now, in seconds with milliseconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

impl Record {
    /// A record whose durations are computed from its times.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        start: f64,
        answer: Option<f64>,
        src: &str,
        dst: &str,
        call_id: &str,
        disposition: Disposition,
        status: Option<u16>,
        hangup: Option<pbxkit::hangup::HangupCause>,
    ) -> Record {
        let end = now();
        let round = |s: f64| (s.max(0.0) * 1000.0).round() / 1000.0;
        Record {
            start,
            answer,
            end,
            src: src.to_owned(),
            dst: dst.to_owned(),
            call_id: call_id.to_owned(),
            disposition,
            status,
            duration: round(end - start),
            billsec: answer.map_or(0.0, |a| round(end - a)),
            hangup_by: hangup.map(pbxkit::hangup::HangupCause::who),
            // An answered call's cause is how it ended; another's, its status.
            hangup_cause: match hangup {
                Some(cause) => cause.q850(),
                None => status.and_then(pbxkit_sip::StatusCode::new).map_or(
                    pbxkit_sip::cause::NORMAL_CLEARING,
                    pbxkit_sip::cause::cause_for_status,
                ),
            },
        }
    }
}

/// What the writer thread is sent.
enum Msg {
    Record(Box<Record>),
    /// Write what came before, then stop.
    Stop,
}

/// Sends records to the writer thread. Cloned into each call.
#[derive(Debug, Clone)]
pub(crate) struct Cdr {
    tx: mpsc::Sender<Msg>,
}

/// The writer thread; [`Writer::finish`] waits until every record sent before it is
/// on disk.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Record(r) => r.fmt(f),
            Msg::Stop => f.write_str("Stop"),
        }
    }
}

/// Opens (creating) `<dir>/cdr.jsonl` for appending and starts the writer thread.
pub(crate) fn open(dir: &Path) -> io::Result<(Cdr, Writer)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("cdr.jsonl"))?;
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("cdr".into())
        .spawn(move || write_loop(file, rx))?;
    Ok((Cdr { tx: tx.clone() }, Writer { tx, thread }))
}

impl Cdr {
    /// Queues a record (never blocks the call).
    pub(crate) fn write(&self, record: Record) {
        if self.tx.send(Msg::Record(Box::new(record))).is_err() {
            tracing::error!("CDR writer stopped: record lost");
        }
    }
}

impl Writer {
    /// Waits for the records queued so far to be written; later ones are dropped.
    pub(crate) fn finish(self) {
        let _ = self.tx.send(Msg::Stop);
        let _ = self.thread.join();
    }
}

fn write_loop(mut file: File, rx: mpsc::Receiver<Msg>) {
    let mut failed_once = false;
    let mut stop = false;
    // Blocks for the first record of a batch, then takes whatever else is queued.
    while !stop {
        let Ok(first) = rx.recv() else {
            break;
        };
        let mut batch = Vec::with_capacity(256);
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                // A Record always serialises: plain strings and numbers.
                Msg::Record(record) => {
                    if serde_json::to_writer(&mut batch, &record).is_ok() {
                        batch.push(b'\n');
                    }
                }
                Msg::Stop => {
                    stop = true;
                    break;
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let written = file.write_all(&batch).and_then(|()| file.sync_data());
        if let Err(e) = written {
            if !failed_once {
                tracing::error!(error = %e, "cannot write CDRs");
                failed_once = true;
            }
        } else {
            failed_once = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_one_json_line_each_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("pbxkit-cdr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("cdr.jsonl"));
        for round in 0..2 {
            let (cdr, writer) = open(&dir).unwrap();
            let start = now() - 10.0;
            cdr.write(Record::new(
                start,
                Some(start + 4.0),
                "1000",
                "1001",
                &format!("c{round}"),
                Disposition::Answered,
                None,
                Some(pbxkit::hangup::HangupCause::by(
                    pbxkit::hangup::Party::Caller,
                )),
            ));
            cdr.write(Record::new(
                start,
                None,
                "1000",
                "1002",
                "x",
                Disposition::Busy,
                Some(486),
                None,
            ));
            // A clone still held elsewhere does not keep finish() waiting.
            let _late = cdr.clone();
            drop(cdr);
            writer.finish();
        }
        let text = std::fs::read_to_string(dir.join("cdr.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["disposition"], "ANSWERED");
        assert_eq!(lines[0]["call_id"], "c0");
        assert_eq!(lines[2]["call_id"], "c1");
        let billsec = lines[0]["billsec"].as_f64().unwrap();
        assert!((5.9..6.5).contains(&billsec), "{billsec}");
        assert_eq!(lines[1]["disposition"], "BUSY");
        assert_eq!(lines[1]["status"], 486);
        assert_eq!(lines[1]["billsec"], 0.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
