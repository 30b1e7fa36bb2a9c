//! `gitlab_whoami`: which GitLab account the calling user's token acts as.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;

use super::common;
use crate::tools::tool::{Hints, READ, Rendered, Tool, ToolCall};

/// Arguments of `gitlab_whoami`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The GitLab instance (as named in the connector's configuration); needed only when
    /// the connector has several.
    pub instance: Option<String>,
}

/// The account.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Account {
    /// Username.
    pub username: String,
    /// Display name.
    pub name: Option<String>,
    /// Whether the account administers the whole instance.
    pub admin: bool,
    /// The instance.
    pub instance: String,
}

#[derive(Deserialize)]
struct RawUser {
    username: String,
    name: Option<String>,
    // Only shown to administrators; absent means not one.
    #[serde(default)]
    is_admin: bool,
}

/// `gitlab_whoami`.
pub struct Whoami;

impl Tool for Whoami {
    type Args = Args;
    type Output = Account;
    const NAME: &'static str = "gitlab_whoami";
    const DESCRIPTION: &'static str =
        "Who am I on GitLab: the username the calling user's own token acts as.";
    const HINTS: Hints = READ;
    const TARGET: &'static [&'static str] = &[];

    async fn run(&self, cx: &ToolCall<'_>, args: Args) -> Result<Rendered<Account>, CallFailure> {
        let inst = common::instance(cx, args.instance.as_deref())?;
        let u: RawUser = cx.whoami(inst).await?;
        let text = format!(
            "{} on {}{}",
            u.username,
            inst.display_name,
            if u.is_admin { " (admin)" } else { "" }
        );
        Ok(Rendered {
            output: Account {
                username: u.username,
                name: u.name,
                admin: u.is_admin,
                instance: inst.config.name.clone(),
            },
            text,
        })
    }
}
