//! Append-only files of lines written durably: the CDRs (`cdr.jsonl`) and the call
//! centre's `queue_log`.
//!
//! Durability: lines go to a writer thread that appends every line waiting, then
//! calls `fsync` (`sync_data`) once for the batch (group commit). A line is on disk
//! when the batch's fsync returns; a crash can lose at most the batch being written,
//! never a line already synced, and a torn last line is the only damage it can leave
//! (readers skip a last line that does not parse). At shutdown the thread drains
//! what is queued before the PBX exits.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// What the writer thread is sent.
enum Msg {
    /// One line, without its newline.
    Line(Vec<u8>),
    /// Write what came before, then stop.
    Stop,
}

/// Sends lines to the writer thread. Cloned where lines are written.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    tx: mpsc::Sender<Msg>,
    name: &'static str,
}

/// The writer thread; [`Writer::finish`] waits until every line sent before it is
/// on disk.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: JoinHandle<()>,
}

/// Opens (creating) `path` for appending and starts its writer thread, `name`d in
/// logs.
pub(crate) fn open(path: &Path, name: &'static str) -> io::Result<(Journal, Writer)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || write_loop(file, rx, name))?;
    Ok((
        Journal {
            tx: tx.clone(),
            name,
        },
        Writer { tx, thread },
    ))
}

impl Journal {
    /// Queues a line, without its newline (never blocks the caller).
    pub(crate) fn append(&self, line: Vec<u8>) {
        if self.tx.send(Msg::Line(line)).is_err() {
            tracing::error!(file = self.name, "writer stopped: line lost");
        }
    }
}

impl Writer {
    /// Waits for the lines queued so far to be written; later ones are dropped.
    pub(crate) fn finish(self) {
        let _ = self.tx.send(Msg::Stop);
        let _ = self.thread.join();
    }
}

fn write_loop(mut file: File, rx: mpsc::Receiver<Msg>, name: &'static str) {
    let mut failed_once = false;
    let mut stop = false;
    // Blocks for the first line of a batch, then takes whatever else is queued.
    while !stop {
        let Ok(first) = rx.recv() else {
            break;
        };
        let mut batch = Vec::with_capacity(256);
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Line(line) => {
                    batch.extend_from_slice(&line);
                    batch.push(b'\n');
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
            // Logged once until a write succeeds again, not once per batch.
            if !failed_once {
                tracing::error!(file = name, error = %e, "cannot write");
                failed_once = true;
            }
        } else {
            failed_once = false;
        }
    }
}
