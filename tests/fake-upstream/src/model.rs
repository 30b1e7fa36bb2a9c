//! The in-memory world both fakes serve: users, namespaces, repositories (GitHub) or
//! projects (GitLab) with their git history, issues, pull/merge requests, CI and
//! credentials. One model, two renderings: `github/` and `gitlab/` turn it into each API's
//! payloads, so the same seed file drives either kind.

use std::collections::{BTreeMap, HashMap};

use crate::git::{FileChange, Git};
use crate::time_fmt::Timestamp;

/// A user account.
#[derive(Debug, Clone)]
pub struct User {
    /// Numeric id, unique across users.
    pub id: u64,
    /// `login` on GitHub, `username` on GitLab.
    pub login: String,
    /// Display name.
    pub name: String,
    /// Public email.
    pub email: String,
    /// Site administrator (GitHub `site_admin`, GitLab `is_admin`): sees and may do anything.
    pub site_admin: bool,
    /// Account creation time.
    pub created_at: Timestamp,
}

/// A repository role, in increasing order of power. GitHub names them admin, maintain,
/// write, triage, read; GitLab's access levels 50, 40, 30, 20, 10 map onto the same ladder
/// (owner, maintainer, developer, reporter, guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// GitHub read, GitLab guest (10).
    Read,
    /// GitHub triage, GitLab reporter (20).
    Triage,
    /// GitHub write, GitLab developer (30).
    Write,
    /// GitHub maintain, GitLab maintainer (40).
    Maintain,
    /// GitHub admin, GitLab owner (50).
    Admin,
}

impl Role {
    /// Parses a GitHub role name, a GitLab role name or a GitLab access level.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "read" | "pull" | "guest" | "10" => Role::Read,
            "triage" | "reporter" | "20" => Role::Triage,
            "write" | "push" | "developer" | "30" => Role::Write,
            "maintain" | "maintainer" | "40" => Role::Maintain,
            "admin" | "owner" | "50" => Role::Admin,
            _ => return None,
        })
    }

    /// The GitLab access level of this role.
    pub fn gitlab_access_level(self) -> u32 {
        match self {
            Role::Read => 10,
            Role::Triage => 20,
            Role::Write => 30,
            Role::Maintain => 40,
            Role::Admin => 50,
        }
    }

    /// The GitHub role name.
    pub fn github_name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Triage => "triage",
            Role::Write => "write",
            Role::Maintain => "maintain",
            Role::Admin => "admin",
        }
    }
}

/// An organization (GitHub) or group (GitLab); `path` may be nested (`acme/platform`).
#[derive(Debug, Clone)]
pub struct Namespace {
    /// Numeric id.
    pub id: u64,
    /// Full path, e.g. `acme` or `acme/platform`.
    pub path: String,
    /// Display name.
    pub name: String,
    /// Members and their roles; inherited by every repository below this path.
    pub members: BTreeMap<String, Role>,
}

/// A label defined on a repository.
#[derive(Debug, Clone)]
pub struct Label {
    /// Numeric id.
    pub id: u64,
    /// Name, unique in the repository.
    pub name: String,
    /// Six hex digits, no `#`.
    pub color: String,
    /// Free text.
    pub description: String,
}

/// A comment on an issue or pull/merge request (GitLab: a note).
#[derive(Debug, Clone)]
pub struct Comment {
    /// Numeric id, unique across comments.
    pub id: u64,
    /// Author's login.
    pub author: String,
    /// Markdown body.
    pub body: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
}

/// Whether an issue or pull request is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Open (GitLab `opened`).
    Open,
    /// Closed without merging.
    Closed,
    /// Merged (pull/merge requests only).
    Merged,
}

/// An issue.
#[derive(Debug, Clone)]
pub struct Issue {
    /// Numeric id, unique across issues and pull requests.
    pub id: u64,
    /// Number in the repository (GitLab `iid`), shared with pull requests.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Markdown body (GitLab `description`).
    pub body: String,
    /// Open or closed.
    pub state: State,
    /// GitHub `state_reason`: `completed`, `not_planned`, `reopened` or none.
    pub state_reason: Option<String>,
    /// Author's login.
    pub author: String,
    /// Assignees' logins.
    pub assignees: Vec<String>,
    /// Label names.
    pub labels: Vec<String>,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// Who closed it.
    pub closed_by: Option<String>,
}

