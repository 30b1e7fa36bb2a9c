//! The seed: the JSON file (`--seed FILE`) a fake starts from, and the built-in one
//! (`--seed builtin`). The format is documented in `tests/fake-upstream/README.md`; every
//! field not marked required has a default, unknown fields are refused so typos show.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Kind;
use crate::git::Git;
use crate::model::{
    AccessToken, CiStatus, ClientKind, Comment, CommitStatus, Issue, Job, Label, Namespace,
    OAuthClient, Pipeline, Pull, Repo, Role, State, User, World,
};
use crate::time_fmt::Timestamp;

/// Why a seed could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Not valid JSON, or not the seed's shape.
    #[error("seed is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is well formed but names something that does not exist or is invalid.
    #[error("seed is inconsistent: {0}")]
    Invalid(String),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, SeedError> {
    Err(SeedError::Invalid(msg.into()))
}

const EPOCH_DEFAULT: &str = "2024-01-02T09:00:00Z";

fn default_time() -> String {
    EPOCH_DEFAULT.to_owned()
}
fn default_branch() -> String {
    "main".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_stage() -> String {
    "test".to_owned()
}
fn default_event() -> String {
    "push".to_owned()
}

/// The whole seed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Users.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Personal access tokens.
    #[serde(default)]
    pub tokens: Vec<SeedToken>,
    /// OAuth clients.
    #[serde(default)]
    pub oauth_clients: Vec<SeedClient>,
    /// Organizations / groups.
    #[serde(default)]
    pub namespaces: Vec<SeedNamespace>,
    /// Repositories / projects.
    #[serde(default)]
    pub repos: Vec<SeedRepo>,
}

/// A user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Numeric id; defaults to its position (1-based).
    pub id: Option<u64>,
    /// Required: login / username.
    pub login: String,
    /// Display name; defaults to the login.
    pub name: Option<String>,
    /// Email; defaults to `<login>@example.com`.
    pub email: Option<String>,
    /// Site administrator.
    #[serde(default)]
    pub site_admin: bool,
    /// Creation time.
    #[serde(default = "default_time")]
    pub created_at: String,
}

/// A personal access token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedToken {
    /// Required: the token value clients send.
    pub token: String,
    /// Required: the owner's login.
    pub user: String,
    /// Scopes, e.g. `["repo"]` or `["api"]`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// An OAuth client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedClient {
    /// Required.
    pub client_id: String,
    /// Required.
    pub client_secret: String,
    /// Required: the registered callback.
    pub redirect_uri: String,
    /// `oauth-app`, `github-app` or `gitlab`.
    pub kind: String,
}

/// An organization or (nested) group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNamespace {
    /// Required: `acme` or `acme/platform`.
    pub path: String,
    /// Display name; defaults to the last path segment.
    pub name: Option<String>,
    /// login → role (`admin`..`read` or `owner`..`guest`), inherited by repos below.
    #[serde(default)]
    pub members: BTreeMap<String, String>,
}

/// A repository / project.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRepo {
    /// Required: owner path.
    pub namespace: String,
    /// Required: name.
    pub name: String,
    /// Serve it only on this kind (`github` or `gitlab`); both when absent.
    pub only: Option<String>,
    /// Private repositories are 404 to non-members.
    #[serde(default)]
    pub private: bool,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Main language.
    pub language: Option<String>,
    /// Topics.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Default branch.
    #[serde(default = "default_branch")]
    pub default_branch: String,
    /// login → role.
    #[serde(default)]
    pub members: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<SeedLabel>,
    /// Commits, parents before children.
    #[serde(default)]
    pub commits: Vec<SeedCommit>,
    /// Branch name → commit key.
    #[serde(default)]
    pub branches: BTreeMap<String, String>,
    /// Issues.
    #[serde(default)]
    pub issues: Vec<SeedIssue>,
    /// Pull / merge requests.
    #[serde(default)]
    pub pulls: Vec<SeedPull>,
    /// Workflow runs / pipelines.
    #[serde(default)]
    pub pipelines: Vec<SeedPipeline>,
    /// Commit statuses.
    #[serde(default)]
    pub statuses: Vec<SeedStatus>,
    /// Creation time.
    #[serde(default = "default_time")]
    pub created_at: String,
}

