//! The doctor's findings and their two renderings: plain words for the operator, JSON for
//! machines (`--json`).

use serde::Serialize;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Pass,
    /// Works now, but is likely to break or is worth a look.
    Warn,
    /// Broken: the connector will not work until it is fixed.
    Fail,
    /// Not checked, because something it depends on already failed.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One finding: what was checked, what was found, and, when it is not fine, what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable name for scripts, e.g. `runtime-quic` or `upstream:ghes`.
    pub id: String,
    /// The verdict.
    pub status: Status,
    /// What was found, in plain words.
    pub summary: String,
    /// How to fix it (set for warnings and failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn pass(id: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Pass, summary, None)
    }

    /// A failing check and its fix.
    pub fn fail(id: impl Into<String>, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(id, Status::Fail, summary, Some(fix.into()))
    }

    /// A warning and what to do about it.
    pub fn warn(id: impl Into<String>, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(id, Status::Warn, summary, Some(fix.into()))
    }

    /// A check that could not run, and why.
    pub fn skip(id: impl Into<String>, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Skip, summary, None)
    }

    fn new(
        id: impl Into<String>,
        status: Status,
        summary: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            id: id.into(),
            status,
            summary: summary.into(),
            fix,
        }
    }
}

/// Everything the doctor found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The configuration file checked, if any.
    pub config: Option<String>,
    /// Whether no check failed.
    pub ok: bool,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// A report over `checks`.
    pub fn new(config: Option<String>, checks: Vec<Check>) -> Self {
        let ok = !checks.iter().any(|c| c.status == Status::Fail);
        Self { config, ok, checks }
    }

    /// How many checks have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The report as text: one line per check, the fix indented below it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "edge-connector doctor ({})\n\n",
            self.config
                .as_deref()
                .map_or("no configuration file".to_owned(), |c| format!(
                    "config {c}"
                ))
        );
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for c in &self.checks {
            out.push_str(&format!(
                "  {:<4}  {:<width$}  {}\n",
                c.status.label(),
                c.id,
                c.summary
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("        {:<width$}  fix: {fix}\n", ""));
            }
        }
        let (fail, warn) = (self.count(Status::Fail), self.count(Status::Warn));
        out.push('\n');
        out.push_str(&match (fail, warn) {
            (0, 0) => "All checks passed.\n".to_owned(),
            (0, w) => format!("No failures; {w} warning(s): see the fixes above.\n"),
            (f, w) => format!("{f} failure(s), {w} warning(s): see the fixes above.\n"),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_makes_the_report_not_ok_and_shows_its_fix() {
        let r = Report::new(
            Some("/etc/edge-connector/config.toml".into()),
            vec![
                Check::pass("clock", "in sync"),
                Check::fail("runtime-quic", "UDP 4433 seems blocked", "Open UDP 4433"),
            ],
        );
        assert!(!r.ok);
        let text = r.render();
        assert!(
            text.contains("FAIL  runtime-quic  UDP 4433 seems blocked"),
            "{text}"
        );
        assert!(text.contains("fix: Open UDP 4433"), "{text}");
        assert!(text.contains("1 failure(s)"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][1]["status"], "fail");
        assert!(Report::new(None, vec![Check::pass("a", "b")]).ok);
    }
}
