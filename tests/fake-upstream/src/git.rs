//! A small git object model: commits carrying file changes, branches pointing at commits,
//! trees computed by replaying the first-parent chain. Object ids are SHA-1 as git makes
//! them for blobs (`blob <len>\0<content>`), and deterministic SHA-1s of a canonical text
//! for trees and commits, so ids look and behave like real ones.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use aws_lc_rs::digest;

use crate::time_fmt::Timestamp;

/// A commit.
#[derive(Debug, Clone)]
pub struct Commit {
    /// 40 hex digits.
    pub sha: String,
    /// Parent commits; the first is the mainline.
    pub parents: Vec<String>,
    /// Commit message.
    pub message: String,
    /// Author's login.
    pub author: String,
    /// Author date (also the committer date).
    pub date: Timestamp,
    /// Files written (`Some`) or deleted (`None`) relative to the first parent.
    pub changes: BTreeMap<String, Option<String>>,
    /// The tree's id.
    pub tree_sha: String,
}

/// One file's change between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path.
    pub path: String,
    /// Content before; `None` for an added file.
    pub old: Option<String>,
    /// Content after; `None` for a removed file.
    pub new: Option<String>,
}

/// Commits and branches of one repository.
#[derive(Debug, Clone, Default)]
pub struct Git {
    /// Commits by sha.
    pub commits: HashMap<String, Commit>,
    /// Branch name → head sha.
    pub branches: BTreeMap<String, String>,
}

/// Git's blob id of `content`.
pub fn blob_sha(content: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(format!("blob {}\0", content.len()).as_bytes());
    ctx.update(content.as_bytes());
    hex::encode(ctx.finish().as_ref())
}

fn sha1_hex(text: &str) -> String {
    hex::encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes()).as_ref())
}

impl Git {
    /// Adds a commit on top of `parents` and returns its sha. Does not move any branch.
    pub fn commit(
        &mut self,
        parents: Vec<String>,
        message: &str,
        author: &str,
        date: Timestamp,
        changes: BTreeMap<String, Option<String>>,
    ) -> String {
        let mut tree = parents.first().map(|p| self.tree(p)).unwrap_or_default();
        apply(&mut tree, &changes);
        let tree_sha = tree_sha(&tree);
        let mut text = format!("tree {tree_sha}\n");
        for p in &parents {
            text.push_str(&format!("parent {p}\n"));
        }
        text.push_str(&format!("author {author} {}\n\n{message}", date.0));
        let sha = sha1_hex(&text);
        self.commits.insert(
            sha.clone(),
            Commit {
                sha: sha.clone(),
                parents,
                message: message.to_owned(),
                author: author.to_owned(),
                date,
                changes,
                tree_sha,
            },
        );
        sha
    }

    /// Resolves a branch name, `refs/heads/<branch>`, a full sha or an unambiguous prefix of
    /// at least 7 hex digits.
    pub fn resolve(&self, rev: &str) -> Option<String> {
        let rev = rev.strip_prefix("refs/heads/").unwrap_or(rev);
        if let Some(sha) = self.branches.get(rev) {
            return Some(sha.clone());
        }
        if self.commits.contains_key(rev) {
            return Some(rev.to_owned());
        }
        if rev.len() >= 7 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = self.commits.keys().filter(|s| s.starts_with(rev));
            if let (Some(one), None) = (found.next(), found.next()) {
                return Some(one.clone());
            }
        }
        None
    }

    /// The files at `sha`: path → content.
    pub fn tree(&self, sha: &str) -> BTreeMap<String, String> {
        let mut chain = Vec::new();
        let mut at = self.commits.get(sha);
        while let Some(c) = at {
            chain.push(c);
            at = c.parents.first().and_then(|p| self.commits.get(p));
        }
        let mut tree = BTreeMap::new();
        for c in chain.iter().rev() {
            apply(&mut tree, &c.changes);
        }
        tree
    }

    /// Every commit reachable from `sha`, itself included.
    pub fn ancestors(&self, sha: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([sha.to_owned()]);
        while let Some(s) = queue.pop_front() {
            if let Some(c) = self.commits.get(&s)
                && seen.insert(s)
            {
                queue.extend(c.parents.iter().cloned());
            }
        }
        seen
    }

    /// The nearest common ancestor of `a` and `b`.
    pub fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        let of_b = self.ancestors(b);
        self.log(a)
            .into_iter()
            .find(|c| of_b.contains(&c.sha))
            .map(|c| c.sha.clone())
    }

    /// Commits reachable from `sha`, newest first (by date, then sha for a stable order).
    pub fn log(&self, sha: &str) -> Vec<&Commit> {
        let mut all: Vec<&Commit> = self
            .ancestors(sha)
            .iter()
            .filter_map(|s| self.commits.get(s))
            .collect();
        all.sort_by(|x, y| y.date.cmp(&x.date).then_with(|| x.sha.cmp(&y.sha)));
        all
    }

    /// Commits reachable from `head` but not from `base`, oldest first.
    pub fn commits_between(&self, base: &str, head: &str) -> Vec<&Commit> {
        let of_base = self.ancestors(base);
        let mut out: Vec<&Commit> = self
            .log(head)
            .into_iter()
            .filter(|c| !of_base.contains(&c.sha))
            .collect();
        out.reverse();
        out
    }

    /// The file changes from tree `base` to tree `head`, by path.
    pub fn changes_between(&self, base: &str, head: &str) -> Vec<FileChange> {
        let (old, new) = (self.tree(base), self.tree(head));
        let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        paths
            .into_iter()
            .filter_map(|p| {
                let (o, n) = (old.get(p), new.get(p));
                (o != n).then(|| FileChange {
                    path: p.clone(),
                    old: o.cloned(),
                    new: n.cloned(),
                })
            })
            .collect()
    }
}

fn apply(tree: &mut BTreeMap<String, String>, changes: &BTreeMap<String, Option<String>>) {
    for (path, content) in changes {
        match content {
            Some(c) => tree.insert(path.clone(), c.clone()),
            None => tree.remove(path),
        };
    }
}

fn tree_sha(tree: &BTreeMap<String, String>) -> String {
    let text: String = tree
        .iter()
        .map(|(p, c)| format!("100644 {p} {}\n", blob_sha(c)))
        .collect();
    sha1_hex(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_sha_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            blob_sha("hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn branches_trees_and_merge_base() {
        let mut g = Git::default();
        let files = |p: &str, c: &str| BTreeMap::from([(p.to_owned(), Some(c.to_owned()))]);
        let root = g.commit(vec![], "init", "a", Timestamp(1), files("a", "1\n"));
        let main = g.commit(
            vec![root.clone()],
            "main",
            "a",
            Timestamp(2),
            files("b", "2\n"),
        );
        let feat = g.commit(
            vec![root.clone()],
            "feat",
            "a",
            Timestamp(3),
            files("a", "3\n"),
        );
        assert_eq!(g.merge_base(&main, &feat), Some(root.clone()));
        assert_eq!(g.tree(&feat).get("a").map(String::as_str), Some("3\n"));
        assert!(!g.tree(&feat).contains_key("b"));
        let changes = g.changes_between(&root, &feat);
        assert_eq!(changes.len(), 1);
        assert_eq!(g.commits_between(&main, &feat).len(), 1);
        assert_eq!(g.resolve(&feat[..7]), Some(feat));
    }
}
