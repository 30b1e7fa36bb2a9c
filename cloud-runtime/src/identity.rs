//! Who is calling, and the names that say so.
//!
//! Every MCP request carries two identities within one tenant: the human user and the agent
//! (application) acting for them ([`Principal`]). User, agent, role and group names follow one
//! rule ([`valid_name`]); gateway names follow the tenant-name rule. Each kind of name has its
//! own type, parsed once where the name enters the runtime (a token, a store row, a URL, a
//! policy file), so the code past that edge cannot mix them up or skip the check.
//!
//! This module depends on no other module of the crate: the MCP surface, OAuth and the policy
//! engine all use it, and none of them needs another to name a caller.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use shared::identity::{TenantId, UserId};

/// Why a name was refused. The refused text is not repeated: it may come from anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// A user, agent, role or group name outside the name rule ([`valid_name`]).
    #[error("{kind} must be 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    Principal {
        /// Which kind of name.
        kind: &'static str,
    },
    /// A gateway name outside the tenant-name rule.
    #[error(
        "gateway name must be 1 to 63 lowercase letters, digits and '-', and must not start with '-'"
    )]
    Gateway,
}

/// Whether `s` is usable as a user, agent, role or group name: 1 to 64 of letters, digits,
/// '.', '_', '-', '@'. One rule for names typed by an admin and names asserted by an identity
/// provider, so neither can smuggle separators into audit records or the tunnel.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// Whether `s` is usable as a gateway name: the tenant-name rule (1 to 63 of lowercase
/// letters, digits and '-', not starting with '-'), so it can stand in a URL path and a
/// response header as it is.
fn valid_gateway(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

macro_rules! name_newtype {
    ($(#[$doc:meta])* $name:ident, $check:expr, $err:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `s` against the rule of this kind of name.
            pub fn parse(s: &str) -> Result<Self, NameError> {
                if $check(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err($err)
                }
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                if $check(&s) { Ok(Self(s)) } else { Err($err) }
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_newtype!(
    /// A user's name: for display and for `policy check`; names can pass to someone else, so
    /// what must follow one person is keyed by their [`UserId`].
    UserName,
    valid_name,
    NameError::Principal { kind: "user name" }
);
name_newtype!(
    /// An agent's (application's) name.
    AgentName,
    valid_name,
    NameError::Principal { kind: "agent name" }
);
name_newtype!(
    /// A role an agent has, defined in the tenant policy.
    RoleName,
    valid_name,
    NameError::Principal { kind: "role name" }
);
name_newtype!(
    /// A group a user is in: their grants, defined in the tenant policy.
    GroupName,
    valid_name,
    NameError::Principal { kind: "group name" }
);
name_newtype!(
    /// A gateway's name: a named tool collection of one tenant, part of its MCP URL.
    GatewayName,
    valid_gateway,
    NameError::Gateway
);

/// User name of the development principal.
pub const DEV_USER: &str = "dev-user";
/// Agent name of the development principal.
pub const DEV_AGENT: &str = "dev-agent";
/// Role of the development agent (define it in the tenant policy to allow tools).
pub const DEV_ROLE: &str = "dev";
/// Group of the development user.
pub const DEV_GROUP: &str = "dev";

/// The identities behind one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Tenant (from the URL, confirmed by the credentials).
    pub tenant: TenantId,
    /// The human user's stable id: what grants, sessions, the connector's vault entries and
    /// audit records follow.
    pub user_id: UserId,
    /// The human user's name (display; names can pass to someone else).
    pub user: UserName,
    /// The user's groups (their grants), as asserted when their token was issued.
    pub groups: Vec<GroupName>,
    /// The agent application.
    pub agent: AgentName,
    /// The agent's role.
    pub role: RoleName,
}

impl Principal {
    /// The fixed principal of the development mode (`serve --dev-unauthenticated`): user
    /// [`DEV_USER`] in group [`DEV_GROUP`], agent [`DEV_AGENT`] with role [`DEV_ROLE`].
    pub fn dev(tenant: TenantId) -> Self {
        // The constants follow the name rule (checked by a test), so no check can fail here.
        Self {
            tenant,
            user_id: UserId::from_bytes(&[0; 16]),
            user: UserName(DEV_USER.to_owned()),
            groups: vec![GroupName(DEV_GROUP.to_owned())],
            agent: AgentName(DEV_AGENT.to_owned()),
            role: RoleName(DEV_ROLE.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_names_follow_one_rule() {
        for ok in ["alice", "a", "bot.v2_x-y@corp", &"n".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
            assert!(UserName::parse(ok).is_ok() && GroupName::parse(ok).is_ok());
        }
        for bad in ["", "a b", "a/b", "a:b", "é", &"n".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
            assert_eq!(
                AgentName::parse(bad),
                Err(NameError::Principal { kind: "agent name" })
            );
            assert!(RoleName::try_from(bad.to_owned()).is_err());
        }
    }

    #[test]
    fn gateway_names_follow_the_tenant_rule_not_the_principal_rule() {
        for ok in ["eng", "a-1", &"g".repeat(63)] {
            assert_eq!(
                GatewayName::parse(ok).map(|g| g.to_string()),
                Ok(ok.to_owned())
            );
            assert!(ok.parse::<TenantId>().is_ok(), "same rule as tenants: {ok}");
        }
        for bad in [
            "",
            "-eng",
            "Eng",
            "a.b",
            "a@b",
            "a_b",
            "a/b",
            &"g".repeat(64),
        ] {
            assert_eq!(GatewayName::parse(bad), Err(NameError::Gateway), "{bad:?}");
            assert!(
                bad.parse::<TenantId>().is_err(),
                "same rule as tenants: {bad:?}"
            );
        }
    }

    #[test]
    fn the_development_principal_has_valid_names() {
        let p = Principal::dev("acme".parse().unwrap());
        assert!(valid_name(p.user.as_str()) && valid_name(p.agent.as_str()));
        assert!(valid_name(p.role.as_str()));
        assert!(p.groups.iter().all(|g| valid_name(g.as_str())));
        assert_eq!(p.user.as_str(), DEV_USER);
    }

    #[test]
    fn refusals_do_not_repeat_the_refused_text() {
        let e = UserName::parse("x\ny").unwrap_err().to_string();
        assert_eq!(
            e,
            "user name must be 1 to 64 letters, digits, '.', '_', '-' or '@'"
        );
    }
}
