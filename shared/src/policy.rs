//! The vocabulary of permissions, shared by the runtime's tenant policy and the connector's
//! local policy so that both sides decide the same question the same way.
//!
//! An [`AllowRule`] pairs tool-name patterns with, optionally, an upstream instance and
//! repository patterns. A [`RuleSet`] allows a call when one of its rules matches the tool
//! and the call's [`Site`] (instance and repository). Nothing is allowed unless a rule says
//! so.
//!
//! - Tool patterns: `[A-Za-z0-9_.-]` plus `*`, which matches any run of characters
//!   (`github_*`, `*_get_*`, `diag.ping`).
//! - Repository patterns: `/`-separated segments; a segment is a name, `*` (exactly one
//!   segment) or, last only, `**` (one or more segments): `acme/widgets`, `acme/*`,
//!   `acme/platform/**`. Matching ignores ASCII case, as GitHub and GitLab do for paths.
//! - A rule without repositories allows the tool on any repository and tools that touch no
//!   single repository (who am I, search). A rule with repositories allows only calls whose
//!   target matches one of them; a call without a target never matches it.
//! - Instances: a connector may configure several upstreams of one kind (`[[provider]]`
//!   names such as `ghes-prod`, `ghes-sandbox`); a call picks one with its `instance`
//!   argument ([`INSTANCE_ARG`]), or gets the only one. A rule may name the instance, for the
//!   whole rule (`instance = "ghes-prod"`) or per pattern (`ghes-prod:acme/**`); it then
//!   matches only calls on that instance. A rule that names no instance matches every
//!   instance, as rules did before instances could be named.
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
    /// An instance name that is empty or longer than [`MAX_INSTANCE`].
    #[error("an instance name must be 1 to {MAX_INSTANCE} characters")]
    InstanceLength,
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

/// The argument with which a call names the upstream instance it acts on.
pub const INSTANCE_ARG: &str = "instance";
/// Longest instance name.
pub const MAX_INSTANCE: usize = 32;

/// The name of an upstream instance, as the connector's configuration names it
/// (`[[provider]] name`: 1 to [`MAX_INSTANCE`] of `a-z`, `0-9` and `-`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Instance(String);

impl Instance {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Instance {
    type Err = PatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_INSTANCE {
            return Err(PatternError::InstanceLength);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(PatternError::Character(
                c,
                " in an instance name: a-z, 0-9 and '-'",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a call acts: the upstream instance (tools that reach an upstream) and the
/// repository (tools that name one), each `None` when the call has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// The upstream instance.
    pub instance: Option<Instance>,
    /// The repository or project.
    pub repo: Option<Target>,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.instance, &self.repo) {
            (Some(i), Some(r)) => write!(f, "{i}:{r}"),
            (Some(i), None) => write!(f, "{i}"),
            (None, Some(r)) => write!(f, "{r}"),
            (None, None) => f.write_str("no repository"),
        }
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

/// One place a rule allows: an instance (or any) and a repository pattern (or any
/// repository, and calls that name none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Only calls on this instance; `None`: any instance.
    pub instance: Option<Instance>,
    /// Only calls on a matching repository; `None`: any, and calls without one.
    pub repo: Option<RepoPattern>,
}

impl Place {
    /// Everywhere.
    pub const ANY: Place = Place {
        instance: None,
        repo: None,
    };

    /// Whether a call at `site` is here.
    pub fn matches(&self, site: &Site) -> bool {
        let instance_ok = match &self.instance {
            None => true,
            Some(i) => site.instance.as_ref() == Some(i),
        };
        let repo_ok = match (&self.repo, &site.repo) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(p), Some(t)) => p.matches(t),
        };
        instance_ok && repo_ok
    }

    /// The places both allow, or `None` when there are none.
    pub fn meet(&self, other: &Place) -> Option<Place> {
        let instance = match (&self.instance, &other.instance) {
            (Some(a), Some(b)) if a != b => return None,
            (Some(i), _) | (None, Some(i)) => Some(i.clone()),
            (None, None) => None,
        };
        let repo = match (&self.repo, &other.repo) {
            (None, None) => None,
            (Some(p), None) | (None, Some(p)) => Some(p.clone()),
            (Some(a), Some(b)) => Some(a.meet(b)?),
        };
        Some(Place { instance, repo })
    }

