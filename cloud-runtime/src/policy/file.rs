//! The tenant policy file: TOML, versioned, validated with errors that name the file, the
//! line and the field.
//!
//! ```toml
//! version = 1                                  # format version (this runtime reads 1)
//!
//! [roles.triage]                               # agent roles (`agent create --role`)
//! description = "Read issues, comment"
//! allow = [
//!   { tools = ["github_get_issue", "github_comment_on_issue"], repos = ["acme/**"] },
//! ]
//!
//! [groups.engineering]                         # user grants, by identity-provider group
//! allow = [{ tools = ["github_*", "gitlab_*"] }]
//!
//! [groups.sandbox-testers]                     # rules may name the connector's upstream
//! allow = [                                    # instance ([[provider]] name); a rule that
//!   { tools = ["github_*"], instance = "ghes-sandbox" },         # names none matches every
//!   { tools = ["gitlab_*"], repos = ["gitlab-prod:docs/**"] },   # instance
//! ]
//!
//! [gateways.engineering]                       # tool collections (created if missing)
//! tools = ["github_*", "gitlab_*", "diag.ping"]
//! instructions = "Source control of the private network"
//!
//! [audit]
//! record_arguments = false                     # default: arguments are recorded as hashes
//!
//! [hooks]
//! confirm_destructive = true                   # ask the user before destructive tools
//! redact_secrets = true                        # strip token-shaped strings from outputs
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use shared::policy::{AllowRule, Instance, Place, RuleSet, ToolPattern};
use toml::Spanned;

use crate::identity::{GatewayName, valid_name};

/// The policy format this runtime reads.
pub const FORMAT_VERSION: u32 = 1;

/// Largest policy file accepted.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// A policy file that cannot be applied, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct PolicyError {
    /// The file's name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The field, as a dotted path (`roles.triage.allow[0].tools[1]`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Who may call what: the compiled form of one tenant's policy file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantPolicy {
    /// Agent roles, by name.
    pub roles: BTreeMap<String, Grant>,
    /// User grants, by identity-provider group.
    pub groups: BTreeMap<String, Grant>,
    /// Gateways the file defines.
    pub gateways: BTreeMap<String, GatewayDef>,
    /// Audit settings.
    pub audit: AuditSettings,
    /// Hook settings.
    pub hooks: HookSettings,
}

/// A role's or a group's allow-rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// For people reading `policy show`.
    pub description: Option<String>,
    /// The rules.
    pub rules: RuleSet,
}

/// A gateway as the policy defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayDef {
    /// Tool patterns it exposes.
    pub tools: Vec<String>,
    /// Text returned at initialize.
    pub instructions: Option<String>,
}

/// What the audit trail keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditSettings {
    /// Record tool arguments in clear (default: only their SHA-256).
    pub record_arguments: bool,
}

/// Which built-in hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookSettings {
    /// Ask the user to confirm tools marked destructive.
    pub confirm_destructive: bool,
    /// Redact token-shaped strings from tool outputs.
    pub redact_secrets: bool,
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            confirm_destructive: true,
            redact_secrets: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Spanned<u32>,
    #[serde(default)]
    roles: BTreeMap<Spanned<String>, RawGrant>,
    #[serde(default)]
    groups: BTreeMap<Spanned<String>, RawGrant>,
    #[serde(default)]
    gateways: BTreeMap<Spanned<String>, RawGateway>,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    hooks: RawHooks,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    description: Option<String>,
    allow: Spanned<Vec<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    tools: Spanned<Vec<Spanned<String>>>,
    instance: Option<Spanned<String>>,
    repos: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    tools: Spanned<Vec<Spanned<String>>>,
    instructions: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    record_arguments: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    #[serde(default = "yes")]
    confirm_destructive: bool,
    #[serde(default = "yes")]
    redact_secrets: bool,
}

impl Default for RawHooks {
    fn default() -> Self {
        Self {
            confirm_destructive: true,
            redact_secrets: true,
        }
    }
}

