//! A registrar with digest authentication, sans-IO: a phone's REGISTER without
//! credentials gets `401` with a challenge, the phone answers it with the crate's
//! client-side digest ([`digest::respond`]), the second REGISTER gets `200` with the
//! binding, a lookup of the address of record finds the contact, and the binding is
//! gone once its expiry has passed.
//!
//! Nothing here touches the network or the clock: messages are built and answered in
//! memory, and time is Unix seconds passed to every call, so the expiry is simulated
//! (nothing sleeps). Run it with `cargo run -p pbxkit-sip --example registrar`.

use pbxkit_sip::digest::{self, Algorithm, DigestServer};
use pbxkit_sip::registrar::{MemoryStore, Registrar, RegistrarConfig};
use pbxkit_sip::{Auth, HeaderName, Message, ParseError, StatusCode};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const REALM: &str = "pbx.example.com";
const AOR: &str = "sip:1000@pbx.example.com";
const CONTACT: &str = "sip:1000@192.0.2.10:5062";
const PASSWORD: &str = "correct horse";
/// 2023-11-14T22:13:20Z: the simulated clock starts here.
const T0: u64 = 1_700_000_000;
/// What the phone asks for; within the registrar's 60..=3600 s, so granted as is.
const EXPIRES: u64 = 600;

/// The server side: nonces and their replay memory, and the bindings.
struct Server {
    digest: DigestServer,
    registrar: Registrar<MemoryStore>,
}

impl Server {
    /// The answer to a REGISTER received at `now`.
    fn handle(&mut self, request: &Message, now: u64) -> Result<Message> {
        let credentials = request
            .headers()
            .typed::<Auth>(&HeaderName::Authorization)
            .transpose()?;
        let Some(credentials) = credentials else {
            return Ok(self.challenge(request, now, false));
        };
        // The password store is a closure: unknown users are refused like bad passwords.
        let verified = self.digest.verify(&credentials, "REGISTER", now, |user| {
            (user == "1000").then(|| PASSWORD.to_owned())
        });
        let user = match verified {
            Ok(who) => who.username,
            // An expired nonce is not a wrong password: ask again with stale=true.
            Err(error) => return Ok(self.challenge(request, now, error.is_stale())),
        };
        // Authenticated is not authorised: user 1000 may only register its own AOR.
        let to = &request.to()?.uri;
        let owner = to.as_sip().and_then(|u| u.user.as_deref());
        if owner != Some(user.as_str()) {
            return Ok(Message::response_to(
                request,
                StatusCode::FORBIDDEN,
                Some("r1"),
            ));
        }
        Ok(
            match self.registrar.register(request, &to.to_string(), None, now) {
                Ok(bindings) => {
                    Registrar::<MemoryStore>::ok_response(request, &bindings, "r1", now)
                }
                // 423 with Min-Expires, 400, 403...: the error knows its response.
                Err(error) => error.response(request, "r1"),
            },
        )
    }

    fn challenge(&self, request: &Message, now: u64, stale: bool) -> Message {
        let mut r = Message::response_to(request, StatusCode::UNAUTHORIZED, Some("r1"));
        let challenge = self.digest.challenge(now, Algorithm::Md5, stale);
        r.headers_mut()
            .push(HeaderName::WwwAuthenticate, challenge.to_string());
        r
    }
}

/// The phone's REGISTER number `cseq` (same Call-ID for every one, as RFC 3261 asks).
fn register(cseq: u32, authorization: Option<&Auth>) -> Result<Message, ParseError> {
    let mut text = format!(
        "REGISTER sip:{REALM} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKreg{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <{AOR}>;tag=ph1\r\nTo: <{AOR}>\r\n\
         Call-ID: reg-7c1f@192.0.2.10\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <{CONTACT}>\r\nExpires: {EXPIRES}\r\n"
    );
    if let Some(auth) = authorization {
        text.push_str(&format!("Authorization: {auth}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Message::parse(text.into_bytes())
}

fn show(direction: &str, message: &Message) {
    let wire = message.to_bytes();
    println!("{direction}");
    for line in String::from_utf8_lossy(&wire)
        .lines()
        .filter(|l| !l.is_empty())
    {
        println!("    {line}");
    }
}

fn main() -> Result<()> {
    let mut server = Server {
        // The secret signs the nonces: any node holding it can check them.
        digest: DigestServer::new(REALM, b"an example secret, 32 bytes long", 300),
        registrar: Registrar::new(RegistrarConfig::default(), MemoryStore::new()),
    };

    println!("1. REGISTER without credentials at T0");
    let first = register(1, None)?;
    show("  phone -> registrar", &first);
    let challenged = server.handle(&first, T0)?;
    show("  registrar -> phone", &challenged);
    assert_eq!(challenged.status(), Some(StatusCode::UNAUTHORIZED));

    println!("2. the phone answers the challenge and registers again at T0+1");
    let challenge = challenged
        .headers()
        .typed::<Auth>(&HeaderName::WwwAuthenticate)
        .ok_or("no WWW-Authenticate")??;
    // The digest covers the Request-URI; cnonce should be random, nc counts from 1.
    let credentials = digest::respond(
        &challenge,
        "REGISTER",
        &format!("sip:{REALM}"),
        "1000",
        PASSWORD,
        "0a4f113b",
        1,
    )
    .ok_or("not a usable Digest challenge")?;
    let second = register(2, Some(&credentials))?;
    show("  phone -> registrar", &second);
    let ok = server.handle(&second, T0 + 1)?;
    show("  registrar -> phone", &ok);
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let contacts: Vec<_> = ok.contacts().collect::<Result<_, _>>()?;
    assert_eq!(contacts.len(), 1, "the 200 lists the binding");

    println!("3. a call for {AOR} at T0+2: where is the phone?");
    let bindings = server.registrar.lookup(AOR, T0 + 2);
    let binding = bindings.first().ok_or("no binding")?;
    println!("    {} ({} s left)", binding.uri, binding.remaining(T0 + 2));
    assert_eq!(binding.uri.to_string(), CONTACT);
    assert_eq!(binding.expires_at, T0 + 1 + EXPIRES);

    // Simulated time: the phone never refreshes.
    let last = T0 + EXPIRES;
    println!("4. at T0+{EXPIRES} (1 s before expiry): still registered");
    assert_eq!(server.registrar.lookup(AOR, last).len(), 1);
    let expiry = T0 + 1 + EXPIRES;
    // Lookups already ignore expired bindings; expire() frees their storage.
    let removed = server.registrar.expire(expiry);
    println!(
        "5. at T0+{}: expire() removed {removed} binding(s)",
        1 + EXPIRES
    );
    assert_eq!(removed, 1);
    assert!(server.registrar.lookup(AOR, expiry).is_empty());
    assert!(server.registrar.store().is_empty());
    Ok(())
}

// `cargo test` runs the example too (`test = true` in Cargo.toml): it asserts what
// it shows.
#[test]
fn runs() -> Result<()> {
    main()
}
