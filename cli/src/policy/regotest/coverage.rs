//! Coverage of the policies (not of the tests) by the tests that ran, from regorus's `coverage`
//! feature: per file the evaluated and never-evaluated lines, a total, and `--threshold`.

use regorus::Engine;
use serde::Serialize;

/// Coverage of one policy file.
#[derive(Debug, Clone, Serialize)]
pub struct FileCoverage {
    /// The file.
    pub file: String,
    /// Lines evaluated at least once.
    pub covered: usize,
    /// Lines that hold code never evaluated.
    pub not_covered: usize,
    /// `not_covered` as ranges (`12-14`), for the report.
    pub uncovered_lines: Vec<String>,
    /// Percentage (100 for a file with no code lines).
    pub percent: f64,
}

/// Coverage of every policy file.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Per file, sorted by name.
    pub files: Vec<FileCoverage>,
    /// Over all files.
    pub percent: f64,
}

/// Reads the coverage gathered by `engine`, leaving out the files in `exclude` (the tests).
pub fn collect(engine: &Engine, exclude: &[String]) -> anyhow::Result<Coverage> {
    let report = engine.get_coverage_report()?;
    let mut files = Vec::new();
    let (mut covered_total, mut lines_total) = (0usize, 0usize);
    for file in report.files {
        if exclude.contains(&file.path) || file.path.starts_with('<') {
            continue;
        }
        let covered = file.covered.len();
        let not_covered = file.not_covered.len();
        covered_total += covered;
        lines_total += covered + not_covered;
        files.push(FileCoverage {
            file: file.path,
            covered,
            not_covered,
            uncovered_lines: ranges(file.not_covered.iter().copied()),
            percent: percent(covered, covered + not_covered),
        });
    }
    files.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Coverage {
        files,
        percent: percent(covered_total, lines_total),
    })
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        (part as f64) * 100.0 / (whole as f64)
    }
}

fn ranges(lines: impl Iterator<Item = u32>) -> Vec<String> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for line in lines {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == line => *end = line,
            _ => out.push((line, line)),
        }
    }
    out.into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_merge_consecutive_lines() {
        assert_eq!(
            super::ranges([3, 4, 5, 9, 11, 12].into_iter()),
            ["3-5", "9", "11-12"]
        );
    }
}