/// A label.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLabel {
    /// Required.
    pub name: String,
    /// Hex colour without `#`.
    #[serde(default)]
    pub color: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// A commit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCommit {
    /// Required: a name the rest of the seed refers to it by.
    pub key: String,
    /// Parent commit keys.
    #[serde(default)]
    pub parents: Vec<String>,
    /// Required.
    pub message: String,
    /// Required: author's login, or `Name <email>` for an author with no account.
    pub author: String,
    /// Author date.
    #[serde(default = "default_time")]
    pub date: String,
    /// path → new content, or `null` to delete the file.
    #[serde(default)]
    pub files: BTreeMap<String, Option<String>>,
}

/// A comment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedComment {
    /// Required: author's login.
    pub author: String,
    /// Required.
    pub body: String,
    /// Creation time.
    #[serde(default = "default_time")]
    pub created_at: String,
}

/// An issue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedIssue {
    /// Number; defaults to the next free one.
    pub number: Option<u64>,
    /// Required.
    pub title: String,
    /// Markdown.
    #[serde(default)]
    pub body: String,
    /// `open` or `closed`.
    #[serde(default)]
    pub state: Option<String>,
    /// `completed` or `not_planned` for closed issues.
    pub state_reason: Option<String>,
    /// Required: author's login.
    pub author: String,
    /// Assignees' logins.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// Label names (must be defined on the repository).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Creation time.
    #[serde(default = "default_time")]
    pub created_at: String,
    /// Last update; defaults to the newest comment or the creation time.
    pub updated_at: Option<String>,
    /// Comments.
    #[serde(default)]
    pub comments: Vec<SeedComment>,
}

/// A pull / merge request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedPull {
    /// Number; defaults to the next free one (shared with issues).
    pub number: Option<u64>,
    /// Required.
    pub title: String,
    /// Markdown.
    #[serde(default)]
    pub body: String,
    /// `open`, `closed` or `merged`.
    #[serde(default)]
    pub state: Option<String>,
    /// Draft.
    #[serde(default)]
    pub draft: bool,
    /// Required: author's login.
    pub author: String,
    /// Required: source branch.
    pub head: String,
    /// Target branch; defaults to the default branch.
    pub base: Option<String>,
    /// Assignees.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// Requested reviewers.
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// Label names.
    #[serde(default)]
    pub labels: Vec<String>,
    /// False to make the branches conflict (merge answers 405).
    #[serde(default = "default_true")]
    pub mergeable: bool,
    /// Creation time.
    #[serde(default = "default_time")]
    pub created_at: String,
    /// Comments.
    #[serde(default)]
    pub comments: Vec<SeedComment>,
}

/// A workflow run / pipeline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedPipeline {
    /// Required: workflow / pipeline name.
    pub name: String,
    /// Required: branch.
    pub branch: String,
    /// Commit key; defaults to the branch head.
    pub commit: Option<String>,
    /// Trigger event.
    #[serde(default = "default_event")]
    pub event: String,
    /// Required: overall status (`success`, `failed`, `running`, `pending`...).
    pub status: String,
    /// Required: who triggered it.
    pub actor: String,
    /// Creation time.
    #[serde(default = "default_time")]
    pub created_at: String,
    /// Jobs.
    #[serde(default)]
    pub jobs: Vec<SeedJob>,
}

/// A CI job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedJob {
    /// Required.
    pub name: String,
    /// GitLab stage.
    #[serde(default = "default_stage")]
    pub stage: String,
    /// Required: status.
    pub status: String,
    /// Start time.
    pub started_at: Option<String>,
    /// Finish time.
    pub finished_at: Option<String>,
    /// Plain-text log.
    #[serde(default)]
    pub log: String,
    /// GitLab: the name of the pipeline (of the same repository, seeded before this one)
    /// this job triggers as a child pipeline; the job is then a bridge.
    pub trigger: Option<String>,
}

