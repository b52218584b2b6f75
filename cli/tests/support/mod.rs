//! Running the `meshguard` binary from the repository root, as a developer or CI would.

#![allow(dead_code, reason = "each test crate uses a different subset")]

pub mod package;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root (the workspace), where `policies/` and `gatekeeper/` live.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

/// What a run printed and how it ended.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The last non-empty line of stdout.
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts stdout contains each text.
    pub fn stdout_has(&self, texts: &[&str]) -> &Run {
        for text in texts {
            assert!(
                self.stdout.contains(text),
                "stdout lacks {text:?}\n--- stdout\n{}",
                self.stdout
            );
        }
        self
    }

    /// Asserts stderr contains each text.
    pub fn stderr_has(&self, texts: &[&str]) -> &Run {
        for text in texts {
            assert!(
                self.stderr.contains(text),
                "stderr lacks {text:?}\n--- stderr\n{}",
                self.stderr
            );
        }
        self
    }
}

/// Runs `meshguard ARGS` in the repository root.
pub fn meshguard(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_meshguard"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run meshguard");
    Run::from(output)
}

/// Runs `meshguard ARGS` with `input` on standard input.
pub fn meshguard_stdin(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshguard"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshguard");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    Run::from(child.wait_with_output().expect("wait for meshguard"))
}

/// Parses `N passed, N failed[, N skipped]`.
pub fn counts(line: &str) -> (usize, usize, usize) {
    let re = regex::Regex::new(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$").expect("regex");
    let caps = re
        .captures(line)
        .unwrap_or_else(|| panic!("not a summary line: {line:?}"));
    let n = |i: usize| {
        caps.get(i)
            .map_or(0, |m| m.as_str().parse().expect("number"))
    };
    (n(1), n(2), n(3))
}

/// A fresh scratch folder under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root()
        .join("target")
        .join("meshguard-cli-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Copies a folder recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
