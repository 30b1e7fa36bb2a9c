//! The built-in seed (`--seed builtin`): `seed/builtin.json` plus two generated pieces too
//! long to keep by hand, a large file for truncation tests (`data/catalog.csv` in
//! `acme/widgets`, about 190 KB) and a failed job's multi-hundred-line log.

use crate::seed::{Seed, SeedError};

const BUILTIN_JSON: &str = include_str!("../seed/builtin.json");

/// Rows in the generated catalogue.
const CATALOG_ROWS: usize = 3000;

/// The built-in seed.
pub fn builtin() -> Result<Seed, SeedError> {
    let mut seed = Seed::from_json(BUILTIN_JSON)?;
    let widgets = seed
        .repos
        .iter_mut()
        .find(|r| r.namespace == "acme" && r.name == "widgets")
        .ok_or_else(|| SeedError::Invalid("builtin: acme/widgets missing".into()))?;
    if let Some(c) = widgets.commits.iter_mut().find(|c| c.key == "catalog") {
        c.files.insert("data/catalog.csv".into(), Some(catalog()));
    }
    let failed_job = widgets
        .pipelines
        .iter_mut()
        .filter(|p| p.branch == "feature/fast-render")
        .flat_map(|p| p.jobs.iter_mut())
        .find(|j| j.name == "test");
    if let Some(job) = failed_job {
        job.log = failed_test_log();
    }
    Ok(seed)
}

fn catalog() -> String {
    let mut out = String::from("sku,name,width,height,border,colour,price_cents,in_stock\n");
    for i in 0..CATALOG_ROWS {
        out.push_str(&format!(
            "W-{i:05},Widget model {i},{},{},{},{},{},{}\n",
            10 + i % 90,
            3 + i % 12,
            ["ascii", "unicode", "none"][i % 3],
            ["red", "green", "blue", "black", "white"][i % 5],
            199 + (i * 37) % 5000,
            i % 7 != 0
        ));
    }
    out
}

/// A GitHub-Actions-style log of `cargo test` with one failure near the end, as the
/// runner writes it: each line prefixed with its timestamp.
fn failed_test_log() -> String {
    let mut lines = vec![
        "##[group]Run cargo test --locked".to_owned(),
        "cargo test --locked".to_owned(),
        "shell: /usr/bin/bash -e {0}".to_owned(),
        "env:".to_owned(),
        "  CARGO_TERM_COLOR: always".to_owned(),
        "##[endgroup]".to_owned(),
    ];
    for i in 0..120 {
        lines.push(format!(
            "   Compiling dep-{i:03} v0.{}.{} (registry `crates-io`)",
            i % 9,
            i % 13
        ));
    }
    lines.push("   Compiling widgets v0.3.1 (/home/runner/work/widgets/widgets)".into());
    lines.push("    Finished `test` profile [unoptimized + debuginfo] target(s) in 2m 51s".into());
    lines.push(
        "     Running unittests src/lib.rs (target/debug/deps/widgets-5f1c2d3e4b5a6978)".into(),
    );
    lines.push(String::new());
    lines.push("running 240 tests".into());
    for i in 0..237 {
        lines.push(format!("test generated::case_{i:03} ... ok"));
    }
    lines.push("test widget::tests::renders_a_box ... ok".into());
    lines.push("test widget::tests::empty_text_has_no_initial ... ok".into());
    lines.push("test widget::tests::wide_characters_are_measured ... FAILED".into());
    lines.push(String::new());
    lines.push("failures:".into());
    lines.push(String::new());
    lines.push("---- widget::tests::wide_characters_are_measured stdout ----".into());
    lines.push(
        "thread 'widget::tests::wide_characters_are_measured' panicked at src/widget.rs:52:9:"
            .into(),
    );
    lines.push("assertion `left == right` failed".into());
    lines.push("  left: Some(8)".into());
    lines.push(" right: Some(6)".into());
    lines.push(
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace".into(),
    );
    lines.push(String::new());
    lines.push("failures:".into());
    lines.push("    widget::tests::wide_characters_are_measured".into());
    lines.push(String::new());
    lines.push("test result: FAILED. 239 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.42s".into());
    lines.push(String::new());
    lines.push("error: test failed, to rerun pass `--lib`".into());
    lines.push("##[error]Process completed with exit code 101.".into());
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        // Timestamps a few milliseconds apart from the job's start (09:17:40).
        let ms = 40_000 + i * 517;
        out.push_str(&format!(
            "2024-03-05T09:{:02}:{:02}.{:03}0000Z {line}\n",
            17 + ms / 60_000,
            (ms / 1000) % 60,
            ms % 1000
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[test]
    fn builtin_seed_builds_both_worlds() {
        let gh = builtin().unwrap().into_world(Kind::Github).unwrap();
        let gl = builtin().unwrap().into_world(Kind::Gitlab).unwrap();
        assert_eq!(gh.repos.len(), 2);
        assert_eq!(gl.repos.len(), 3);
        let widgets = &gh.repos[gh.repo_index("acme/widgets").unwrap()];
        let main = widgets.git.resolve("main").unwrap();
        assert!(widgets.git.tree(&main)["data/catalog.csv"].len() > 150_000);
        let log = &widgets.pipelines[1].jobs[1].log;
        assert!(log.lines().count() > 300, "{}", log.lines().count());
    }
}
