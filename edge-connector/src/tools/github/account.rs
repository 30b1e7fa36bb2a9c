//! `github_whoami`: which GitHub Enterprise account the calling user's token acts as.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::call::CallFailure;

use super::common;
use crate::tools::tool::{READ, Rendered, Tool, ToolCall};

/// Arguments of `github_whoami`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The GitHub Enterprise instance (as named in the connector's configuration); needed
    /// only when the connector has several.
    pub instance: Option<String>,
}

/// The account.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Account {
    /// Login.
    pub login: String,
    /// Display name.
    pub name: Option<String>,
    /// Whether the account administers the whole server.
    pub site_admin: bool,
    /// The instance.
    pub instance: String,
}

#[derive(Deserialize)]
pub(super) struct RawUser {
    login: String,
    name: Option<String>,
    #[serde(default)]
    site_admin: bool,
}

/// `github_whoami`.
pub struct Whoami;

impl Tool for Whoami {
    type Args = Args;
    type Output = Account;
    const NAME: &'static str = "github_whoami";
    const DESCRIPTION: &'static str =
        "Who am I on GitHub Enterprise: the login the calling user's own token acts as.";
    const HINTS: crate::tools::tool::Hints = READ;
    const TARGET: &'static [&'static str] = &[];

    async fn run(&self, cx: &ToolCall<'_>, args: Args) -> Result<Rendered<Account>, CallFailure> {
        let inst = common::instance(cx, args.instance.as_deref())?;
        let u: RawUser = cx.whoami(inst).await?;
        let text = format!(
            "{} on {}{}",
            u.login,
            inst.display_name,
            if u.site_admin { " (site admin)" } else { "" }
        );
        Ok(Rendered {
            output: Account {
                login: u.login,
                name: u.name,
                site_admin: u.site_admin,
                instance: inst.config.name.clone(),
            },
            text,
        })
    }
}