    /// Parses a repository pattern, `pattern` or `instance:pattern`; `rule_instance`
    /// applies when the pattern names none, and must agree with it when it does.
    pub fn parse(text: &str, rule_instance: Option<&Instance>) -> Result<Place, RuleError> {
        let repo_err = |source| RuleError::Repo {
            pattern: text.to_owned(),
            source,
        };
        let (instance, path) = match text.split_once(':') {
            Some((i, path)) => {
                let i: Instance = i.parse().map_err(repo_err)?;
                if rule_instance.is_some_and(|r| r != &i) {
                    return Err(RuleError::InstanceConflict {
                        pattern: text.to_owned(),
                    });
                }
                (Some(i), path)
            }
            None => (rule_instance.cloned(), text),
        };
        Ok(Place {
            instance,
            repo: Some(path.parse().map_err(repo_err)?),
        })
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.instance, &self.repo) {
            (Some(i), Some(r)) => write!(f, "{i}:{r}"),
            (None, Some(r)) => write!(f, "{r}"),
            (Some(i), None) => write!(f, "any repository on {i}"),
            (None, None) => f.write_str("any repository"),
        }
    }
}

/// Where a tool may act (instances and repositories), as far as one layer (or an
/// intersection of layers) is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Not at all.
    None,
    /// Any instance, any repository, and without one.
    Any,
    /// Only at these places (never [`Place::ANY`]: that is [`Scope::Any`]).
    Places(Vec<Place>),
}

impl Scope {
    /// Only repositories matching one of `patterns`, on any instance.
    pub fn repos(patterns: Vec<RepoPattern>) -> Scope {
        Scope::of_places(
            patterns
                .into_iter()
                .map(|p| Place {
                    instance: None,
                    repo: Some(p),
                })
                .collect(),
        )
    }

    /// The scope of `places`, normalised.
    pub fn of_places(places: Vec<Place>) -> Scope {
        let mut out: Vec<Place> = Vec::with_capacity(places.len());
        for p in places {
            if p == Place::ANY {
                return Scope::Any;
            }
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            Scope::None
        } else {
            Scope::Places(out)
        }
    }

    /// What both scopes allow.
    pub fn intersect(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Scope::None, _) | (_, Scope::None) => Scope::None,
            (Scope::Any, s) | (s, Scope::Any) => s.clone(),
            (Scope::Places(a), Scope::Places(b)) => Scope::of_places(
                a.iter()
                    .flat_map(|x| b.iter().filter_map(move |y| x.meet(y)))
                    .collect(),
            ),
        }
    }

    /// What either scope allows.
    pub fn union(self, other: Scope) -> Scope {
        match (self, other) {
            (Scope::Any, _) | (_, Scope::Any) => Scope::Any,
            (Scope::None, s) | (s, Scope::None) => s,
            (Scope::Places(mut a), Scope::Places(b)) => {
                a.extend(b);
                Scope::of_places(a)
            }
        }
    }

    /// Whether the scope allows a call at `site`.
    pub fn allows(&self, site: &Site) -> bool {
        match self {
            Scope::None => false,
            Scope::Any => true,
            Scope::Places(ps) => ps.iter().any(|p| p.matches(site)),
        }
    }

    /// Whether some call of a tool could pass: `has_target` says whether the tool names a
    /// repository, `instances` are the instances it can act on (empty for tools that reach
    /// no upstream, and from connectors too old to say).
    pub fn admits_some(&self, has_target: bool, instances: &[Instance]) -> bool {
        match self {
            Scope::None => false,
            Scope::Any => true,
            Scope::Places(ps) => ps.iter().any(|p| {
                (p.repo.is_none() || has_target)
                    && p.instance.as_ref().is_none_or(|i| instances.contains(i))
            }),
        }
    }
}

/// Tools, and optionally the instances and repositories they may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// Tool patterns.
    pub tools: Vec<ToolPattern>,
    /// Where; never empty ([`Place::ANY`] for a rule without instance or repositories).
    pub places: Vec<Place>,
}