/// A commit status.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedStatus {
    /// Required: commit key or branch name.
    pub commit: String,
    /// Required: `ci/lint`...
    pub context: String,
    /// Required: `success`, `failure`, `error` or `pending`.
    pub state: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Link.
    #[serde(default)]
    pub target_url: String,
    /// Creation time.
    #[serde(default = "default_time")]
    pub created_at: String,
}

fn ts(s: &str) -> Result<Timestamp, SeedError> {
    Timestamp::parse(s).ok_or_else(|| SeedError::Invalid(format!("bad timestamp {s:?}")))
}

fn role(s: &str) -> Result<Role, SeedError> {
    Role::parse(s).ok_or_else(|| SeedError::Invalid(format!("unknown role {s:?}")))
}

fn roles(m: &BTreeMap<String, String>) -> Result<BTreeMap<String, Role>, SeedError> {
    m.iter().map(|(k, v)| Ok((k.clone(), role(v)?))).collect()
}

impl Seed {
    /// Parses a seed file's text.
    pub fn from_json(text: &str) -> Result<Seed, SeedError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Builds the world a fake of `kind` serves.
    pub fn into_world(self, kind: Kind) -> Result<World, SeedError> {
        let mut w = World {
            next_id: 1000,
            ..World::default()
        };
        for (i, u) in self.users.into_iter().enumerate() {
            if w.user(&u.login).is_some() {
                return invalid(format!("user {} twice", u.login));
            }
            w.users.push(User {
                id: u.id.unwrap_or(i as u64 + 1),
                name: u.name.unwrap_or_else(|| u.login.clone()),
                email: u
                    .email
                    .unwrap_or_else(|| format!("{}@example.com", u.login)),
                login: u.login,
                site_admin: u.site_admin,
                created_at: ts(&u.created_at)?,
            });
        }
        let known = |w: &World, login: &str| -> Result<(), SeedError> {
            match w.user(login) {
                Some(_) => Ok(()),
                None => invalid(format!("unknown user {login:?}")),
            }
        };
        for t in self.tokens {
            known(&w, &t.user)?;
            let token = AccessToken {
                user: t.user,
                client_id: None,
                scopes: t.scopes,
                expires_at: None,
                revoked: false,
            };
            w.tokens.insert(t.token, token);
        }
        for c in self.oauth_clients {
            let Some(kind) = ClientKind::parse(&c.kind) else {
                return invalid(format!("unknown client kind {:?}", c.kind));
            };
            w.clients.push(OAuthClient {
                client_id: c.client_id,
                client_secret: c.client_secret,
                redirect_uri: c.redirect_uri,
                kind,
            });
        }
        for n in self.namespaces {
            let id = w.next_id();
            let name = n
                .name
                .unwrap_or_else(|| n.path.rsplit('/').next().unwrap_or(&n.path).to_owned());
            w.namespaces.push(Namespace {
                id,
                members: roles(&n.members)?,
                path: n.path,
                name,
            });
        }
        for r in self.repos {
            if r.only.as_deref().is_some_and(|o| o != kind.name()) {
                continue;
            }
            if kind == Kind::Github && r.namespace.contains('/') {
                return invalid(format!(
                    "{}/{}: GitHub owners cannot be nested (mark it \"only\": \"gitlab\")",
                    r.namespace, r.name
                ));
            }
            let repo = build_repo(&mut w, r)?;
            w.repos.push(repo);
        }
        Ok(w)
    }
}

