//! The PBX against a real peer: sipp registers 100 users with digest authentication
//! (an injection file carries each user's credentials), then sipp places 20
//! authenticated calls through the PBX to a sipp UAS registered as a user.
//! Skipped (with a message) only when sipp is absent; scripts/test installs it.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use common::{Pbx, free_port, temp_dir};
use std::process::{Command, Stdio};

fn has_sipp() -> bool {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "SKIPPED: sipp is not installed (Debian package sip-tester; scripts/test installs it)"
        );
    }
    found
}

fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs sipp with bounded time; returns its exit code and its output.
fn sipp(args: &[&str]) -> (i32, String) {
    let out = Command::new("sipp")
        .args(args)
        .args(["-timeout", "40", "-timeout_error", "-nostdin"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn sipp_registers_100_users_and_calls_through_the_pbx() {
    if !has_sipp() {
        return;
    }
    let dir = temp_dir("sipp");
    let users: String = (0..100)
        .map(|i| {
            format!(
                "\n[[users]]\nexten = \"{}\"\nname = \"Load {i}\"\npassword = \"pw{}xyz\"\n",
                3000 + i,
                3000 + i
            )
        })
        .collect();
    let pbx = Pbx::start_with(dir.clone(), free_port(), &users);
    let remote = pbx.addr.to_string();

    // 100 REGISTERs, each challenged then accepted.
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..100 {
        csv.push_str(&format!(
            "{};[authentication username={} password=pw{}xyz]\n",
            3000 + i,
            3000 + i,
            3000 + i
        ));
    }
    let users_csv = dir.join("users.csv");
    std::fs::write(&users_csv, csv).unwrap();
    let port = free_port().to_string();
    let (code, out) = sipp(&[
        "-sf",
        &scenario("register.xml"),
        "-inf",
        users_csv.to_str().unwrap(),
        "-m",
        "100",
        "-r",
        "50",
        &remote,
        "-i",
        "127.0.0.1",
        "-p",
        &port,
    ]);
    assert_eq!(code, 0, "sipp register: {out}");
    let saved = std::fs::read_to_string(dir.join("data/registrations.json")).unwrap();
    let aors: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&saved).unwrap();
    assert_eq!(aors.len(), 100, "every user's binding is on disk");

    // A sipp UAS registers as 3050 from the port it will answer on.
    let uas = callee(&dir, &pbx, "3050", args(&["-sn", "uas"]), 20);

    // 20 calls from 3000 to 3050, each challenged, answered and hung up.
    let calls_csv = dir.join("calls.csv");
    std::fs::write(
        &calls_csv,
        format!(
            "SEQUENTIAL\n{}",
            "3000;3050;[authentication username=3000 password=pw3000xyz]\n".repeat(20)
        ),
    )
    .unwrap();
    let port = free_port().to_string();
    let (code, out) = sipp(&[
        "-sf",
        &scenario("uac_auth.xml"),
        "-inf",
        calls_csv.to_str().unwrap(),
        "-m",
        "20",
        "-r",
        "10",
        &remote,
        "-i",
        "127.0.0.1",
        "-p",
        &port,
    ]);
    assert_eq!(code, 0, "sipp UAC: every call succeeded: {out}");
    let (_, uas_out) = uas.join().unwrap();
    let successful = uas_out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Successful call"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        successful.trim_end().ends_with("20"),
        "the UAS answered 20 calls: {successful}"
    );
    // Every call has its CDR, answered, hung up by the caller (the last one is
    // written once the callee's 200 to the PBX's BYE is in: wait for it, bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let cdr = loop {
        let cdr = std::fs::read_to_string(dir.join("data/cdr.jsonl")).unwrap_or_default();
        if cdr.lines().count() >= 20 || std::time::Instant::now() > deadline {
            break cdr;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    drop(pbx);
    let records: Vec<serde_json::Value> = cdr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 20, "{cdr}");
    assert!(
        records
            .iter()
            .all(|r| r["disposition"] == "ANSWERED" && r["hangup_by"] == "caller"),
        "{cdr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// sipp's A-law capture (7 s of speech), shipped with Debian's sip-tester.
const CAPTURE: &str = "/usr/share/sip-tester/g711a.pcap";

#[test]
fn sipp_calls_carry_audio_both_ways_through_the_relay() {
    if !has_sipp() {
        return;
    }
    assert!(
        std::path::Path::new(CAPTURE).exists(),
        "{CAPTURE} comes with sip-tester"
    );
    let dir = temp_dir("sipp-media");
    let users = "\n[[users]]\nexten = \"3000\"\nname = \"A\"\npassword = \"pw3000xyz\"\ncall_limit = 100\n\
                 \n[[users]]\nexten = \"3050\"\nname = \"B\"\npassword = \"pw3050xyz\"\n";
    let pbx = Pbx::start_with(dir.clone(), free_port(), users);
    let remote = pbx.addr.to_string();
    // The UAS echoes the RTP it receives: what the UAC sends comes back through the
    // relay, so both directions carry audio.
    let uas_media = free_port().to_string();
    let uas = callee(
        &dir,
        &pbx,
        "3050",
        args(&["-sn", "uas", "-rtp_echo", "-mp", &uas_media]),
        5,
    );
    let scenario_file = dir.join("uac_media.xml");
    std::fs::write(
        &scenario_file,
        std::fs::read_to_string(scenario("uac_media.xml"))
            .unwrap()
            .replace("PCAP_FILE", CAPTURE)
            .replace("CALL_MS", "1500"),
    )
    .unwrap();
    let calls_csv = dir.join("calls.csv");
    std::fs::write(
        &calls_csv,
        format!(
            "SEQUENTIAL\n{}",
            "3000;3050;[authentication username=3000 password=pw3000xyz]\n".repeat(5)
        ),
    )
    .unwrap();
    let (port, media) = (free_port().to_string(), free_port().to_string());
    let (code, out) = sipp(&[
        "-sf",
        scenario_file.to_str().unwrap(),
        "-inf",
        calls_csv.to_str().unwrap(),
        "-m",
        "5",
        "-r",
        "5",
        &remote,
        "-i",
        "127.0.0.1",
        "-p",
        &port,
        "-mp",
        &media,
    ]);
    assert_eq!(code, 0, "sipp UAC: every call succeeded: {out}");
    let (code, out) = uas.join().unwrap();
    assert_eq!(code, 0, "sipp UAS: {out}");
    drop(pbx);
    // The relay's counters, logged as each call ends.
    let log = std::fs::read_to_string(dir.join("pbx.log")).unwrap();
    let counter = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let ended: Vec<(u64, u64)> = log
        .lines()
        .filter(|l| l.contains("call ended") && l.contains("rtp_a_to_b"))
        .map(|l| (counter(l, "rtp_a_to_b"), counter(l, "rtp_b_to_a")))
        .collect();
    assert_eq!(ended.len(), 5, "{log}");
    // 1.5 s of 30 ms packets is about 50 each way; allow for start-up and loss.
    for (to_uas, to_uac) in &ended {
        assert!(*to_uas > 20 && *to_uac > 20, "{ended:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A scenario from tests/sipp with `STATUS` replaced, written into `dir`.
fn scenario_with_status(dir: &std::path::Path, name: &str, status: u16) -> String {
    let path = dir.join(format!("{status}-{name}"));
    let text = std::fs::read_to_string(scenario(name))
        .unwrap()
        .replace("STATUS", &status.to_string());
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Users 3000 (calling) and 3050, 3051 (sipp callees), plus `extra` configuration.
fn pbx_with_callees(dir: &std::path::Path, extra: &str) -> Pbx {
    let mut users = String::new();
    for (exten, more) in [("3000", ""), ("3050", extra), ("3051", "")] {
        users.push_str(&format!(
            "\n[[users]]\nexten = \"{exten}\"\nname = \"U{exten}\"\npassword = \"pw{exten}xyz\"\n{more}\n"
        ));
    }
    Pbx::start_with(dir.to_path_buf(), free_port(), &users)
}

/// Registers `user` (password `pw<user>xyz`) from a sipp on a free port, then runs
/// `args` there as the callee for `calls` calls in a thread; returns the thread (its
/// sipp exit code and output).
fn callee(
    dir: &std::path::Path,
    pbx: &Pbx,
    user: &str,
    args: Vec<String>,
    calls: usize,
) -> std::thread::JoinHandle<(i32, String)> {
    let port = register(dir, pbx, user);
    serve(args, "127.0.0.1", &port, calls)
}

/// Registers `user` (password `pw<user>xyz`) from a sipp on a free port; the port.
fn register(dir: &std::path::Path, pbx: &Pbx, user: &str) -> String {
    let port = free_port().to_string();
    let csv = dir.join(format!("reg-{user}.csv"));
    std::fs::write(
        &csv,
        format!("SEQUENTIAL\n{user};[authentication username={user} password=pw{user}xyz]\n"),
    )
    .unwrap();
    let remote = pbx.addr.to_string();
    let (code, out) = sipp(&[
        "-sf",
        &scenario("register.xml"),
        "-inf",
        csv.to_str().unwrap(),
        "-m",
        "1",
        &remote,
        "-i",
        "127.0.0.1",
        "-p",
        &port,
    ]);
    assert_eq!(code, 0, "sipp register of {user}: {out}");
    port
}

/// Runs a sipp callee with `args` on `ip`:`port` for `calls` calls, in a thread.
fn serve(
    args: Vec<String>,
    ip: &str,
    port: &str,
    calls: usize,
) -> std::thread::JoinHandle<(i32, String)> {
    let (ip, port, calls) = (ip.to_owned(), port.to_owned(), calls.to_string());
    let thread = std::thread::spawn(move || {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["-i", &ip, "-p", &port, "-m", &calls]);
        sipp(&all)
    });
    // Bounded wait for it to bind (a real process).
    std::thread::sleep(std::time::Duration::from_millis(500));
    thread
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn sipp_caller_cancels_while_the_callee_rings() {
    if !has_sipp() {
        return;
    }
    let dir = temp_dir("sipp-cancel");
    let pbx = pbx_with_callees(&dir, "");
    let uas = callee(
        &dir,
        &pbx,
        "3050",
        args(&["-sf", &scenario("uas_ring.xml")]),
        1,
    );
    let (code, out) = call_from(&dir, &pbx, "3000", "3050", &scenario("uac_cancel.xml"));
    assert_eq!(code, 0, "caller: 180, CANCEL, 200, 487: {out}");
    let (code, out) = uas.join().unwrap();
    assert_eq!(code, 0, "callee: CANCELled too: {out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sipp_busy_callee_forwards_to_its_busy_destination() {
    if !has_sipp() {
        return;
    }
    let dir = temp_dir("sipp-busy");
    let pbx = pbx_with_callees(&dir, "forward_busy = \"3051\"");
    let busy = callee(
        &dir,
        &pbx,
        "3050",
        args(&["-sf", &scenario_with_status(&dir, "uas_refuse.xml", 486)]),
        1,
    );
    let answers = callee(&dir, &pbx, "3051", args(&["-sn", "uas"]), 1);
    let (code, out) = call_from(&dir, &pbx, "3000", "3050", &scenario("uac_auth.xml"));
    assert_eq!(code, 0, "the call is answered by 3051: {out}");
    assert_eq!(busy.join().unwrap().0, 0, "3050 said busy");
    assert_eq!(answers.join().unwrap().0, 0, "3051 answered");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sipp_unanswered_call_gets_480_after_the_ring_time() {
    if !has_sipp() {
        return;
    }
    let dir = temp_dir("sipp-noanswer");
    let pbx = pbx_with_callees(&dir, "ring_time = 2");
    let rings = callee(
        &dir,
        &pbx,
        "3050",
        args(&["-sf", &scenario("uas_ring.xml")]),
        1,
    );
    let started = std::time::Instant::now();
    let refused = scenario_with_status(&dir, "uac_refused.xml", 480);
    let (code, out) = call_from(&dir, &pbx, "3000", "3050", &refused);
    assert_eq!(code, 0, "480 after the ring time: {out}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert_eq!(rings.join().unwrap().0, 0, "the callee was CANCELled");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sipp_trunk_answering_503_fails_over_to_the_next_trunk() {
    if !has_sipp() {
        return;
    }
    let dir = temp_dir("sipp-trunks");
    // The trunks are sipp callees on other loopback addresses (the PBX trusts a
    // trunk's address, and the caller's must not be one).
    let (p1, p2) = (free_port(), free_port());
    let trunks = format!(
        "\n[[trunks]]\nname = \"first\"\nhost = \"127.0.0.2\"\nport = {p1}\nqualify = 0\n\
         \n[[trunks]]\nname = \"second\"\nhost = \"127.0.0.3\"\nport = {p2}\nqualify = 0\n\
         \n[[users]]\nexten = \"3000\"\nname = \"U3000\"\npassword = \"pw3000xyz\"\n"
    );
    let pbx = Pbx::start_edited(dir.clone(), free_port(), |c| {
        c.replace(
            "trunks = [\"provider\"]",
            "trunks = [\"first\", \"second\"]",
        ) + &trunks
    });
    let refuses = serve(
        args(&["-sf", &scenario_with_status(&dir, "uas_refuse.xml", 503)]),
        "127.0.0.2",
        &p1.to_string(),
        1,
    );
    let answers = serve(args(&["-sn", "uas"]), "127.0.0.3", &p2.to_string(), 1);
    let (code, out) = call_from(&dir, &pbx, "3000", "0123456789", &scenario("uac_auth.xml"));
    assert_eq!(code, 0, "answered through the second trunk: {out}");
    assert_eq!(
        refuses.join().unwrap().0,
        0,
        "the first trunk refused with 503"
    );
    assert_eq!(answers.join().unwrap().0, 0, "the second trunk answered");
    let _ = std::fs::remove_dir_all(dir);
}

/// One call from `user` (password `pw<user>xyz`) to `number` with `scenario_file`;
/// sipp's exit code and output.
fn call_from(
    dir: &std::path::Path,
    pbx: &Pbx,
    user: &str,
    number: &str,
    scenario_file: &str,
) -> (i32, String) {
    let csv = dir.join(format!("call-{user}.csv"));
    std::fs::write(
        &csv,
        format!(
            "SEQUENTIAL\n{user};{number};[authentication username={user} password=pw{user}xyz]\n"
        ),
    )
    .unwrap();
    let port = free_port().to_string();
    sipp(&[
        "-sf",
        scenario_file,
        "-inf",
        csv.to_str().unwrap(),
        "-m",
        "1",
        &pbx.addr.to_string(),
        "-i",
        "127.0.0.1",
        "-p",
        &port,
    ])
}

/// What an agent's desk phone (a sipp) does with the calls it is offered.
#[derive(Clone, Copy)]
enum Desk {
    /// Answers this many calls at once.
    Answers(usize),
    /// Rings for this many calls until each is cancelled.
    Rings(usize),
    /// Registered, and no process answers: it must not be rung.
    Silent,
}

/// Agents 50 and 51 log in with `*31` from their users' phones 3050 and 3051
/// (sipp), whose desks do as `desks` say; two callers in turn call a `strategy`
/// queue. The agents who took the calls (the queue_log's CONNECT lines, checked
/// against what `pbxkit acd stats` counts), once every desk is done.
fn agents_taking_queue_calls(name: &str, strategy: &str, desks: [Desk; 2]) -> Vec<String> {
    agents_taking_skilled_calls(name, strategy, desks, "", ["", ""])
}

/// The same with `queue` appended to the queue's settings and `agents` to each
/// agent's.
fn agents_taking_skilled_calls(
    name: &str,
    strategy: &str,
    desks: [Desk; 2],
    queue: &str,
    agents: [&str; 2],
) -> Vec<String> {
    let dir = temp_dir(name);
    let mut extra = String::new();
    for exten in ["3000", "3050", "3051"] {
        extra.push_str(&format!(
            "\n[[users]]\nexten = \"{exten}\"\nname = \"U{exten}\"\npassword = \"pw{exten}xyz\"\n"
        ));
    }
    extra.push_str(&format!(
        "\n[[queues]]\nexten = \"3900\"\nname = \"turns\"\nstrategy = \"{strategy}\"\n\
         announce_frequency = 0\nmember_ring_time = 5\nretry_delay = 1\nwrap_up = 0\n{queue}\
         \n[[agents]]\nnumber = \"50\"\nqueues = [\"turns\"]\n{}\
         \n[[agents]]\nnumber = \"51\"\nqueues = [\"turns\"]\n{}",
        agents[0], agents[1],
    ));
    let pbx = Pbx::start_with(dir.clone(), free_port(), &extra);
    let ring = scenario("uas_ring.xml");
    let desks: Vec<_> = ["3050", "3051"]
        .into_iter()
        .zip(desks)
        .filter_map(|(user, desk)| match desk {
            Desk::Answers(n) => Some(callee(&dir, &pbx, user, args(&["-sn", "uas"]), n)),
            Desk::Rings(n) => Some(callee(&dir, &pbx, user, args(&["-sf", &ring]), n)),
            Desk::Silent => {
                register(&dir, &pbx, user);
                None
            }
        })
        .collect();
    for (user, agent) in [("3050", "50"), ("3051", "51")] {
        let (code, out) = call_from(
            &dir,
            &pbx,
            user,
            &format!("*31{agent}"),
            &scenario("uac_auth.xml"),
        );
        assert_eq!(code, 0, "{user} logging in as agent {agent}: {out}");
    }
    for n in 0..2 {
        let (code, out) = call_from(&dir, &pbx, "3000", "3900", &scenario("uac_auth.xml"));
        assert_eq!(code, 0, "caller {n}: {out}");
    }
    for desk in desks {
        let (code, out) = desk.join().unwrap();
        assert_eq!(code, 0, "{strategy}: an agent's phone: {out}");
    }
    // What the queue_log says, once the journal has synced (bounded, a real process).
    let log = dir.join("data/queue_log");
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("|COMPLETE").count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let events: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            // Logins are for no queue in particular (NONE).
            (f.len() > 4 && (f[2] == "turns" || f[4] == "AGENTLOGIN")).then(|| (f[3], f[4]))
        })
        .filter(|(_, e)| ["AGENTLOGIN", "CONNECT"].contains(e))
        .collect();
    let (logins, connects) = events.split_at(2.min(events.len()));
    assert_eq!(
        logins,
        [("Agent/50", "AGENTLOGIN"), ("Agent/51", "AGENTLOGIN")],
        "{text}"
    );
    assert_eq!(text.matches("|COMPLETECALLER|").count(), 2, "{text}");
    // Nobody was rung who did not answer, but for ringall's cancelled rings.
    assert!(!text.contains("|RINGNOANSWER|"), "{text}");
    // `pbxkit acd stats` over that file counts what sipp saw.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbxkit"))
        .args(["acd", "stats", "--period", "1d"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let periods: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let sum = |key: &str| -> u64 {
        periods
            .iter()
            .filter(|p| p["queue"] == "turns")
            .map(|p| p[key].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        (sum("received"), sum("answered"), sum("abandoned")),
        (2, 2, 0),
        "{periods:?}"
    );
    let taken = connects.iter().map(|(a, _)| (*a).to_owned()).collect();
    let _ = std::fs::remove_dir_all(dir);
    taken
}

#[test]
fn sipp_agents_log_in_from_their_phones_and_take_a_queues_calls_in_turn() {
    if !has_sipp() {
        return;
    }
    // Round robin with memory: each agent in turn.
    let both = [Desk::Answers(1), Desk::Answers(1)];
    assert_eq!(
        agents_taking_queue_calls("sipp-rrmemory", "rrmemory", both),
        ["Agent/50", "Agent/51"]
    );
    // Least recent: the one never called, then the other.
    assert_eq!(
        agents_taking_queue_calls("sipp-leastrecent", "leastrecent", both),
        ["Agent/50", "Agent/51"]
    );
    // Linear: the first agent whenever it is free; the second is never rung.
    assert_eq!(
        agents_taking_queue_calls("sipp-linear", "linear", [Desk::Answers(2), Desk::Silent]),
        ["Agent/50", "Agent/50"]
    );
    // Ringall: both desks ring for each caller; the one that answers takes it and
    // the other's ring is cancelled.
    assert_eq!(
        agents_taking_queue_calls(
            "sipp-ringall",
            "ringall",
            [Desk::Answers(2), Desk::Rings(2)]
        ),
        ["Agent/50", "Agent/50"]
    );
    // Skill-routed: the rule selects the agent who speaks English; the other's
    // desk is never rung (it has no sipp to answer).
    assert_eq!(
        agents_taking_skilled_calls(
            "sipp-skills",
            "rrmemory",
            [Desk::Silent, Desk::Answers(2)],
            "skill_rules = [\"english > 50\"]\n",
            ["skills = { english = 10 }\n", "skills = { english = 90 }\n"],
        ),
        ["Agent/51", "Agent/51"]
    );
}
