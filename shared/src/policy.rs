//! The vocabulary of permissions, shared by the runtime's tenant policy and the connector's
//! local policy so that both sides decide the same question the same way.
//!
//! An [`AllowRule`] pairs tool-name patterns with, optionally, repository patterns. A
//! [`RuleSet`] allows a call when one of its rules matches the tool and the call's
//! [`Target`]. Nothing is allowed unless a rule says so.
//!
//! - Tool patterns: `[A-Za-z0-9_.-]` plus `*`, which matches any run of characters
//!   (`github_*`, `*_get_*`, `diag.ping`).
//! - Repository patterns: `/`-separated segments; a segment is a name, `*` (exactly one
//!   segment) or, last only, `**` (one or more segments): `acme/widgets`, `acme/*`,
//!   `acme/platform/**`. Matching ignores ASCII case, as GitHub and GitLab do for paths.
//! - A rule without repositories allows the tool on any repository and tools that touch no
//!   single repository (who am I, search). A rule with repositories allows only calls whose
//!   target matches one of them; a call without a target never matches it.
//!
//! [`Scope`] answers "on which repositories could this tool be allowed", and intersects
//! exactly, so tools/list can show a tool only when some repository passes every layer.

use std::fmt;
use std::str::FromStr;

use crate::wire;

/// Longest pattern accepted.
pub const MAX_PATTERN: usize = 256;
/// Most segments in a repository path (GitLab nests groups up to 20 deep).
pub const MAX_SEGMENTS: usize = 21;

