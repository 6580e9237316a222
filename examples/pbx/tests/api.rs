//! The REST API and its WebSocket events, end to end: the pbxkit binary on its
//! test configuration, an HTTP client over loopback, phones on pbxkit-sip.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;
mod phone;

use common::{Pbx, free_port, temp_dir};
use pbxkit_sip::StatusCode;
use phone::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request on its own connection.
async fn http(
    api: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(api).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut bytes = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        headers: head,
        body: bytes[end + 4..].to_vec(),
    }
}

fn basic(name: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
    )
}

/// A token for `name`'s credentials.
async fn token(api: SocketAddr, name: &str, password: &str) -> String {
    let auth = basic(name, password);
    let answer = http(api, "POST", "/token", &[("Authorization", &auth)], b"").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["data"]["token"].as_str().unwrap().to_owned()
}

async fn get(api: SocketAddr, path: &str, token: &str) -> Answer {
    http(api, "GET", path, &[("X-Auth-Token", token)], b"").await
}

async fn put(api: SocketAddr, path: &str, token: &str, body: Value) -> Answer {
    let body = body.to_string();
    http(
        api,
        "PUT",
        path,
        &[
            ("X-Auth-Token", token),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn tokens_acls_lists_and_bad_input() {
    let pbx = Pbx::start(temp_dir("api-basics"), free_port());
    let api = pbx.api;
    assert!(api.ip().is_loopback());
    // Tokens: credentials checked, expiration bounded.
    assert_eq!(http(api, "POST", "/token", &[], b"").await.status, 401);
    let wrong = basic("1000", "not it");
    let refused = http(api, "POST", "/token", &[("Authorization", &wrong)], b"").await;
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .headers
            .to_ascii_lowercase()
            .contains("www-authenticate")
    );
    let nobody = basic("nobody", "x");
    let unknown = http(api, "POST", "/token", &[("Authorization", &nobody)], b"").await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (refused.status, refused.json()),
        "an unknown name is answered as a wrong password"
    );
    let good = basic("1000", "pbx1000pw");
    let too_long = http(
        api,
        "POST",
        "/token",
        &[("Authorization", &good)],
        br#"{"expiration": 999999999}"#,
    )
    .await;
    assert_eq!(too_long.status, 400);
    assert!(too_long.json()["details"]["expiration"].is_object());
    let issued = http(
        api,
        "POST",
        "/token",
        &[("Authorization", &good)],
        br#"{"backend": "wazo_user", "expiration": 60}"#,
    )
    .await;
    assert_eq!(issued.status, 200, "{issued:?}");
    let data = issued.json()["data"].clone();
    let user = data["token"].as_str().unwrap().to_owned();
    assert_eq!(data["auth_id"], "1000");
    assert!(
        data["acl"]
            .as_array()
            .unwrap()
            .contains(&json!("confd.users.1000.read"))
    );
    let admin = token(api, "admin", "pbxadminpw").await;

    // ACLs: the user sees itself, not the others nor the list; the admin all.
    assert_eq!(http(api, "GET", "/users", &[], b"").await.status, 401);
    assert_eq!(get(api, "/users", "bogus").await.status, 401);
    let denied = get(api, "/users", &user).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["details"]["required_acl"], "confd.users.read");
    let me = get(api, "/users/me", &user).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["exten"], "1000");
    assert_eq!(get(api, "/users/1000", &user).await.status, 200);
    assert_eq!(get(api, "/users/1001", &user).await.status, 403);
    assert_eq!(get(api, "/users/9999", &admin).await.status, 404);
    assert_eq!(get(api, "/users/1000.x", &admin).await.status, 404);

    // Lists: {total, items}, search, order, paging, bad parameters.
    let all = get(api, "/users", &admin).await.json();
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 10, "{all}");
    assert_eq!(all["items"].as_array().unwrap().len() as u64, total);
    let page = get(
        api,
        "/users?search=user%20100&order=exten&direction=desc&limit=2&offset=1",
        &admin,
    )
    .await
    .json();
    assert_eq!(page["total"], 10, "users 1000-1009 match");
    let extens: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["exten"].as_str().unwrap())
        .collect();
    assert_eq!(extens, ["1008", "1007"]);
    let bad = get(api, "/users?limit=lots", &admin).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["details"]["limit"].is_object());

    // Bodies: malformed JSON names the field, oversized ones are refused.
    let missing = put(api, "/users/me/services/dnd", &user, json!({})).await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.json()["details"]["enabled"].is_object(),
        "{missing:?}"
    );
    let wrong_type = put(
        api,
        "/users/me/services/dnd",
        &user,
        json!({"enabled": "yes"}),
    )
    .await;
    assert_eq!(wrong_type.status, 400);
    let huge = vec![b' '; 100 * 1024];
    let too_big = http(
        api,
        "PUT",
        "/users/me/services/dnd",
        &[("X-Auth-Token", &user)],
        &huge,
    )
    .await;
    assert_eq!(too_big.status, 413);
    let bad_destination = put(
        api,
        "/users/me/forwards/busy",
        &user,
        json!({"enabled": true, "destination": "sip:evil@example.com"}),
    )
    .await;
    assert_eq!(bad_destination.status, 400);
    assert_eq!(
        put(
            api,
            "/users/me/forwards/sideways",
            &user,
            json!({"enabled": false})
        )
        .await
        .status,
        404
    );

    // A setting changed through the API is what the API reads back.
    let on = put(
        api,
        "/users/me/services/dnd",
        &user,
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(on.status, 204, "{on:?}");
    assert_eq!(
        get(api, "/users/me/services", &user).await.json()["dnd"]["enabled"],
        true
    );

    // The token answers while it is good, and not once revoked.
    let check = get(api, &format!("/token/{user}"), "").await;
    assert_eq!(check.status, 200);
    let scoped = get(api, &format!("/token/{user}?scope=confd.users.read"), "").await;
    assert_eq!(scoped.status, 403);
    let revoked = http(api, "DELETE", &format!("/token/{user}"), &[], b"").await;
    assert_eq!(revoked.status, 204);
    assert_eq!(get(api, &format!("/token/{user}"), "").await.status, 404);
    assert_eq!(get(api, "/users/me", &user).await.status, 401);

    // Every route the OpenAPI document lists is served, and only those.
    let document = get(api, "/api/api.yml", "").await;
    assert_eq!(document.status, 200);
    let routes = openapi_routes(std::str::from_utf8(&document.body).unwrap());
    assert!(routes.len() >= 10, "{routes:?}");
    for (method, path) in &routes {
        let concrete = path
            .replace("{user}", "1000")
            .replace("{token}", &admin)
            .replace("{forward}", "busy")
            .replace("{profile}", "default")
            .replace("{vendor}", "yealink")
            .replace("{call}", "no-such-call");
        let answer = http(
            api,
            &method.to_uppercase(),
            &concrete,
            &[
                ("X-Auth-Token", &admin),
                ("Authorization", &basic("admin", "pbxadminpw")),
            ],
            b"",
        )
        .await;
        let error = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["error_id"].as_str().map(str::to_owned));
        assert!(
            !matches!(error.as_deref(), Some("no-route" | "no-method")),
            "{method} {path}: {answer:?}"
        );
    }
    let nothing = get(api, "/no/such/route", &admin).await;
    assert_eq!(
        (nothing.status, nothing.json()["error_id"].clone()),
        (404, json!("no-route"))
    );
}