fn build_repo(w: &mut World, r: SeedRepo) -> Result<Repo, SeedError> {
    let full = format!("{}/{}", r.namespace, r.name);
    let mut git = Git::default();
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for c in r.commits {
        let parents = c
            .parents
            .iter()
            .map(|p| keys.get(p).cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| SeedError::Invalid(format!("{full}: commit {} parent", c.key)))?;
        let sha = git.commit(parents, &c.message, &c.author, ts(&c.date)?, c.files);
        keys.insert(c.key, sha);
    }
    let resolve = |git: &Git, name: &str| -> Result<String, SeedError> {
        keys.get(name)
            .cloned()
            .or_else(|| git.resolve(name))
            .ok_or_else(|| SeedError::Invalid(format!("{full}: unknown commit {name:?}")))
    };
    for (branch, key) in &r.branches {
        let sha = resolve(&git, key)?;
        git.branches.insert(branch.clone(), sha);
    }
    if !git.branches.contains_key(&r.default_branch) {
        return invalid(format!("{full}: no default branch {}", r.default_branch));
    }
    let created_at = ts(&r.created_at)?;
    let mut repo = Repo {
        id: w.next_id(),
        namespace: r.namespace,
        name: r.name,
        private: r.private,
        default_branch: r.default_branch,
        description: r.description,
        language: r.language,
        topics: r.topics,
        members: roles(&r.members)?,
        labels: Vec::new(),
        git,
        issues: Vec::new(),
        pulls: Vec::new(),
        pipelines: Vec::new(),
        statuses: Vec::new(),
        next_number: 1,
        created_at,
        updated_at: created_at,
    };
    for l in r.labels {
        let id = w.next_id();
        repo.labels.push(Label {
            id,
            name: l.name,
            color: l.color,
            description: l.description,
        });
    }
    let mut numbered: Vec<(Option<u64>, Item)> = Vec::new();
    numbered.extend(r.issues.into_iter().map(|i| (i.number, Item::Issue(i))));
    numbered.extend(r.pulls.into_iter().map(|p| (p.number, Item::Pull(p))));
    for (number, item) in numbered {
        let number = number.unwrap_or(repo.next_number);
        if repo.issues.iter().any(|i| i.number == number)
            || repo.pulls.iter().any(|p| p.number == number)
        {
            return invalid(format!("{full}: number {number} twice"));
        }
        repo.next_number = repo.next_number.max(number + 1);
        match item {
            Item::Issue(i) => {
                let issue = build_issue(w, &repo, number, i)?;
                repo.issues.push(issue);
            }
            Item::Pull(p) => {
                let pull = build_pull(w, &repo, number, p)?;
                repo.pulls.push(pull);
            }
        }
    }
    for (n, p) in r.pipelines.into_iter().enumerate() {
        let sha = match &p.commit {
            Some(k) => resolve(&repo.git, k)?,
            None => resolve(&repo.git, &p.branch)?,
        };
        let status = ci_status(&p.status)?;
        let created_at = ts(&p.created_at)?;
        let mut jobs = Vec::new();
        let mut updated_at = created_at;
        for j in p.jobs {
            let finished_at = j.finished_at.as_deref().map(ts).transpose()?;
            updated_at = updated_at.max(finished_at.unwrap_or(created_at));
            jobs.push(Job {
                id: w.next_id(),
                name: j.name,
                stage: j.stage,
                status: ci_status(&j.status)?,
                started_at: j.started_at.as_deref().map(ts).transpose()?,
                finished_at,
                log: j.log,
                trigger: j.trigger,
            });
        }
        repo.pipelines.push(Pipeline {
            id: w.next_id(),
            number: n as u64 + 1,
            name: p.name,
            branch: p.branch,
            sha,
            event: p.event,
            status,
            actor: p.actor,
            created_at,
            updated_at,
            jobs,
        });
    }
    for s in r.statuses {
        let sha = resolve(&repo.git, &s.commit)?;
        repo.statuses.push(CommitStatus {
            id: w.next_id(),
            sha,
            context: s.context,
            state: s.state,
            description: s.description,
            target_url: s.target_url,
            created_at: ts(&s.created_at)?,
        });
    }
    Ok(repo)
}

