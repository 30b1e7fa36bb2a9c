//! Fault injection: rules that make the next N matching requests fail (an error status, a
//! rate limit, a delay, a reset connection), set through `POST /_fake/faults`.

use std::sync::Mutex;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What a fault does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Answer with `status` (default 500) and that status's usual body.
    Status,
    /// The primary rate limit: GitHub 403 with `x-ratelimit-remaining: 0`, GitLab 429.
    RateLimit,
    /// GitHub's secondary rate limit: 403 (or `status`, e.g. 429) with `retry-after`.
    SecondaryRateLimit,
    /// Wait `delay_ms`, then serve the request normally.
    Delay,
    /// Close the TCP connection without answering (a reset).
    Reset,
}

/// A rule as posted to `/_fake/faults`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Only this method (any when absent).
    pub method: Option<String>,
    /// Only paths starting with this.
    pub path_prefix: Option<String>,
    /// Only paths matching this regular expression.
    pub path_regex: Option<String>,
    /// How many matching requests it affects (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// What it does.
    pub action: Action,
    /// Status for `status` and `secondary_rate_limit`.
    pub status: Option<u16>,
    /// `retry-after` seconds for the rate limits (default 60); also sent with `status`
    /// when given.
    pub retry_after: Option<u64>,
    /// Milliseconds for `delay`.
    pub delay_ms: Option<u64>,
    /// A body replacing the default one (for `status`).
    pub body: Option<String>,
}

fn one() -> u32 {
    1
}

struct Armed {
    rule: Rule,
    regex: Option<Regex>,
    left: u32,
}

/// The armed rules, first match wins.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Armed>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Armed>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms `rule`; refuses a bad regular expression or a zero count.
    pub fn add(&self, rule: Rule) -> Result<(), String> {
        let regex = match &rule.path_regex {
            Some(r) => Some(Regex::new(r).map_err(|e| format!("path_regex: {e}"))?),
            None => None,
        };
        if rule.count == 0 {
            return Err("count must be at least 1".into());
        }
        if rule.action == Action::Delay && rule.delay_ms.is_none() {
            return Err("delay needs delay_ms".into());
        }
        let left = rule.count;
        self.lock().push(Armed { rule, regex, left });
        Ok(())
    }

    /// The rules still armed, with their remaining counts.
    pub fn list(&self) -> Vec<(Rule, u32)> {
        self.lock()
            .iter()
            .map(|a| (a.rule.clone(), a.left))
            .collect()
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The rule hitting this request, if any, counting it down.
    pub fn take(&self, method: &str, path: &str) -> Option<Rule> {
        let mut rules = self.lock();
        let pos = rules.iter().position(|a| {
            a.rule
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && a.rule
                    .path_prefix
                    .as_deref()
                    .is_none_or(|p| path.starts_with(p))
                && a.regex.as_ref().is_none_or(|r| r.is_match(path))
        })?;
        let armed = rules.get_mut(pos)?;
        armed.left -= 1;
        let rule = armed.rule.clone();
        if armed.left == 0 {
            rules.remove(pos);
        }
        Some(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn matches_count_down_and_disarm() {
        let f = Faults::default();
        f.add(rule(r#"{"method":"POST","path_prefix":"/api/v3/repos","count":2,"action":"status","status":502}"#)).unwrap();
        assert!(f.take("GET", "/api/v3/repos/a/b").is_none());
        assert!(f.take("POST", "/api/v3/repos/a/b").is_some());
        assert!(f.take("post", "/api/v3/repos/a/b").is_some());
        assert!(f.take("POST", "/api/v3/repos/a/b").is_none());
    }

    #[test]
    fn regex_rules() {
        let f = Faults::default();
        f.add(rule(r#"{"path_regex":"/issues/\\d+$","action":"reset"}"#))
            .unwrap();
        assert!(f.take("GET", "/api/v3/repos/a/b/issues").is_none());
        assert_eq!(
            f.take("GET", "/api/v3/repos/a/b/issues/7").unwrap().action,
            Action::Reset
        );
        assert!(
            f.add(rule(r#"{"path_regex":"(","action":"reset"}"#))
                .is_err()
        );
    }
}