fn yes() -> bool {
    true
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn error(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> PolicyError {
        let before = self.text.get(..span.start).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    fn grant(&self, path: &str, raw: RawGrant) -> Result<Grant, PolicyError> {
        let allow_span = raw.allow.span();
        let rules = raw.allow.into_inner();
        if rules.is_empty() {
            return Err(self.error(
                allow_span,
                &format!("{path}.allow"),
                "allows nothing: add a rule, or remove the entry",
            ));
        }
        let mut out = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            let at = format!("{path}.allow[{i}]");
            let tools_span = rule.tools.span();
            let tools = rule.tools.into_inner();
            if tools.is_empty() {
                return Err(self.error(
                    tools_span,
                    &format!("{at}.tools"),
                    "names no tool pattern",
                ));
            }
            let mut tool_texts = Vec::with_capacity(tools.len());
            for (j, t) in tools.into_iter().enumerate() {
                if let Err(e) = t.get_ref().parse::<ToolPattern>() {
                    return Err(self.error(
                        t.span(),
                        &format!("{at}.tools[{j}]"),
                        format!("{:?}: {e}", t.get_ref()),
                    ));
                }
                tool_texts.push(t.into_inner());
            }
            let instance = match rule.instance {
                None => None,
                Some(i) => match i.get_ref().parse::<Instance>() {
                    Ok(name) => Some(name),
                    Err(e) => {
                        return Err(self.error(
                            i.span(),
                            &format!("{at}.instance"),
                            format!("{:?}: {e}", i.get_ref()),
                        ));
                    }
                },
            };
            let repos = match rule.repos {
                None => None,
                Some(r) => {
                    let span = r.span();
                    let list = r.into_inner();
                    if list.is_empty() {
                        return Err(self.error(
                            span,
                            &format!("{at}.repos"),
                            "is empty: name at least one repository pattern, or omit repos to allow any",
                        ));
                    }
                    let mut texts = Vec::with_capacity(list.len());
                    for (j, p) in list.into_iter().enumerate() {
                        if let Err(e) = Place::parse(p.get_ref(), instance.as_ref()) {
                            return Err(self.error(
                                p.span(),
                                &format!("{at}.repos[{j}]"),
                                e.to_string(),
                            ));
                        }
                        texts.push(p.into_inner());
                    }
                    Some(texts)
                }
            };
            // Every pattern was checked above, so this cannot fail; map it anyway.
            let rule = AllowRule::parse(
                &tool_texts,
                instance.as_ref().map(Instance::as_str),
                repos.as_deref(),
            )
            .map_err(|e| self.error(tools_span.clone(), &at, e.to_string()))?;
            out.push(rule);
        }
        Ok(Grant {
            description: raw.description,
            rules: RuleSet(out),
        })
    }

    fn grants(
        &self,
        section: &str,
        raw: BTreeMap<Spanned<String>, RawGrant>,
    ) -> Result<BTreeMap<String, Grant>, PolicyError> {
        let mut out = BTreeMap::new();
        for (name, grant) in raw {
            if !valid_name(name.get_ref()) {
                return Err(self.error(
                    name.span(),
                    &format!("{section}.{}", name.get_ref()),
                    "names must be 1 to 64 letters, digits, '.', '_', '-' or '@'",
                ));
            }
            let path = format!("{section}.{}", name.get_ref());
            out.insert(name.into_inner(), self.grant(&path, grant)?);
        }
        Ok(out)
    }
}

/// Parses and validates a policy file's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<TenantPolicy, PolicyError> {
    let c = Checker { file, text };
    if text.len() > MAX_POLICY_BYTES {
        return Err(c.error(
            0..0,
            "(file)",
            format!("larger than {MAX_POLICY_BYTES} bytes"),
        ));
    }
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        c.error(
            e.span().unwrap_or(0..0),
            "(syntax)",
            e.message().trim_end().to_owned(),
        )
    })?;
    if *raw.version.get_ref() != FORMAT_VERSION {
        return Err(c.error(
            raw.version.span(),
            "version",
            format!(
                "policy format {} is not supported (this runtime reads version {FORMAT_VERSION})",
                raw.version.get_ref()
            ),
        ));
    }
    let roles = c.grants("roles", raw.roles)?;
    let groups = c.grants("groups", raw.groups)?;
    let mut gateways = BTreeMap::new();
    for (name, gw) in raw.gateways {
        let path = format!("gateways.{}", name.get_ref());
        if GatewayName::parse(name.get_ref()).is_err() {
            return Err(c.error(
                name.span(),
                &path,
                "gateway names may contain only lowercase letters, digits and '-'",
            ));
        }
        let span = gw.tools.span();
        let tools = gw.tools.into_inner();
        if tools.is_empty() {
            return Err(c.error(span, &format!("{path}.tools"), "exposes no tool"));
        }
        let mut texts = Vec::with_capacity(tools.len());
        for (j, t) in tools.into_iter().enumerate() {
            if let Err(e) = t.get_ref().parse::<ToolPattern>() {
                return Err(c.error(
                    t.span(),
                    &format!("{path}.tools[{j}]"),
                    format!("{:?}: {e}", t.get_ref()),
                ));
            }
            texts.push(t.into_inner());
        }
        gateways.insert(
            name.into_inner(),
            GatewayDef {
                tools: texts,
                instructions: gw.instructions,
            },
        );
    }
    Ok(TenantPolicy {
        roles,
        groups,
        gateways,
        audit: AuditSettings {
            record_arguments: raw.audit.record_arguments,
        },
        hooks: HookSettings {
            confirm_destructive: raw.hooks.confirm_destructive,
            redact_secrets: raw.hooks.redact_secrets,
        },
    })
}

