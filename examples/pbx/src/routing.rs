//! The PBX's users as a pbxkit-dialplan configuration: one internal context,
//! `default`, with each user's extension. The dialplan crate decides; the PBX
//! executes (today: `pbxkit dialplan explain`; call routing moves onto it next).

use crate::config::Config;
use pbxkit_dialplan::Dialplan;

/// The dialplan configuration (TOML) for the PBX's users.
pub(crate) fn dialplan_toml(config: &Config) -> String {
    let mut text =
        String::from("[[contexts]]\nname = \"default\"\nkind = \"internal\"\nranges.users = [");
    for (i, user) in config.users.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("{{ start = {:?} }}", user.exten));
    }
    text.push_str("]\n");
    for user in &config.users {
        text.push_str(&format!(
            "\n[[users]]\nname = {:?}\nextension = {:?}\ncontext = \"default\"\nlines = [{:?}]\nring_time = {}\n",
            user.exten, user.exten, user.exten, config.pbx.ring_time
        ));
    }
    text
}

/// The compiled dialplan, or why it does not compile.
pub(crate) fn dialplan(config: &Config) -> Result<Dialplan, String> {
    let text = dialplan_toml(config);
    let parsed: pbxkit_dialplan::Config =
        toml::from_str(&text).map_err(|e| format!("dialplan: {e}"))?;
    Dialplan::new(parsed, jiff::tz::db()).map_err(|e| format!("dialplan: {e}"))
}