impl AllowRule {
    /// Parses a rule's patterns: `instance` (optional) limits the whole rule to one
    /// instance; each repository pattern may name its own as `instance:pattern`. An empty
    /// repository list is refused (omit it instead).
    pub fn parse(
        tools: &[String],
        instance: Option<&str>,
        repos: Option<&[String]>,
    ) -> Result<Self, RuleError> {
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
        let instance = instance
            .map(|i| {
                i.parse::<Instance>().map_err(|source| RuleError::Instance {
                    name: i.to_owned(),
                    source,
                })
            })
            .transpose()?;
        let places = match repos {
            None => vec![Place {
                instance,
                repo: None,
            }],
            Some([]) => return Err(RuleError::EmptyRepos),
            Some(list) => list
                .iter()
                .map(|r| Place::parse(r, instance.as_ref()))
                .collect::<Result<_, _>>()?,
        };
        Ok(Self { tools, places })
    }

    fn scope(&self, tool: &str) -> Scope {
        if !self.tools.iter().any(|p| p.matches(tool)) {
            return Scope::None;
        }
        Scope::of_places(self.places.clone())
    }

    /// Whether this rule alone lets `tool` act on `site`.
    pub fn allows(&self, tool: &str, site: &Site) -> bool {
        self.tools.iter().any(|p| p.matches(tool)) && self.places.iter().any(|p| p.matches(site))
    }

    /// The wire form: repository patterns carry their instance as `instance:pattern`; a rule
    /// without repositories carries its instance in `instance` (empty: any).
    pub fn to_wire(&self) -> wire::PolicyRule {
        let repos: Vec<String> = self
            .places
            .iter()
            .filter(|p| p.repo.is_some())
            .map(|p| p.to_string())
            .collect();
        let instance = match (repos.is_empty(), self.places.first()) {
            (true, Some(p)) => p.instance.as_ref().map(|i| i.0.clone()),
            _ => None,
        };
        wire::PolicyRule {
            tools: self.tools.iter().map(|t| t.0.clone()).collect(),
            repos,
            instance: instance.unwrap_or_default(),
        }
    }