/// The (method, path) pairs of an OpenAPI document's `paths`.
fn openapi_routes(document: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let (mut in_paths, mut path) = (false, None);
    for line in document.lines() {
        if !line.starts_with(' ') {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let Some(m) = line.strip_prefix("    ")
            && let Some(method) = m.strip_suffix(':')
            && ["get", "post", "put", "delete", "patch"].contains(&method)
            && let Some(p) = &path
        {
            routes.push((method.to_owned(), p.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn failed_token_requests_ban_the_name_from_that_address_only() {
    let pbx = Pbx::start(temp_dir("api-ban"), free_port());
    let wrong = basic("1000", "guess");
    for _ in 0..10 {
        let answer = http(pbx.api, "POST", "/token", &[("Authorization", &wrong)], b"").await;
        assert_eq!(answer.status, 401);
    }
    let right = basic("1000", "pbx1000pw");
    let banned = http(pbx.api, "POST", "/token", &[("Authorization", &right)], b"").await;
    assert_eq!(banned.status, 401, "banned, even with the right password");
    // Another user behind the same address is still served.
    token(pbx.api, "1001", "pbx1001pw").await;
}

/// A WebSocket client of `/events` on a thread: what it receives after starting.
fn events(api: SocketAddr, token: &str, names: &[&str]) -> std::sync::mpsc::Receiver<Value> {
    let url = format!("ws://{api}/events?token={token}");
    let (mut socket, _) = tungstenite::connect(url).unwrap();
    let init = socket.read().unwrap();
    assert!(
        init.to_text().unwrap().contains("\"op\":\"init\""),
        "{init}"
    );
    for name in names {
        let sub = json!({"op": "subscribe", "data": {"event_name": name}});
        socket
            .send(tungstenite::Message::text(sub.to_string()))
            .unwrap();
        let answer = socket.read().unwrap();
        assert!(answer.to_text().unwrap().contains("\"code\":0"), "{answer}");
    }
    socket
        .send(tungstenite::Message::text(r#"{"op": "start"}"#))
        .unwrap();
    let started = socket.read().unwrap();
    assert!(started.to_text().unwrap().contains("start"), "{started}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(tungstenite::Message::Text(t)) = socket.read() {
            if tx.send(serde_json::from_str(&t).unwrap()).is_err() {
                break;
            }
        }
    });
    rx
}

/// The names of the events received within `wait`.
fn received(rx: &std::sync::mpsc::Receiver<Value>, wait: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Ok(event) = rx.recv_timeout(wait) {
        seen.push(event["event"].clone());
    }
    seen
}

fn close_code(api: SocketAddr, query: &str) -> u16 {
    let (mut socket, _) = tungstenite::connect(format!("ws://{api}/events{query}")).unwrap();
    loop {
        match socket.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => return frame.code.into(),
            Ok(_) => continue,
            Err(e) => panic!("closed without a code: {e}"),
        }
    }
}

#[tokio::test]
async fn calls_are_listed_hung_up_and_seen_on_the_websocket() {
    let pbx = Pbx::start(temp_dir("api-calls"), free_port());
    let api = pbx.api;
    let admin = token(api, "admin", "pbxadminpw").await;
    let outsider = token(api, "1002", "pbx1002pw").await;
    assert_eq!(close_code(api, ""), 4001);
    assert_eq!(close_code(api, "?token=bogus"), 4002);
    let supervisor = events(api, &admin, &["*"]);
    let other = events(api, &outsider, &["call_created", "call_ended"]);

    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    InDialog::ack(&alice, &invite, &answer, "1001").await;
    let call_id = invite.call_id().unwrap().0.to_string();

    // The call is listed, for the admin and for its parties only.
    let calls = get(api, "/calls", &admin).await.json();
    assert_eq!(calls["total"], 1, "{calls}");
    assert_eq!(calls["items"][0]["call_id"], call_id.as_str());
    assert_eq!(calls["items"][0]["status"], "Up");
    assert_eq!(calls["items"][0]["peer"], "1001");
    let bobs = token(api, "1001", "pbx1001pw").await;
    assert_eq!(get(api, "/users/me/calls", &bobs).await.json()["total"], 1);
    assert_eq!(
        get(api, "/users/me/calls", &outsider).await.json()["total"],
        0
    );
    assert_eq!(get(api, "/calls", &outsider).await.status, 403);
    let not_mine = http(
        api,
        "DELETE",
        &format!("/users/me/calls/{call_id}"),
        &[("X-Auth-Token", &outsider)],
        b"",
    )
    .await;
    assert_eq!(not_mine.status, 404);

    // The API hangs it up: the callee gets its BYE.
    let hung_up = http(
        api,
        "DELETE",
        &format!("/calls/{call_id}"),
        &[("X-Auth-Token", &admin)],
        b"",
    )
    .await;
    assert_eq!(hung_up.status, 204, "{hung_up:?}");
    assert_eq!(
        timeout(WAIT * 2, bob_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    assert_eq!(get(api, "/calls", &admin).await.json()["total"], 0);

    // The supervisor saw the call created, answered and ended, in that order.
    let seen: Vec<Value> = received(&supervisor, Duration::from_secs(2))
        .into_iter()
        .filter(|e| e["name"].as_str().unwrap().starts_with("call_"))
        .collect();
    let names: Vec<&str> = seen.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["call_created", "call_updated", "call_ended"],
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .all(|e| e["data"]["call_id"] == call_id.as_str())
    );
    assert_eq!(seen[1]["data"]["status"], "Up");
    assert_eq!(seen[0]["required_acl"], "events.calls.1000");
    // A user who is no party to the call saw nothing of it.
    assert!(received(&other, Duration::from_millis(200)).is_empty());
}

#[tokio::test]
async fn a_forward_set_through_the_api_takes_effect_on_the_next_call() {
    let pbx = Pbx::start(temp_dir("api-forward"), free_port());
    let api = pbx.api;
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let carol = registered("1002", "pbx1002pw", &pbx).await;
    let bob_log = bob.answer_calls(StatusCode::OK);
    let carol_log = carol.answer_calls(StatusCode::OK);
    let bobs = token(api, "1001", "pbx1001pw").await;
    let set = put(
        api,
        "/users/me/forwards/unconditional",
        &bobs,
        json!({"enabled": true, "destination": "1002"}),
    )
    .await;
    assert_eq!(set.status, 204, "{set:?}");
    let forwards = get(api, "/users/me/forwards", &bobs).await.json();
    assert_eq!(
        forwards["unconditional"],
        json!({"enabled": true, "destination": "1002"})
    );
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    assert_eq!(
        timeout(WAIT, carol_log).await.unwrap().unwrap(),
        ["INVITE", "ACK", "BYE"]
    );
    drop(pbx);
    assert!(
        timeout(WAIT * 2, bob_log)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_directory_finds_users_and_csv_contacts_for_the_api_and_the_phones() {
    let dir = temp_dir("api-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("contacts.csv");
    std::fs::write(
        &csv,
        "id,firstname,lastname,phone\n1,Hélène,Dupont,0612345678\n2,Marc,Durand,0698765432\n",
    )
    .unwrap();
    let extra = format!(
        r#"
[[directories]]
name = "company"
file = "{}"
searched_columns = ["firstname", "lastname"]
first_matched_columns = ["phone"]
unique_column = "id"
format_columns = {{ name = "{{firstname}} {{lastname}}", number = "{{phone}}" }}
"#,
        csv.display()
    );
    let pbx = Pbx::start_with(dir, free_port(), &extra);
    let api = pbx.api;
    let user = token(api, "1000", "pbx1000pw").await;
    // Lookups: accents ignored, the users and the CSV file both searched.
    let found = get(api, "/directories/lookup/default?term=helene", &user).await;
    assert_eq!(found.status, 200, "{found:?}");
    let found = found.json();
    assert_eq!(found["column_headers"], json!(["Name", "Number"]));
    assert_eq!(
        found["results"][0]["column_values"],
        json!(["Hélène Dupont", "0612345678"])
    );
    assert_eq!(found["results"][0]["source"], "company");
    let users = get(api, "/directories/lookup/default?term=user%201001", &user)
        .await
        .json();
    assert_eq!(
        users["results"][0]["column_values"],
        json!(["User 1001", "1001"])
    );
    assert_eq!(
        get(api, "/directories/lookup/default", &user).await.status,
        400
    );
    assert_eq!(
        get(api, "/directories/lookup/other?term=x", &user)
            .await
            .status,
        404
    );
    // Reverse lookup: the name behind a number, for the user's own screen only.
    let reverse = get(
        api,
        "/directories/reverse/default/me?exten=0698765432",
        &user,
    )
    .await;
    assert_eq!(reverse.status, 200, "{reverse:?}");
    assert_eq!(reverse.json()["display"], "Marc Durand");
    assert_eq!(
        get(
            api,
            "/directories/reverse/default/me?exten=0100000000",
            &user
        )
        .await
        .status,
        404
    );
    assert_eq!(
        get(
            api,
            "/directories/reverse/default/1001?exten=0698765432",
            &user
        )
        .await
        .status,
        403
    );
    // A Yealink phone's directory key: the XML it gets, read back.
    let view = http(
        api,
        "GET",
        "/directories/lookup/default/yealink?term=du",
        &[("User-Agent", "Yealink SIP-T46S 66.86.0.15")],
        b"",
    )
    .await;
    assert_eq!(view.status, 200, "{view:?}");
    assert!(view.headers.to_ascii_lowercase().contains("text/xml"));
    let text = String::from_utf8(view.body).unwrap();
    let xml = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(
        xml.root_element().tag_name().name(),
        "YealinkIPPhoneDirectory"
    );
    let entries: Vec<(String, String)> = xml
        .descendants()
        .filter(|n| n.has_tag_name("DirectoryEntry"))
        .map(|e| {
            let child = |tag: &str| {
                e.children()
                    .find(|c| c.has_tag_name(tag))
                    .and_then(|c| c.text())
                    .unwrap_or_default()
                    .to_owned()
            };
            (child("Name"), child("Telephone"))
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("Hélène Dupont".to_owned(), "0612345678".to_owned()),
            ("Marc Durand".to_owned(), "0698765432".to_owned())
        ]
    );
    let form = http(api, "GET", "/directories/input/default/yealink", &[], b"").await;
    assert_eq!(form.status, 200);
    let text = String::from_utf8(form.body).unwrap();
    assert!(roxmltree::Document::parse(&text).is_ok(), "{text}");
    assert_eq!(
        http(api, "GET", "/directories/input/default/nokia", &[], b"")
            .await
            .status,
        404
    );
}

/// A webhook receiver: answers its first request 500 (a retry must follow), the
/// rest 200, and hands over the JSON bodies it got.
fn webhook_receiver() -> (SocketAddr, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 { "500 Oops" } else { "200 OK" };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if n > 0 && tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_webhook_gets_the_calls_events_in_order_after_a_retry() {
    let (receiver, bodies) = webhook_receiver();
    let extra = format!(
        "\n[[webhooks]]\nurl = \"http://{receiver}/hook\"\nevents = [\"call_created\", \"call_updated\", \"call_ended\"]\n"
    );
    let pbx = Pbx::start_with(temp_dir("api-webhook"), free_port(), &extra);
    let alice = registered("1000", "pbx1000pw", &pbx).await;
    let bob = registered("1001", "pbx1001pw", &pbx).await;
    let _bob_log = bob.answer_calls(StatusCode::OK);
    let (invite, answer) = call(&alice, "1001").await;
    assert_eq!(answer.status(), Some(StatusCode::OK), "{answer}");
    assert_eq!(
        ack_and_bye(&alice, &invite, &answer, "1001").await,
        StatusCode::OK
    );
    let call_id = invite.call_id().unwrap().0.to_string();
    let got: Vec<Value> = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| bodies.recv_timeout(Duration::from_secs(15)).unwrap())
            .collect()
    })
    .await
    .unwrap();
    let names: Vec<&str> = got.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["call_created", "call_updated", "call_ended"],
        "{got:#?}"
    );
    assert!(got.iter().all(|e| e["data"]["call_id"] == call_id.as_str()));
}