enum Item {
    Issue(SeedIssue),
    Pull(SeedPull),
}

fn ci_status(s: &str) -> Result<CiStatus, SeedError> {
    CiStatus::parse(s).ok_or_else(|| SeedError::Invalid(format!("unknown CI status {s:?}")))
}

fn comments(w: &mut World, list: Vec<SeedComment>) -> Result<Vec<Comment>, SeedError> {
    list.into_iter()
        .map(|c| {
            let at = ts(&c.created_at)?;
            Ok(Comment {
                id: w.next_id(),
                author: c.author,
                body: c.body,
                created_at: at,
                updated_at: at,
            })
        })
        .collect()
}

fn check_labels(repo: &Repo, labels: &[String]) -> Result<(), SeedError> {
    match labels
        .iter()
        .find(|l| !repo.labels.iter().any(|d| &d.name == *l))
    {
        Some(l) => invalid(format!("{}: undefined label {l:?}", repo.full_name())),
        None => Ok(()),
    }
}

fn build_issue(w: &mut World, repo: &Repo, number: u64, i: SeedIssue) -> Result<Issue, SeedError> {
    check_labels(repo, &i.labels)?;
    let created_at = ts(&i.created_at)?;
    let comments = comments(w, i.comments)?;
    let last = comments.iter().map(|c| c.created_at).max();
    let updated_at = match &i.updated_at {
        Some(u) => ts(u)?,
        None => last.unwrap_or(created_at).max(created_at),
    };
    let state = match i.state.as_deref() {
        None | Some("open") => State::Open,
        Some("closed") => State::Closed,
        Some(s) => return invalid(format!("issue state {s:?}")),
    };
    let closed = state == State::Closed;
    Ok(Issue {
        id: w.next_id(),
        number,
        title: i.title,
        body: i.body,
        state,
        state_reason: i
            .state_reason
            .or_else(|| closed.then(|| "completed".to_owned())),
        closed_by: closed.then(|| i.author.clone()),
        author: i.author,
        assignees: i.assignees,
        labels: i.labels,
        comments,
        created_at,
        updated_at,
        closed_at: closed.then_some(updated_at),
    })
}

fn build_pull(w: &mut World, repo: &Repo, number: u64, p: SeedPull) -> Result<Pull, SeedError> {
    check_labels(repo, &p.labels)?;
    let full = repo.full_name();
    let base = p.base.unwrap_or_else(|| repo.default_branch.clone());
    let (Some(head_sha), Some(base_head)) = (
        repo.git.branches.get(&p.head).cloned(),
        repo.git.branches.get(&base).cloned(),
    ) else {
        return invalid(format!("{full}: pull {number} names a missing branch"));
    };
    let base_sha = repo
        .git
        .merge_base(&base_head, &head_sha)
        .unwrap_or(base_head.clone());
    let created_at = ts(&p.created_at)?;
    let comments = comments(w, p.comments)?;
    let updated_at = comments
        .iter()
        .map(|c| c.created_at)
        .max()
        .unwrap_or(created_at)
        .max(created_at);
    let state = match p.state.as_deref() {
        None | Some("open") => State::Open,
        Some("closed") => State::Closed,
        Some("merged") => State::Merged,
        Some(s) => return invalid(format!("pull state {s:?}")),
    };
    let merged = state == State::Merged;
    Ok(Pull {
        id: w.next_id(),
        number,
        title: p.title,
        body: p.body,
        state,
        draft: p.draft,
        merged_by: merged.then(|| p.author.clone()),
        author: p.author,
        head: p.head,
        base,
        head_sha,
        base_sha,
        assignees: p.assignees,
        reviewers: p.reviewers,
        labels: p.labels,
        mergeable: p.mergeable,
        comments,
        reviews: Vec::new(),
        created_at,
        updated_at,
        closed_at: (state != State::Open).then_some(updated_at),
        merged_at: merged.then_some(updated_at),
        merge_commit_sha: merged.then_some(base_head),
    })
}
