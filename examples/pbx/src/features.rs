//! Feature codes that change the caller's own services: `*20` all forwards off,
//! `*21`/`*22`/`*23` + number the unconditional, no-answer and busy forwards (alone:
//! off when on), `*25` do-not-disturb on/off. The dialplan recognises the code
//! ([`pbxkit_dialplan::FeatureAction`]); this module applies it to the live state
//! ([`crate::live::Users`]), and the caller hears a confirmation (the playback
//! application's beeps) once the change is saved.

use crate::live::{StoreError, Users};
use pbxkit_dialplan::config::Forward;
use pbxkit_dialplan::{FeatureAction, ForwardKind, ForwardTarget, UserServices};

/// Whether `action` is one this module applies.
pub(crate) fn changes_services(action: &FeatureAction) -> bool {
    matches!(
        action,
        FeatureAction::ForwardsOff | FeatureAction::SetForward { .. } | FeatureAction::ToggleDnd
    )
}

/// Why a feature code was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FeatureError {
    /// The code needs a number the caller did not dial (`*21` alone with the forward
    /// off: asking for it needs an IVR, not there yet).
    #[error("a number must follow the code")]
    Incomplete,
    /// The code does not change services.
    #[error("not a services feature code")]
    NotServices,
    /// The change could not be saved.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `action` to `user`'s live services (starting from `configured` when it
/// has never changed them); the services after the change.
pub(crate) async fn apply(
    users: &Users,
    user: &str,
    configured: &UserServices,
    action: &FeatureAction,
) -> Result<UserServices, FeatureError> {
    let change: Box<dyn FnOnce(&mut UserServices) + Send> = match action {
        FeatureAction::ToggleDnd => Box::new(|s| s.dnd = !s.dnd),
        FeatureAction::ForwardsOff => Box::new(|s| {
            for f in [
                &mut s.forwards.unconditional,
                &mut s.forwards.busy,
                &mut s.forwards.no_answer,
            ] {
                f.enabled = false;
            }
        }),
        FeatureAction::SetForward { kind, destination } => {
            let kind = *kind;
            let forward = match destination {
                ForwardTarget::Number(n) => Forward {
                    enabled: true,
                    destination: n.clone(),
                },
                ForwardTarget::Off => Forward {
                    enabled: false,
                    destination: String::new(),
                },
                ForwardTarget::Ask | ForwardTarget::Toggle => {
                    return Err(FeatureError::Incomplete);
                }
            };
            Box::new(move |s| {
                let f = &mut s.forwards;
                let slot = match kind {
                    ForwardKind::Unconditional => &mut f.unconditional,
                    ForwardKind::Busy => &mut f.busy,
                    ForwardKind::NoAnswer => &mut f.no_answer,
                };
                // Turning a forward off keeps its number for the next time.
                if forward.enabled {
                    *slot = forward;
                } else {
                    slot.enabled = false;
                }
            })
        }
        _ => return Err(FeatureError::NotServices),
    };
    Ok(users.update(user, configured, change).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Bus;
    use std::sync::Arc;

    #[derive(Debug, Default)]
    struct Memory;

    #[async_trait::async_trait]
    impl crate::live::UserStore for Memory {
        async fn load(
            &self,
        ) -> Result<std::collections::HashMap<String, UserServices>, StoreError> {
            Ok(Default::default())
        }
        async fn save(&self, _: &str, _: &UserServices) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn codes_turn_services_on_and_off() {
        let users = Users::open(Arc::new(Memory), Bus::new()).await.unwrap();
        let none = UserServices::default();
        let set = |kind, to: &str| FeatureAction::SetForward {
            kind,
            destination: ForwardTarget::Number(to.into()),
        };
        let s = apply(&users, "1000", &none, &FeatureAction::ToggleDnd)
            .await
            .unwrap();
        assert!(s.dnd);
        let s = apply(&users, "1000", &none, &set(ForwardKind::Busy, "1002"))
            .await
            .unwrap();
        assert!(s.dnd && s.forwards.busy.enabled);
        assert_eq!(s.forwards.busy.destination, "1002");
        let off = FeatureAction::SetForward {
            kind: ForwardKind::Busy,
            destination: ForwardTarget::Off,
        };
        let s = apply(&users, "1000", &none, &off).await.unwrap();
        assert!(!s.forwards.busy.enabled);
        assert_eq!(s.forwards.busy.destination, "1002", "kept for next time");
        apply(&users, "1000", &none, &set(ForwardKind::NoAnswer, "1003"))
            .await
            .unwrap();
        let s = apply(&users, "1000", &none, &FeatureAction::ForwardsOff)
            .await
            .unwrap();
        assert!(!s.forwards.no_answer.enabled && s.dnd);
        let ask = FeatureAction::SetForward {
            kind: ForwardKind::Unconditional,
            destination: ForwardTarget::Ask,
        };
        assert!(matches!(
            apply(&users, "1000", &none, &ask).await,
            Err(FeatureError::Incomplete)
        ));
        assert!(matches!(
            apply(&users, "1000", &none, &FeatureAction::Park).await,
            Err(FeatureError::NotServices)
        ));
    }
}