/// A submitted review (GitHub) or approval (GitLab) on a pull request.
#[derive(Debug, Clone)]
pub struct Review {
    /// Numeric id.
    pub id: u64,
    /// Reviewer's login.
    pub author: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED` or `PENDING`.
    pub state: String,
    /// Review body.
    pub body: String,
    /// The head commit reviewed.
    pub commit_id: String,
    /// Line comments: (path, line, body).
    pub comments: Vec<(String, u64, String)>,
    /// Submission time.
    pub submitted_at: Timestamp,
}

/// A pull request (GitHub) or merge request (GitLab) between two branches of one repository.
#[derive(Debug, Clone)]
pub struct Pull {
    /// Numeric id, unique across issues and pull requests.
    pub id: u64,
    /// Number in the repository (GitLab `iid`), shared with issues.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Markdown body.
    pub body: String,
    /// Open, closed or merged.
    pub state: State,
    /// Draft (GitLab: draft / work in progress).
    pub draft: bool,
    /// Author's login.
    pub author: String,
    /// Source branch.
    pub head: String,
    /// Target branch.
    pub base: String,
    /// Head commit, fixed once merged or closed; read live from the branch while open.
    pub head_sha: String,
    /// Base commit the changes are measured from (the merge base at creation).
    pub base_sha: String,
    /// Assignees' logins.
    pub assignees: Vec<String>,
    /// Requested reviewers' logins.
    pub reviewers: Vec<String>,
    /// Label names.
    pub labels: Vec<String>,
    /// False when the seed says the branches conflict: merge then answers 405.
    pub mergeable: bool,
    /// Conversation comments.
    pub comments: Vec<Comment>,
    /// Reviews and approvals.
    pub reviews: Vec<Review>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
    /// Close time (also set when merged).
    pub closed_at: Option<Timestamp>,
    /// Merge time.
    pub merged_at: Option<Timestamp>,
    /// Who merged it.
    pub merged_by: Option<String>,
    /// The merge commit.
    pub merge_commit_sha: Option<String>,
}

/// A CI outcome, in GitLab's vocabulary; GitHub's status/conclusion pairs derive from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiStatus {
    /// Waiting to run (GitHub `queued`).
    Pending,
    /// Running (GitHub `in_progress`).
    Running,
    /// Succeeded.
    Success,
    /// Failed.
    Failed,
    /// Cancelled.
    Canceled,
    /// Skipped.
    Skipped,
}

impl CiStatus {
    /// Parses either vocabulary: `success`, `failed`/`failure`, `running`/`in_progress`...
    pub fn parse(s: &str) -> Option<CiStatus> {
        Some(match s {
            "pending" | "queued" | "created" | "waiting" => CiStatus::Pending,
            "running" | "in_progress" => CiStatus::Running,
            "success" => CiStatus::Success,
            "failed" | "failure" => CiStatus::Failed,
            "canceled" | "cancelled" => CiStatus::Canceled,
            "skipped" => CiStatus::Skipped,
            _ => return None,
        })
    }

    /// GitLab's status string.
    pub fn gitlab(self) -> &'static str {
        match self {
            CiStatus::Pending => "pending",
            CiStatus::Running => "running",
            CiStatus::Success => "success",
            CiStatus::Failed => "failed",
            CiStatus::Canceled => "canceled",
            CiStatus::Skipped => "skipped",
        }
    }

    /// GitHub's `status` field.
    pub fn github_status(self) -> &'static str {
        match self {
            CiStatus::Pending => "queued",
            CiStatus::Running => "in_progress",
            _ => "completed",
        }
    }

    /// GitHub's `conclusion` field (none until completed).
    pub fn github_conclusion(self) -> Option<&'static str> {
        match self {
            CiStatus::Pending | CiStatus::Running => None,
            CiStatus::Success => Some("success"),
            CiStatus::Failed => Some("failure"),
            CiStatus::Canceled => Some("cancelled"),
            CiStatus::Skipped => Some("skipped"),
        }
    }
}

/// One CI job (a GitHub Actions job and its check run, a GitLab job).
#[derive(Debug, Clone)]
pub struct Job {
    /// Numeric id, unique across jobs.
    pub id: u64,
    /// Job name.
    pub name: String,
    /// GitLab stage.
    pub stage: String,
    /// Outcome.
    pub status: CiStatus,
    /// Start time.
    pub started_at: Option<Timestamp>,
    /// Finish time.
    pub finished_at: Option<Timestamp>,
    /// The plain-text log.
    pub log: String,
    /// GitLab only: the name of the pipeline of the same repository this job triggers
    /// (a bridge, `trigger:` in `.gitlab-ci.yml`): listed by `/bridges`, not `/jobs`.
    pub trigger: Option<String>,
}

/// A workflow run (GitHub) or pipeline (GitLab).
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Numeric id, unique across pipelines.
    pub id: u64,
    /// Per-repository counter (GitHub `run_number`, GitLab `iid`).
    pub number: u64,
    /// Workflow or pipeline name.
    pub name: String,
    /// Branch it ran on.
    pub branch: String,
    /// Commit it ran on.
    pub sha: String,
    /// Trigger: `push`, `pull_request` (GitLab `merge_request_event`)...
    pub event: String,
    /// Overall outcome.
    pub status: CiStatus,
    /// Who triggered it.
    pub actor: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
    /// Jobs in order.
    pub jobs: Vec<Job>,
}

/// A commit status set by an external CI (GitHub statuses API).
#[derive(Debug, Clone)]
pub struct CommitStatus {
    /// Numeric id.
    pub id: u64,
    /// The commit.
    pub sha: String,
    /// `ci/lint`...
    pub context: String,
    /// `success`, `failure`, `error` or `pending`.
    pub state: String,
    /// Free text.
    pub description: String,
    /// Link to the external CI.
    pub target_url: String,
    /// Creation time.
    pub created_at: Timestamp,
}

/// A repository (GitHub) or project (GitLab).
#[derive(Debug, Clone)]
pub struct Repo {
    /// Numeric id, unique across repositories.
    pub id: u64,
    /// Owner path: a user login, an org, or a (nested) group path.
    pub namespace: String,
    /// Repository name (GitLab `path`).
    pub name: String,
    /// Private repositories are 404 to non-members.
    pub private: bool,
    /// The branch pull requests target by default.
    pub default_branch: String,
    /// Free text.
    pub description: String,
    /// Main language shown in listings.
    pub language: Option<String>,
    /// Topics.
    pub topics: Vec<String>,
    /// Direct members and their roles.
    pub members: BTreeMap<String, Role>,
    /// Labels.
    pub labels: Vec<Label>,
    /// Commits and branches.
    pub git: Git,
    /// Issues.
    pub issues: Vec<Issue>,
    /// Pull/merge requests.
    pub pulls: Vec<Pull>,
    /// Workflow runs / pipelines.
    pub pipelines: Vec<Pipeline>,
    /// External commit statuses.
    pub statuses: Vec<CommitStatus>,
    /// Next issue/pull request number.
    pub next_number: u64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Timestamp,
}

impl Repo {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The owner path's first segment (the GitHub org or user; the GitLab top-level group).
    pub fn owner(&self) -> &str {
        self.namespace.split('/').next().unwrap_or(&self.namespace)
    }
}

/// The kind of OAuth client, which decides the tokens it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A GitHub OAuth app: a non-expiring token, no refresh token.
    OAuthApp,
    /// A GitHub App acting for a user: 8-hour tokens and single-use rotating refresh tokens.
    GitHubApp,
    /// A GitLab OAuth application: 2-hour tokens, rotating refresh tokens, PKCE.
    GitLab,
}

impl ClientKind {
    /// Parses `oauth-app`, `github-app` or `gitlab`.
    pub fn parse(s: &str) -> Option<ClientKind> {
        Some(match s {
            "oauth-app" => ClientKind::OAuthApp,
            "github-app" => ClientKind::GitHubApp,
            "gitlab" => ClientKind::GitLab,
            _ => return None,
        })
    }
}

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// Public id.
    pub client_id: String,
    /// Secret checked at the token endpoint.
    pub client_secret: String,
    /// The registered callback.
    pub redirect_uri: String,
    /// What tokens it gets.
    pub kind: ClientKind,
}

/// An access token: a seeded personal access token or one issued by OAuth.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// Whose token it is.
    pub user: String,
    /// The OAuth client that got it; none for personal access tokens.
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Expiry (unix seconds); none for tokens that never expire.
    pub expires_at: Option<i64>,
    /// Set by a revocation.
    pub revoked: bool,
}

/// A refresh token; single use.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// Whose grant it continues.
    pub user: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Scopes carried over to the next access token.
    pub scopes: Vec<String>,
    /// Expiry (unix seconds).
    pub expires_at: i64,
    /// Set once redeemed, or by a revocation.
    pub spent: bool,
}

/// A pending authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    /// Who signed in.
    pub user: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI used at the authorization request.
    pub redirect_uri: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// PKCE S256 challenge, if one was sent.
    pub code_challenge: Option<String>,
    /// Expiry (unix seconds).
    pub expires_at: i64,
}

/// Everything the fake knows. Guarded by one mutex in [`crate::state::App`]; handlers lock,
/// read or change, and unlock without awaiting.
#[derive(Debug, Default)]
pub struct World {
    /// Users.
    pub users: Vec<User>,
    /// Orgs / groups.
    pub namespaces: Vec<Namespace>,
    /// Repositories / projects.
    pub repos: Vec<Repo>,
    /// Access tokens by value.
    pub tokens: HashMap<String, AccessToken>,
    /// Refresh tokens by value.
    pub refresh_tokens: HashMap<String, RefreshToken>,
    /// Authorization codes by value.
    pub codes: HashMap<String, AuthCode>,
    /// OAuth clients.
    pub clients: Vec<OAuthClient>,
    /// Signed URLs for job logs (GitHub's log redirect target): token → (repo id, job id).
    pub log_links: HashMap<String, (u64, u64)>,
    /// The next id handed out by [`World::next_id`].
    pub next_id: u64,
}

impl World {
    /// A fresh id for any new object.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The user with this login.
    pub fn user(&self, login: &str) -> Option<&User> {
        self.users.iter().find(|u| u.login == login)
    }

    /// The user with this id.
    pub fn user_by_id(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The repository at `namespace/name` (case-insensitive, like both hosts).
    pub fn repo_index(&self, full_name: &str) -> Option<usize> {
        self.repos
            .iter()
            .position(|r| r.full_name().eq_ignore_ascii_case(full_name))
    }

    /// The namespace at `path`.
    pub fn namespace(&self, path: &str) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.path.eq_ignore_ascii_case(path))
    }

    /// The role `login` holds on `repo`, counting inherited namespace membership and site
    /// admin. `None` means no membership at all (a public repository is still readable).
    pub fn member_role(&self, login: &str, repo: &Repo) -> Option<Role> {
        if self.user(login).is_some_and(|u| u.site_admin) {
            return Some(Role::Admin);
        }
        let mut best = repo.members.get(login).copied();
        if repo.namespace == login {
            best = Some(Role::Admin);
        }
        for ns in &self.namespaces {
            let covers =
                repo.namespace == ns.path || repo.namespace.starts_with(&format!("{}/", ns.path));
            if covers && let Some(r) = ns.members.get(login) {
                best = best.max(Some(*r));
            }
        }
        best
    }

    /// The role `login` may act with on `repo`: its membership, or read on a public
    /// repository. `None` means the repository must look absent (404).
    pub fn effective_role(&self, login: &str, repo: &Repo) -> Option<Role> {
        match self.member_role(login, repo) {
            Some(r) => Some(r),
            None if !repo.private => Some(Role::Read),
            None => None,
        }
    }
}

/// An issue or a pull request, where GitHub treats both alike (the issues list and
/// search return pull requests too).
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// An issue.
    Issue(&'a Issue),
    /// A pull request.
    Pull(&'a Pull),
}

impl<'a> Item<'a> {
    /// Numeric id.
    pub fn id(self) -> u64 {
        match self {
            Item::Issue(i) => i.id,
            Item::Pull(p) => p.id,
        }
    }
    /// Number.
    pub fn number(self) -> u64 {
        match self {
            Item::Issue(i) => i.number,
            Item::Pull(p) => p.number,
        }
    }
    /// Title.
    pub fn title(self) -> &'a str {
        match self {
            Item::Issue(i) => &i.title,
            Item::Pull(p) => &p.title,
        }
    }
    /// Body.
    pub fn body(self) -> &'a str {
        match self {
            Item::Issue(i) => &i.body,
            Item::Pull(p) => &p.body,
        }
    }
    /// Author's login.
    pub fn author(self) -> &'a str {
        match self {
            Item::Issue(i) => &i.author,
            Item::Pull(p) => &p.author,
        }
    }
    /// State (a merged pull request is closed as an issue).
    pub fn state(self) -> State {
        match self {
            Item::Issue(i) => i.state,
            Item::Pull(p) => p.state,
        }
    }
    /// Whether it is open.
    pub fn is_open(self) -> bool {
        self.state() == State::Open
    }
    /// Label names.
    pub fn labels(self) -> &'a [String] {
        match self {
            Item::Issue(i) => &i.labels,
            Item::Pull(p) => &p.labels,
        }
    }
    /// Assignees' logins.
    pub fn assignees(self) -> &'a [String] {
        match self {
            Item::Issue(i) => &i.assignees,
            Item::Pull(p) => &p.assignees,
        }
    }
    /// Comments.
    pub fn comments(self) -> &'a [Comment] {
        match self {
            Item::Issue(i) => &i.comments,
            Item::Pull(p) => &p.comments,
        }
    }
    /// Creation time.
    pub fn created_at(self) -> Timestamp {
        match self {
            Item::Issue(i) => i.created_at,
            Item::Pull(p) => p.created_at,
        }
    }
    /// Last update time.
    pub fn updated_at(self) -> Timestamp {
        match self {
            Item::Issue(i) => i.updated_at,
            Item::Pull(p) => p.updated_at,
        }
    }
    /// Close time.
    pub fn closed_at(self) -> Option<Timestamp> {
        match self {
            Item::Issue(i) => i.closed_at,
            Item::Pull(p) => p.closed_at,
        }
    }
    /// Whether `login` is @-mentioned in the body or a comment.
    pub fn mentions(self, login: &str) -> bool {
        let tag = format!("@{login}");
        self.body().contains(&tag) || self.comments().iter().any(|c| c.body.contains(&tag))
    }
}

impl Repo {
    /// Issues and pull requests together, by number.
    pub fn items(&self) -> Vec<Item<'_>> {
        let mut all: Vec<Item<'_>> = self
            .issues
            .iter()
            .map(Item::Issue)
            .chain(self.pulls.iter().map(Item::Pull))
            .collect();
        all.sort_by_key(|i| i.number());
        all
    }
}

/// The head commit: the branch's while open, the recorded one after.
pub fn head_sha(repo: &Repo, p: &Pull) -> String {
    match p.state {
        State::Open => repo
            .git
            .branches
            .get(&p.head)
            .cloned()
            .unwrap_or_else(|| p.head_sha.clone()),
        _ => p.head_sha.clone(),
    }
}

/// The (base, head) commits the pull request's changes span.
pub fn range(repo: &Repo, p: &Pull) -> (String, String) {
    let head = head_sha(repo, p);
    let base = match (p.state, repo.git.branches.get(&p.base)) {
        (State::Open, Some(b)) => repo.git.merge_base(b, &head).unwrap_or_else(|| b.clone()),
        _ => p.base_sha.clone(),
    };
    (base, head)
}

/// The file changes of a pull request.
pub fn changes(repo: &Repo, p: &Pull) -> Vec<FileChange> {
    let (base, head) = range(repo, p);
    repo.git.changes_between(&base, &head)
}