#[cfg(test)]
mod tests {
    use shared::policy::Site;

    use super::*;

    const GOOD: &str = r#"
version = 1

[roles.triage]
description = "Read issues, comment"
allow = [
  { tools = ["github_get_issue", "github_comment_on_issue"], repos = ["acme/**"] },
]

[groups.engineering]
allow = [{ tools = ["github_*"] }]

[gateways.engineering]
tools = ["github_*", "diag.ping"]
instructions = "hello"

[audit]
record_arguments = true
"#;

    #[test]
    fn reads_a_good_file() {
        let p = parse("p.toml", GOOD).unwrap();
        let site = Site {
            instance: None,
            repo: Some("acme/widgets".parse().unwrap()),
        };
        assert!(
            p.roles["triage"]
                .rules
                .allows("github_comment_on_issue", &site)
        );
        assert!(
            p.groups["engineering"]
                .rules
                .allows("github_x", &Site::default())
        );
        assert_eq!(p.gateways["engineering"].tools.len(), 2);
        assert!(p.audit.record_arguments);
        assert!(p.hooks.confirm_destructive && p.hooks.redact_secrets);
    }

    #[test]
    fn reads_instance_scoped_rules() {
        let p = parse(
            "p.toml",
            "version = 1\n[roles.t]\nallow = [\n  { tools = [\"github_*\"], instance = \"ghes-sandbox\" },\n  { tools = [\"gitlab_*\"], repos = [\"gitlab-prod:docs/**\"] },\n]\n",
        )
        .unwrap();
        let on = |instance: &str, repo: &str| Site {
            instance: Some(instance.parse().unwrap()),
            repo: Some(repo.parse().unwrap()),
        };
        let rules = &p.roles["t"].rules;
        assert!(rules.allows("github_get_issue", &on("ghes-sandbox", "acme/w")));
        assert!(!rules.allows("github_get_issue", &on("ghes-prod", "acme/w")));
        assert!(rules.allows("gitlab_get_issue", &on("gitlab-prod", "docs/site")));
        assert!(!rules.allows("gitlab_get_issue", &on("gitlab-test", "docs/site")));
        let e = err("version = 1\n[roles.t]\nallow = [{ tools = [\"x\"], instance = \"Prod\" }]\n");
        assert_eq!((e.line, e.field.as_str()), (3, "roles.t.allow[0].instance"));
        let e = err(
            "version = 1\n[roles.t]\nallow = [{ tools = [\"x\"], instance = \"a\", repos = [\"b:c/d\"] }]\n",
        );
        assert_eq!(e.field, "roles.t.allow[0].repos[0]");
        assert!(e.message.contains("another instance"), "{e}");
    }

    fn err(text: &str) -> PolicyError {
        parse("policy.toml", text).unwrap_err()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = err(
            "version = 1\n[roles.triage]\nallow = [{ tools = [\"github_*\", \"bad tool\"] }]\n",
        );
        assert_eq!((e.file.as_str(), e.line), ("policy.toml", 3));
        assert_eq!(e.field, "roles.triage.allow[0].tools[1]");
        assert!(e.message.contains("bad tool"), "{e}");

        let e = err(
            "version = 1\n\n[groups.eng]\nallow = [{ tools = [\"x\"], repos = [\"a/../b\"] }]\n",
        );
        assert_eq!(
            (e.line, e.field.as_str()),
            (4, "groups.eng.allow[0].repos[0]")
        );

        let e = err("version = 2\n");
        assert_eq!((e.line, e.field.as_str()), (1, "version"));

        let e = err("version = 1\n[roles.x]\nallow = [{ tools = [\"a\"], repo = [\"x\"] }]\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("repo"), "{e}");

        let e = err("version = 1\n[roles.\"bad name\"]\nallow = [{ tools = [\"a\"] }]\n");
        assert_eq!((e.line, e.field.as_str()), (2, "roles.bad name"));

        let e = err("version = 1\n[roles.x]\nallow = []\n");
        assert_eq!(e.field, "roles.x.allow");

        let e = err("version = 1\n[roles.x]\nallow = [{ tools = [\"a\"], repos = [] }]\n");
        assert_eq!(e.field, "roles.x.allow[0].repos");

        let e = err("version = 1\n[gateways.Eng]\ntools = [\"a\"]\n");
        assert_eq!(e.field, "gateways.Eng");

        let e = err("version = \n");
        assert_eq!((e.line, e.field.as_str()), (1, "(syntax)"));

        let e = err("roles = 3\n");
        assert_eq!(e.field, "(syntax)");
    }
}