/// Why a pattern or target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// Empty or longer than [`MAX_PATTERN`].
    #[error("must be 1 to {MAX_PATTERN} characters")]
    Length,
    /// A character outside the allowed set.
    #[error("{0:?} is not allowed here (use letters, digits, '_', '.', '-'{1})")]
    Character(char, &'static str),
    /// An empty, `.` or `..` segment, or too many segments.
    #[error("{0}")]
    Segment(&'static str),
}

/// A tool-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPattern(String);

impl ToolPattern {
    /// Whether `tool` matches.
    pub fn matches(&self, tool: &str) -> bool {
        wildcard(self.0.as_bytes(), tool.as_bytes())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ToolPattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_PATTERN {
            return Err(PatternError::Length);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_.-*".contains(*c)))
        {
            return Err(PatternError::Character(c, " and '*'"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for ToolPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` in `pattern` matches any run of bytes; everything else matches itself.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matching with one backtrack point: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

fn check_name_segment(seg: &str, extra: &'static str) -> Result<(), PatternError> {
    if seg.is_empty() {
        return Err(PatternError::Segment("empty path segment"));
    }
    if seg == "." || seg == ".." {
        return Err(PatternError::Segment(
            "'.' and '..' are not repository names",
        ));
    }
    if let Some(c) = seg
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(PatternError::Character(c, extra));
    }
    Ok(())
}

/// The repository (GitHub `owner/repo`) or project (GitLab `group/sub/project`) a call acts
/// on, as named in its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target(String);

impl Target {
    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl FromStr for Target {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_PATTERN {
            return Err(PatternError::Length);
        }
        let mut n = 0;
        for seg in s.split('/') {
            check_name_segment(seg, "")?;
            n += 1;
        }
        if n > MAX_SEGMENTS {
            return Err(PatternError::Segment("too many path segments"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Name(String),
    One,
    Rest,
}

/// A repository pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPattern {
    text: String,
    segments: Vec<Segment>,
}

impl RepoPattern {
    /// Whether `target` matches.
    pub fn matches(&self, target: &Target) -> bool {
        let mut segs = target.segments();
        for (i, p) in self.segments.iter().enumerate() {
            match p {
                Segment::Rest => {
                    // `**` is last and needs at least one segment.
                    debug_assert_eq!(i + 1, self.segments.len());
                    return segs.next().is_some();
                }
                Segment::One => {
                    if segs.next().is_none() {
                        return false;
                    }
                }
                Segment::Name(n) => match segs.next() {
                    Some(s) if s.eq_ignore_ascii_case(n) => {}
                    _ => return false,
                },
            }
        }
        segs.next().is_none()
    }

    /// The repositories both patterns match, as one pattern, or `None` when there are none.
    pub fn meet(&self, other: &RepoPattern) -> Option<RepoPattern> {
        let mut out = Vec::new();
        let (mut a, mut b) = (self.segments.iter(), other.segments.iter());
        loop {
            match (a.next(), b.next()) {
                (None, None) => break,
                (Some(Segment::Rest), None) | (None, Some(Segment::Rest)) => return None,
                (None, Some(_)) | (Some(_), None) => return None,
                (Some(Segment::Rest), Some(x)) => {
                    out.push(x.clone());
                    out.extend(b.cloned());
                    break;
                }
                (Some(x), Some(Segment::Rest)) => {
                    out.push(x.clone());
                    out.extend(a.cloned());
                    break;
                }
                (Some(Segment::Name(x)), Some(Segment::Name(y))) => {
                    if !x.eq_ignore_ascii_case(y) {
                        return None;
                    }
                    out.push(Segment::Name(x.clone()));
                }
                (Some(Segment::Name(x)), Some(Segment::One))
                | (Some(Segment::One), Some(Segment::Name(x))) => {
                    out.push(Segment::Name(x.clone()));
                }
                (Some(Segment::One), Some(Segment::One)) => out.push(Segment::One),
            }
        }
        let text = out
            .iter()
            .map(|s| match s {
                Segment::Name(n) => n.as_str(),
                Segment::One => "*",
                Segment::Rest => "**",
            })
            .collect::<Vec<_>>()
            .join("/");
        Some(RepoPattern {
            text,
            segments: out,
        })
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for RepoPattern {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_PATTERN {
            return Err(PatternError::Length);
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > MAX_SEGMENTS {
            return Err(PatternError::Segment("too many path segments"));
        }
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, seg) in parts.into_iter().enumerate() {
            segments.push(match seg {
                "*" => Segment::One,
                "**" if i == last => Segment::Rest,
                "**" => return Err(PatternError::Segment("'**' may only be the last segment")),
                name => {
                    check_name_segment(name, ", or a whole segment of '*' or '**'")?;
                    Segment::Name(name.to_owned())
                }
            });
        }
        Ok(Self {
            text: s.to_owned(),
            segments,
        })
    }
}

impl fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which repositories a tool may act on, as far as one layer (or an intersection of layers)
/// is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Not at all.
    None,
    /// Any repository, and without one.
    Any,
    /// Only repositories matching one of these patterns.
    Repos(Vec<RepoPattern>),
}

impl Scope {
    /// What both scopes allow.
    pub fn intersect(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Scope::None, _) | (_, Scope::None) => Scope::None,
            (Scope::Any, s) | (s, Scope::Any) => s.clone(),
            (Scope::Repos(a), Scope::Repos(b)) => {
                let mut out: Vec<RepoPattern> = Vec::new();
                for x in a {
                    for y in b {
                        if let Some(m) = x.meet(y)
                            && !out.contains(&m)
                        {
                            out.push(m);
                        }
                    }
                }
                if out.is_empty() {
                    Scope::None
                } else {
                    Scope::Repos(out)
                }
            }
        }
    }

    /// Whether the scope allows a call on `target` (or on no single repository).
    pub fn allows(&self, target: Option<&Target>) -> bool {
        match (self, target) {
            (Scope::None, _) => false,
            (Scope::Any, _) => true,
            (Scope::Repos(_), None) => false,
            (Scope::Repos(ps), Some(t)) => ps.iter().any(|p| p.matches(t)),
        }
    }

    /// Whether some call of a tool could pass: any target at all for tools that name one,
    /// and the unrestricted scope for tools that touch no single repository.
    pub fn admits_some(&self, has_target: bool) -> bool {
        match self {
            Scope::None => false,
            Scope::Any => true,
            Scope::Repos(_) => has_target,
        }
    }

    fn union(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::Any, _) | (_, Scope::Any) => Scope::Any,
            (Scope::None, s) | (s, Scope::None) => s,
            (Scope::Repos(mut a), Scope::Repos(b)) => {
                for p in b {
                    if !a.contains(&p) {
                        a.push(p);
                    }
                }
                Scope::Repos(a)
            }
        }
    }
}

/// Tools, and optionally the repositories they may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// Tool patterns.
    pub tools: Vec<ToolPattern>,
    /// Repository patterns; `None` means any repository (and calls without one).
    pub repos: Option<Vec<RepoPattern>>,
}

impl AllowRule {
    /// Parses a rule's patterns; an empty repository list is refused (omit it instead).
    pub fn parse(tools: &[String], repos: Option<&[String]>) -> Result<Self, RuleError> {
        if tools.is_empty() {
            return Err(RuleError::NoTools);
        }
        let tools = tools
            .iter()
            .map(|t| {
                t.parse().map_err(|source| RuleError::Tool {
                    pattern: t.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        let repos = match repos {
            None => None,
            Some([]) => return Err(RuleError::EmptyRepos),
            Some(list) => Some(
                list.iter()
                    .map(|r| {
                        r.parse().map_err(|source| RuleError::Repo {
                            pattern: r.clone(),
                            source,
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self { tools, repos })
    }

    fn scope(&self, tool: &str) -> Scope {
        if !self.tools.iter().any(|p| p.matches(tool)) {
            return Scope::None;
        }
        match &self.repos {
            None => Scope::Any,
            Some(r) => Scope::Repos(r.clone()),
        }
    }

    /// The wire form (an empty repository list means any).
    pub fn to_wire(&self) -> wire::PolicyRule {
        wire::PolicyRule {
            tools: self.tools.iter().map(|t| t.0.clone()).collect(),
            repos: self
                .repos
                .iter()
                .flatten()
                .map(|r| r.text.clone())
                .collect(),
        }
    }

    /// From the wire form.
    pub fn from_wire(rule: &wire::PolicyRule) -> Result<Self, RuleError> {
        let repos = (!rule.repos.is_empty()).then_some(rule.repos.as_slice());
        Self::parse(&rule.tools, repos)
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The rule names no tool.
    #[error("a rule must name at least one tool pattern")]
    NoTools,
    /// `repos = []` would allow nothing.
    #[error("repos is empty: name at least one repository pattern, or omit repos to allow any")]
    EmptyRepos,
    /// A bad tool pattern.
    #[error("tool pattern {pattern:?}: {source}")]
    Tool {
        /// The text.
        pattern: String,
        /// What is wrong.
        source: PatternError,
    },
    /// A bad repository pattern.
    #[error("repository pattern {pattern:?}: {source}")]
    Repo {
        /// The text.
        pattern: String,
        /// What is wrong.
        source: PatternError,
    },
}

/// Allow-rules; anything none of them allows is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet(pub Vec<AllowRule>);

impl RuleSet {
    /// Where the rules allow `tool`.
    pub fn scope(&self, tool: &str) -> Scope {
        self.0
            .iter()
            .fold(Scope::None, |acc, r| acc.union(r.scope(tool)))
    }

    /// Whether the rules allow `tool` on `target`.
    pub fn allows(&self, tool: &str, target: Option<&Target>) -> bool {
        self.0.iter().any(|r| r.scope(tool).allows(target))
    }
}

/// Why a call's target could not be read from its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// An argument naming the target is missing or not a string.
    #[error("argument {0:?} must be a string naming the repository")]
    Missing(String),
    /// The combined path is not a repository path.
    #[error("repository {path:?}: {source}")]
    Invalid {
        /// The combined path.
        path: String,
        /// What is wrong.
        source: PatternError,
    },
}

/// The target of a call to a tool whose spec names `target_args` (joined with `/`, e.g.
/// `owner` + `repo`), from its JSON arguments. `Ok(None)` for tools without a target.
pub fn target_of(
    target_args: &[String],
    arguments: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<Target>, TargetError> {
    if target_args.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::with_capacity(target_args.len());
    for name in target_args {
        match arguments.get(name).and_then(|v| v.as_str()) {
            Some(s) => parts.push(s),
            None => return Err(TargetError::Missing(name.clone())),
        }
    }
    let path = parts.join("/");
    path.parse()
        .map(Some)
        .map_err(|source| TargetError::Invalid { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }
    fn r(s: &str) -> RepoPattern {
        s.parse().unwrap()
    }

    #[test]
    fn tool_patterns_match_with_stars_anywhere() {
        let p: ToolPattern = "github_*".parse().unwrap();
        assert!(p.matches("github_get_issue") && p.matches("github_"));
        assert!(!p.matches("gitlab_get_issue"));
        let p: ToolPattern = "*_get_*".parse().unwrap();
        assert!(p.matches("github_get_issue") && !p.matches("github_list_issues"));
        let p: ToolPattern = "diag.ping".parse().unwrap();
        assert!(p.matches("diag.ping") && !p.matches("diag.pingx"));
        assert!("a b".parse::<ToolPattern>().is_err());
        assert!("".parse::<ToolPattern>().is_err());
    }

    #[test]
    fn repo_patterns_match_segments_case_insensitively() {
        assert!(r("acme/widgets").matches(&t("Acme/Widgets")));
        assert!(r("acme/*").matches(&t("acme/x")) && !r("acme/*").matches(&t("acme/x/y")));
        assert!(r("acme/**").matches(&t("acme/x/y")) && !r("acme/**").matches(&t("acme")));
        assert!(!r("acme/*").matches(&t("globex/x")));
        assert!("acme/**/x".parse::<RepoPattern>().is_err());
        assert!("acme/../x".parse::<RepoPattern>().is_err());
        assert!("acme//x".parse::<RepoPattern>().is_err());
        assert!("acme/wid*".parse::<RepoPattern>().is_err());
        assert!("acme/../x".parse::<Target>().is_err());
        assert!("acme/*".parse::<Target>().is_err());
    }

    #[test]
    fn meets_are_exact() {
        let m = |a: &str, b: &str| r(a).meet(&r(b)).map(|p| p.as_str().to_owned());
        assert_eq!(m("acme/**", "*/widgets"), Some("acme/widgets".into()));
        assert_eq!(m("acme/**", "*/x/**"), Some("acme/x/**".into()));
        assert_eq!(m("acme/*", "globex/*"), None);
        assert_eq!(m("acme", "acme/**"), None);
        assert_eq!(m("acme/*", "acme/a/b"), None);
        assert_eq!(m("**", "**"), Some("**".into()));
        // Whatever the meet matches, both match; checked over a few targets.
        for (a, b) in [
            ("acme/**", "*/x/**"),
            ("*/*", "acme/**"),
            ("a/*/c", "*/b/*"),
        ] {
            let meet = r(a).meet(&r(b)).unwrap();
            for target in ["acme/x/y", "acme/x", "a/b/c", "acme/y/z"] {
                let tg = t(target);
                assert_eq!(meet.matches(&tg), r(a).matches(&tg) && r(b).matches(&tg));
            }
        }
    }

    #[test]
    fn rule_sets_deny_what_no_rule_allows() {
        let rules = RuleSet(vec![
            AllowRule::parse(&["github_get_*".into()], None).unwrap(),
            AllowRule::parse(
                &["github_comment_on_issue".into()],
                Some(&["acme/*".into()]),
            )
            .unwrap(),
        ]);
        assert!(rules.allows("github_get_issue", None));
        assert!(rules.allows("github_comment_on_issue", Some(&t("acme/w"))));
        assert!(!rules.allows("github_comment_on_issue", Some(&t("globex/w"))));
        assert!(!rules.allows("github_comment_on_issue", None));
        assert!(!rules.allows("github_merge_pull_request", Some(&t("acme/w"))));
        assert_eq!(rules.scope("github_merge_pull_request"), Scope::None);
        assert!(RuleSet::default().scope("diag.ping") == Scope::None);
    }

    #[test]
    fn scopes_intersect_across_layers() {
        let acme = Scope::Repos(vec![r("acme/**")]);
        let widgets = Scope::Repos(vec![r("*/widgets")]);
        let globex = Scope::Repos(vec![r("globex/*")]);
        let both = acme.intersect(&widgets);
        assert!(both.allows(Some(&t("acme/widgets"))));
        assert!(!both.allows(Some(&t("acme/other"))));
        assert_eq!(acme.intersect(&globex), Scope::None);
        assert_eq!(Scope::Any.intersect(&acme), acme);
        assert!(!acme.admits_some(false) && acme.admits_some(true));
        assert!(Scope::Any.admits_some(false));
    }

    #[test]
    fn targets_come_from_the_named_arguments() {
        let args = serde_json::json!({"owner": "acme", "repo": "widgets", "n": 1});
        let args = args.as_object().unwrap();
        let spec = vec!["owner".to_owned(), "repo".to_owned()];
        assert_eq!(target_of(&spec, args).unwrap(), Some(t("acme/widgets")));
        assert_eq!(target_of(&[], args).unwrap(), None);
        assert!(matches!(
            target_of(&["n".to_owned()], args),
            Err(TargetError::Missing(_))
        ));
        let bad = serde_json::json!({"owner": "..", "repo": "x"});
        assert!(target_of(&spec, bad.as_object().unwrap()).is_err());
    }
}
