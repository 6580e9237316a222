//! IVR menus (`[[ivrs]]`): the PBX answers a menu's extension, plays its prompt
//! (a WAV file, or the built-in "please make your selection") and waits `timeout`
//! seconds for a key. A key among its `choices` sends the call there (a user or a
//! group, rung for the caller, who hears ringback: [`Command::Divert`]); a key
//! pressed during the prompt counts at once. Another key says "that is not a valid
//! option" and plays the menu again; no key plays it again too. After `retries`
//! prompts the caller goes to `default`, or is hung up without one.

use crate::session::{Input, RATE, Session};
use pbxkit::engine::{CallId, Command};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A menu's settings, from `[[ivrs]]`.
#[derive(Debug, Clone)]
pub(crate) struct Menu {
    pub(crate) name: String,
    pub(crate) prompt: Option<PathBuf>,
    pub(crate) choices: BTreeMap<String, String>,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) default: Option<String>,
}

/// What the caller chose: where the call goes, or `None` to hang up.
fn choose(menu: &Menu, key: char) -> Option<&String> {
    menu.choices.get(key.encode_utf8(&mut [0; 4]) as &str)
}

/// Runs `menu` for `call`: the engine is told where the caller goes (or to hang
/// up). Returns when the caller has chosen, or hung up.
pub(crate) async fn run(
    mut session: Session,
    menu: Menu,
    call: CallId,
    commands: mpsc::Sender<(CallId, Command)>,
) {
    let prompt = match &menu.prompt {
        Some(path) => {
            let path = path.clone();
            // A file that no longer reads (it was checked at load) plays the
            // built-in prompt.
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(path).ok()?;
                pbxkit_rtp::wav::read_mono(std::io::BufReader::new(file), RATE).ok()
            })
            .await
            .ok()
            .flatten()
        }
        None => None,
    };
    let play_menu = |session: &mut Session| match &prompt {
        Some(pcm) => session.play(pcm),
        None => session.say(&["ivr-menu"]),
    };
    let mut chosen = None;
    'menu: for _ in 0..menu.retries {
        play_menu(&mut session);
        let mut key = match session.played().await {
            Input::HungUp => return,
            Input::Key(k) => Some(k),
            _ => None,
        };
        if key.is_none() {
            let deadline = Instant::now() + menu.timeout;
            loop {
                match session.next(Some(deadline)).await {
                    Input::Key(k) => {
                        key = Some(k);
                        break;
                    }
                    Input::HungUp => return,
                    Input::Deadline => break,
                    Input::Frame(_) | Input::PlayedOut => {}
                }
            }
        }
        let Some(key) = key else {
            continue;
        };
        match choose(&menu, key) {
            Some(to) => {
                chosen = Some(to.clone());
                break 'menu;
            }
            None => {
                tracing::debug!(menu = %menu.name, %key, "not a choice of the menu");
                session.say(&["ivr-invalid"]);
                if session.played().await == Input::HungUp {
                    return;
                }
            }
        }
    }
    let command = match chosen.or(menu.default.clone()) {
        Some(to) => {
            tracing::debug!(menu = %menu.name, %to, "IVR choice");
            Command::Divert(to)
        }
        None => Command::HangUp,
    };
    let _ = commands.send((call, command)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_chooses_its_destination() {
        let menu = Menu {
            name: "reception".into(),
            prompt: None,
            choices: BTreeMap::from([("1".into(), "1001".into()), ("#".into(), "3000".into())]),
            timeout: Duration::from_secs(5),
            retries: 3,
            default: None,
        };
        assert_eq!(choose(&menu, '1').map(String::as_str), Some("1001"));
        assert_eq!(choose(&menu, '#').map(String::as_str), Some("3000"));
        assert_eq!(choose(&menu, '2'), None);
    }
}
