//! Asking the identity provider again, at a refresh, whether a user still is who their
//! grant says.
//!
//! A user of a tenant's identity provider gets their groups from the provider at sign-in.
//! Without asking again, someone removed from a group (or disabled) at the provider would
//! keep what the group granted for as long as their refresh token lives. So when a user's
//! token is refreshed and their last check is older than the tenant's `recheck_secs`, the
//! runtime asks the provider with the refresh token it gave at sign-in: the groups it
//! asserts now replace the stored ones, and a "no" from the provider ends every grant of
//! the user. Where the provider gave no refresh token there is nothing to ask with, so the
//! grant ends at the first refresh past that age and the user signs in again. A provider
//! that cannot be reached makes the refresh fail as temporarily unavailable, never pass
//! unchecked.

use super::OAuth;
use super::idp::IdpError;
use crate::identity::valid_name;
use crate::store::oauth::{Recheck, UserRow};

/// What a refresh may do after the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on: the user was checked recently enough, or just now.
    Continue,
    /// The user must sign in again; their grants have ended.
    Ended,
    /// The provider (or the store) could not be asked; try again later.
    Unavailable,
}

/// Checks `user` of `tenant` at the provider if their last check is too old.
pub async fn at_refresh(o: &OAuth, tenant: &str, user: &UserRow) -> Verdict {
    let Some(subject) = user.subject.as_deref() else {
        // A local user: the runtime itself is the authority on their groups.
        return Verdict::Continue;
    };
    let idp = match o.store.idp(tenant).await {
        Ok(Some(idp)) => idp,
        // The tenant no longer signs users in at a provider: its users' grants end.
        Ok(None) => return end(o, tenant, user).await,
        Err(_) => return Verdict::Unavailable,
    };
    let max_age_ms = idp.recheck_secs.saturating_mul(1000);
    let (token, previous) = match o
        .store
        .claim_idp_recheck(tenant, &user.id, max_age_ms)
        .await
    {
        Ok(Recheck::Fresh) => return Verdict::Continue,
        Ok(
            Recheck::NoSession
            | Recheck::Due {
                refresh_token: None,
                ..
            },
        ) => {
            return end(o, tenant, user).await;
        }
        Ok(Recheck::Due {
            refresh_token: Some(token),
            previous,
        }) => (token, previous),
        Err(_) => return Verdict::Unavailable,
    };
    match o.idp.recheck(&idp, &token, subject).await {
        Ok(now) => {
            let groups: Vec<String> = now.groups.into_iter().filter(|g| valid_name(g)).collect();
            let token = now
                .refresh_token
                .as_ref()
                .map_or(token.as_str(), |t| t.expose());
            let stored = o
                .store
                .set_user_groups(tenant, user.id.as_str(), &groups)
                .await;
            let session = o
                .store
                .set_idp_session(tenant, &user.id, Some(token), now.id_token.expose())
                .await;
            if stored.is_err() || session.is_err() {
                return Verdict::Unavailable;
            }
            tracing::info!(tenant, user = %user.name, "groups checked again at the identity provider");
            Verdict::Continue
        }
        Err(e @ (IdpError::GrantEnded | IdpError::IdToken(_))) => {
            tracing::warn!(tenant, user = %user.name, error = %e, "the identity provider no longer allows the user; their grants end");
            end(o, tenant, user).await
        }
        Err(e) => {
            tracing::warn!(tenant, error = %e, "identity provider unreachable for a re-check");
            let _ = o
                .store
                .release_idp_recheck(tenant, &user.id, previous)
                .await;
            Verdict::Unavailable
        }
    }
}

async fn end(o: &OAuth, tenant: &str, user: &UserRow) -> Verdict {
    match o.store.end_user_grants(tenant, &user.id).await {
        Ok(()) => Verdict::Ended,
        Err(_) => Verdict::Unavailable,
    }
}
