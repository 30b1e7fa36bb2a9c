//! Line diffs rendered as unified-diff hunks (`@@ -a,b +c,d @@`), the text both GitHub's
//! `patch` and GitLab's `diff` fields carry.

/// Lines of context around each change, as git uses by default.
const CONTEXT: usize = 3;

/// Above this many cells the quadratic LCS is skipped and the changed middle is shown as
/// one replacement: correct, if less minimal, and bounded in time.
const MAX_LCS_CELLS: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Del,
    Add,
}

/// A file's diff: the hunks text and the counts GitHub reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileDiff {
    /// Hunks, each starting with `@@`; empty when the texts are equal.
    pub hunks: String,
    /// Added lines.
    pub additions: u64,
    /// Removed lines.
    pub deletions: u64,
}

/// Diffs `old` against `new` line by line.
pub fn diff(old: &str, new: &str) -> FileDiff {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    render(&a, &b, &ops)
}

/// The edit script: common prefix and suffix kept, the middle by LCS.
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops = vec![Op::Keep; prefix];
    if ma.len().saturating_mul(mb.len()) > MAX_LCS_CELLS {
        ops.extend(std::iter::repeat_n(Op::Del, ma.len()));
        ops.extend(std::iter::repeat_n(Op::Add, mb.len()));
    } else {
        ops.extend(lcs_ops(ma, mb));
    }
    ops.extend(std::iter::repeat_n(Op::Keep, suffix));
    ops
}

fn lcs_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    // table[i][j] = LCS length of a[i..] and b[j..].
    let mut table = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[at(i, j)] = if a[i] == b[j] {
                table[at(i + 1, j + 1)] + 1
            } else {
                table[at(i + 1, j)].max(table[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::with_capacity(n + m));
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Keep);
            i += 1;
            j += 1;
        } else if j < m && (i == n || table[at(i, j + 1)] >= table[at(i + 1, j)]) {
            ops.push(Op::Add);
            j += 1;
        } else {
            ops.push(Op::Del);
            i += 1;
        }
    }
    // git prints a hunk's removals before its additions.
    normalise(ops)
}

/// Within each run of changes, puts deletions before additions.
fn normalise(ops: Vec<Op>) -> Vec<Op> {
    let mut out = Vec::with_capacity(ops.len());
    let mut run: Vec<Op> = Vec::new();
    for op in ops {
        if op == Op::Keep {
            run.sort_by_key(|o| *o == Op::Add);
            out.append(&mut run);
            out.push(op);
        } else {
            run.push(op);
        }
    }
    run.sort_by_key(|o| *o == Op::Add);
    out.append(&mut run);
    out
}

fn render(a: &[&str], b: &[&str], ops: &[Op]) -> FileDiff {
    let mut out = FileDiff::default();
    // Positions (old line, new line) before each op.
    let mut pos = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0usize, 0usize);
    for op in ops {
        pos.push((i, j));
        match op {
            Op::Keep => {
                i += 1;
                j += 1;
            }
            Op::Del => i += 1,
            Op::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|k| ops[*k] != Op::Keep).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        // Merge changes whose context windows touch.
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT {
            end = changed[k];
            k += 1;
        }
        let stop = (end + CONTEXT + 1).min(ops.len());
        let (oi, nj) = pos[start];
        let old_len = ops[start..stop].iter().filter(|o| **o != Op::Add).count();
        let new_len = ops[start..stop].iter().filter(|o| **o != Op::Del).count();
        out.hunks.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(oi, old_len),
            range(nj, new_len)
        ));
        for idx in start..stop {
            let (oi, nj) = pos[idx];
            match ops[idx] {
                Op::Keep => out.hunks.push_str(&format!(" {}\n", a[oi])),
                Op::Del => {
                    out.deletions += 1;
                    out.hunks.push_str(&format!("-{}\n", a[oi]));
                }
                Op::Add => {
                    out.additions += 1;
                    out.hunks.push_str(&format!("+{}\n", b[nj]));
                }
            }
        }
    }
    out
}

/// `start,len` in unified-diff form: 1-based, and an empty range names the line before it.
fn range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{len}", start + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_change_has_context() {
        let d = diff("a\nb\nc\nd\ne\n", "a\nb\nX\nd\ne\n");
        assert_eq!(d.hunks, "@@ -1,5 +1,5 @@\n a\n b\n-c\n+X\n d\n e\n");
        assert_eq!((d.additions, d.deletions), (1, 1));
    }

    #[test]
    fn new_file_is_all_additions() {
        let d = diff("", "x\ny\n");
        assert_eq!(d.hunks, "@@ -0,0 +1,2 @@\n+x\n+y\n");
    }

    #[test]
    fn distant_changes_make_two_hunks() {
        let old: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 2\n", "two\n")
            .replace("line 25\n", "twenty-five\n");
        let d = diff(&old, &new);
        assert_eq!(d.hunks.matches("@@ -").count(), 2);
        assert_eq!((d.additions, d.deletions), (2, 2));
    }

    #[test]
    fn equal_texts_have_no_hunks() {
        assert_eq!(diff("a\n", "a\n"), FileDiff::default());
    }
}