    /// From the wire form.
    pub fn from_wire(rule: &wire::PolicyRule) -> Result<Self, RuleError> {
        let repos = (!rule.repos.is_empty()).then_some(rule.repos.as_slice());
        let instance = (!rule.instance.is_empty()).then_some(rule.instance.as_str());
        Self::parse(&rule.tools, instance, repos)
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
    /// A bad instance name.
    #[error("instance {name:?}: {source}")]
    Instance {
        /// The text.
        name: String,
        /// What is wrong.
        source: PatternError,
    },
    /// A pattern names another instance than its rule.
    #[error("repository pattern {pattern:?} names another instance than the rule's instance")]
    InstanceConflict {
        /// The text.
        pattern: String,
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

    /// Whether the rules allow `tool` at `site`.
    pub fn allows(&self, tool: &str, site: &Site) -> bool {
        self.0.iter().any(|r| r.scope(tool).allows(site))
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
    /// The `instance` argument is not an instance name.
    #[error("argument \"instance\": {0}")]
    Instance(PatternError),
    /// The `instance` argument is not a string.
    #[error("argument \"instance\" must be a string naming an upstream instance")]
    InstanceNotString,
    /// The `instance` argument names no instance the tool can act on.
    #[error("argument \"instance\": {name:?} is not one of this tool's instances ({known})")]
    UnknownInstance {
        /// The name given.
        name: String,
        /// The tool's instances, comma-separated.
        known: String,
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

/// Where a call to the tool `spec` describes acts: its repository ([`target_of`]) and its
/// instance, the one the `instance` argument names or, when the tool can act on just one,
/// that one (the connector picks it the same way). A tool whose spec lists no instances
/// reaches no upstream, or comes from a connector too old to say: its calls have no
/// instance, so only rules that name none allow them.
pub fn site_of(
    spec: &wire::ToolSpec,
    arguments: &serde_json::Map<String, serde_json::Value>,
) -> Result<Site, TargetError> {
    let repo = target_of(&spec.target_args, arguments)?;
    if spec.instances.is_empty() {
        return Ok(Site {
            instance: None,
            repo,
        });
    }
    let name = match arguments.get(INSTANCE_ARG) {
        None | Some(serde_json::Value::Null) => match spec.instances.as_slice() {
            [only] => Some(only.as_str()),
            _ => None,
        },
        Some(serde_json::Value::String(s)) => {
            if !spec.instances.iter().any(|i| i == s) {
                return Err(TargetError::UnknownInstance {
                    name: s.chars().take(MAX_INSTANCE).collect(),
                    known: spec.instances.join(", "),
                });
            }
            Some(s.as_str())
        }
        Some(_) => return Err(TargetError::InstanceNotString),
    };
    let instance = name
        .map(|n| n.parse::<Instance>().map_err(TargetError::Instance))
        .transpose()?;
    Ok(Site { instance, repo })
}

/// The instances a spec lists, as names (those that are not valid names are left out: no
/// rule can name them).
pub fn instances_of(spec: &wire::ToolSpec) -> Vec<Instance> {
    spec.instances
        .iter()
        .filter_map(|i| i.parse().ok())
        .collect()
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

    /// A call on `repo` (or none) on no particular instance.
    fn at(repo: Option<&str>) -> Site {
        Site {
            instance: None,
            repo: repo.map(t),
        }
    }
    /// A call on `repo` (or none) on `instance`.
    fn on(instance: &str, repo: Option<&str>) -> Site {
        Site {
            instance: Some(instance.parse().unwrap()),
            repo: repo.map(t),
        }
    }

    #[test]
    fn rule_sets_deny_what_no_rule_allows() {
        let rules = RuleSet(vec![
            AllowRule::parse(&["github_get_*".into()], None, None).unwrap(),
            AllowRule::parse(
                &["github_comment_on_issue".into()],
                None,
                Some(&["acme/*".into()]),
            )
            .unwrap(),
        ]);
        assert!(rules.allows("github_get_issue", &at(None)));
        assert!(rules.allows("github_comment_on_issue", &at(Some("acme/w"))));
        assert!(!rules.allows("github_comment_on_issue", &at(Some("globex/w"))));
        assert!(!rules.allows("github_comment_on_issue", &at(None)));
        assert!(!rules.allows("github_merge_pull_request", &at(Some("acme/w"))));
        assert_eq!(rules.scope("github_merge_pull_request"), Scope::None);
        assert!(RuleSet::default().scope("diag.ping") == Scope::None);
    }

    #[test]
    fn an_instance_scoped_rule_allows_its_instance_and_denies_the_same_repo_on_another() {
        let whole = AllowRule::parse(&["github_*".into()], Some("ghes-sandbox"), None).unwrap();
        let pattern = AllowRule::parse(
            &["github_*".into()],
            None,
            Some(&["ghes-sandbox:acme/**".into()]),
        )
        .unwrap();
        let both = AllowRule::parse(
            &["github_*".into()],
            Some("ghes-sandbox"),
            Some(&["acme/**".into()]),
        )
        .unwrap();
        assert_eq!(pattern, both);
        for rule in [whole.clone(), pattern] {
            let rules = RuleSet(vec![rule]);
            assert!(rules.allows(
                "github_get_issue",
                &on("ghes-sandbox", Some("acme/widgets"))
            ));
            assert!(!rules.allows("github_get_issue", &on("ghes-prod", Some("acme/widgets"))));
            // A call whose instance is unknown (several, none named) matches no such rule.
            assert!(!rules.allows("github_get_issue", &at(Some("acme/widgets"))));
        }
        // The whole-instance rule also covers calls that name no repository there.
        let rules = RuleSet(vec![whole]);
        assert!(rules.allows("github_whoami", &on("ghes-sandbox", None)));
        assert!(!rules.allows("github_whoami", &on("ghes-prod", None)));
        // A pattern naming another instance than its rule is refused.
        assert!(matches!(
            AllowRule::parse(
                &["github_*".into()],
                Some("ghes-sandbox"),
                Some(&["ghes-prod:acme/**".into()]),
            ),
            Err(RuleError::InstanceConflict { .. })
        ));
        assert!(AllowRule::parse(&["x".into()], Some("Prod!"), None).is_err());
        assert!(AllowRule::parse(&["x".into()], None, Some(&[":acme/*".into()])).is_err());
    }

    #[test]
    fn a_rule_without_an_instance_matches_every_instance() {
        let rules = RuleSet(vec![
            AllowRule::parse(&["github_*".into()], None, Some(&["acme/**".into()])).unwrap(),
        ]);
        assert!(rules.allows("github_get_issue", &on("ghes-prod", Some("acme/w"))));
        assert!(rules.allows("github_get_issue", &on("ghes-sandbox", Some("acme/w"))));
        assert!(rules.allows("github_get_issue", &at(Some("acme/w"))));
    }

    #[test]
    fn instance_rules_survive_the_wire() {
        for (instance, repos) in [
            (Some("ghes-prod"), None),
            (
                None,
                Some(vec!["ghes-prod:acme/**".to_owned(), "globex/*".to_owned()]),
            ),
            (Some("ghes-prod"), Some(vec!["acme/*".to_owned()])),
            (None, None),
        ] {
            let rule = AllowRule::parse(&["github_*".into()], instance, repos.as_deref()).unwrap();
            assert_eq!(AllowRule::from_wire(&rule.to_wire()).unwrap(), rule);
        }
    }

    #[test]
    fn scopes_intersect_across_layers() {
        let acme = Scope::repos(vec![r("acme/**")]);
        let widgets = Scope::repos(vec![r("*/widgets")]);
        let globex = Scope::repos(vec![r("globex/*")]);
        let both = acme.intersect(&widgets);
        assert!(both.allows(&at(Some("acme/widgets"))));
        assert!(!both.allows(&at(Some("acme/other"))));
        assert_eq!(acme.intersect(&globex), Scope::None);
        assert_eq!(Scope::Any.intersect(&acme), acme);
        assert!(!acme.admits_some(false, &[]) && acme.admits_some(true, &[]));
        assert!(Scope::Any.admits_some(false, &[]));
        // Instances meet too: sandbox-only meets any-instance acme, and never prod-only.
        let sandbox = RuleSet(vec![
            AllowRule::parse(&["*".into()], Some("ghes-sandbox"), None).unwrap(),
        ])
        .scope("github_get_issue");
        let prod = RuleSet(vec![
            AllowRule::parse(&["*".into()], Some("ghes-prod"), None).unwrap(),
        ])
        .scope("github_get_issue");
        let m = sandbox.intersect(&acme);
        assert!(m.allows(&on("ghes-sandbox", Some("acme/x"))));
        assert!(!m.allows(&on("ghes-prod", Some("acme/x"))));
        assert_eq!(sandbox.intersect(&prod), Scope::None);
        // tools/list: a sandbox-only scope admits a tool only where the tool reaches sandbox.
        let names = |v: &[&str]| {
            v.iter()
                .map(|i| i.parse().unwrap())
                .collect::<Vec<Instance>>()
        };
        assert!(sandbox.admits_some(false, &names(&["ghes-prod", "ghes-sandbox"])));
        assert!(!sandbox.admits_some(true, &names(&["ghes-prod"])));
        assert!(!sandbox.admits_some(true, &[]));
    }

    #[test]
    fn a_call_names_its_instance_or_gets_the_only_one() {
        let spec = |instances: &[&str]| wire::ToolSpec {
            name: "github_get_issue".into(),
            target_args: vec!["owner".into(), "repo".into()],
            instances: instances.iter().map(|i| (*i).to_owned()).collect(),
            ..Default::default()
        };
        let args = |v: serde_json::Value| v.as_object().unwrap().clone();
        let two = spec(&["ghes-prod", "ghes-sandbox"]);
        let named =
            args(serde_json::json!({"owner": "acme", "repo": "w", "instance": "ghes-prod"}));
        assert_eq!(
            site_of(&two, &named).unwrap(),
            on("ghes-prod", Some("acme/w"))
        );
        let unnamed = args(serde_json::json!({"owner": "acme", "repo": "w"}));
        assert_eq!(site_of(&two, &unnamed).unwrap(), at(Some("acme/w")));
        let one = spec(&["ghes-prod"]);
        assert_eq!(
            site_of(&one, &unnamed).unwrap(),
            on("ghes-prod", Some("acme/w"))
        );
        let other = args(serde_json::json!({"owner": "acme", "repo": "w", "instance": "gitlab"}));
        assert!(matches!(
            site_of(&two, &other),
            Err(TargetError::UnknownInstance { .. })
        ));
        let number = args(serde_json::json!({"owner": "acme", "repo": "w", "instance": 1}));
        assert_eq!(site_of(&two, &number), Err(TargetError::InstanceNotString));
        // A tool that reaches no upstream has no instance, whatever the arguments say.
        assert_eq!(site_of(&spec(&[]), &named).unwrap(), at(Some("acme/w")));
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
