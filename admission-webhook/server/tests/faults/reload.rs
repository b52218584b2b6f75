//! A policy reload during load: the policy files are rewritten in place, file by file and each
//! in two writes (as an editor, `kubectl cp` or a file-by-file sync does), back and forth between
//! two versions, while reviews arrive at ~300/s. Every answer must be one version's verdict
//! whole: never a template with only some of its constraints, never one file's new version with
//! the other's old one.

use std::path::Path;
use std::time::Duration;

use crate::load::{self, Expect, Kind, Plan, Summary};
use crate::{Webhook, figure};

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sfaultmarker
spec:
  crd:
    spec:
      names:
        kind: K8sFaultMarker
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sfaultmarker

        violation[{"msg": msg}] {
          msg := input.parameters.message
        }
"#;

/// A constraint named `name` with an action and message, for Deployments.
fn constraint(name: &str, action: &str, message: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sFaultMarker\nmetadata:\n  name: {name}\n\
         spec:\n  enforcementAction: {action}\n  match:\n    kinds:\n      - apiGroups: [apps]\n        kinds: [Deployment]\n\
         \x20 parameters:\n    message: {message:?}\n"
    )
}

/// The two files of version `a` (both constraints deny) or not (both warn).
fn version(a: bool) -> [String; 2] {
    let (action, tag) = if a { ("deny", "A") } else { ("warn", "B") };
    [
        format!(
            "{TEMPLATE}---\n{}",
            constraint("one", action, &format!("version {tag}: one"))
        ),
        constraint("two", action, &format!("version {tag}: two")),
    ]
}

/// Rewrites a file in place in two writes, the way a non-atomic writer does.
fn rewrite(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let (head, tail) = text.split_at(text.len() / 2);
    file.write_all(head.as_bytes()).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    file.write_all(tail.as_bytes()).unwrap();
}

fn write_version(dir: &Path, a: bool) {
    let [one, two] = version(a);
    rewrite(&dir.join("one.yaml"), &one);
    std::thread::sleep(Duration::from_millis(20));
    rewrite(&dir.join("two.yaml"), &two);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_load_is_seen_whole_or_not_at_all() {
    let _serial = crate::serial().await;
    let policies = std::env::temp_dir().join(format!(
        "meshguard-faults-reload-policies-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&policies);
    std::fs::create_dir_all(&policies).unwrap();
    write_version(&policies, true);
    let webhook = Webhook::start(
        "reload",
        &policies,
        "failurePolicy: Fail\nevaluationTimeout: 2s\nmaxQueuedReviews: 512",
    )
    .await;
    let client = webhook.client();
    let version_a = Expect::Denied(403, "[one] version A: one\n[two] version A: two".into());
    let version_b = Expect::Allowed(vec![
        "[one] version B: one".into(),
        "[two] version B: two".into(),
    ]);
    let kind = Kind {
        review: crate::support::allowed_review(),
        expect: Expect::OneOf(vec![version_a, version_b]),
        label: "marker",
    };
    let plan = Plan::new(300.0, Duration::from_secs(5), vec![(kind, 1)]);
    let toggle_every = Duration::from_millis(900);
    let writer = {
        let dir = policies.clone();
        tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            let mut toggles = Vec::new();
            let mut a = true;
            while start.elapsed() < Duration::from_millis(4500) {
                std::thread::sleep(toggle_every);
                a = !a;
                toggles.push(start.elapsed());
                write_version(&dir, a);
            }
            toggles
        })
    };
    let records = load::run(&client, &plan).await;
    let toggles = writer.await.unwrap();

    let all = Summary::of(&records);
    let during = Summary::of(records.iter().filter(|r| {
        toggles
            .iter()
            .any(|at| r.sent >= *at && r.sent <= *at + Duration::from_millis(300))
    }));
    let denied = records
        .iter()
        .filter(|r| r.answer["response"]["allowed"] == false)
        .count();
    let reloads = webhook
        .logs()
        .iter()
        .filter(|l| l.contains("policies loaded"))
        .count();
    figure(&format!(
        "policy reload at 300/s, {} rewrites, {reloads} loads: {}",
        toggles.len(),
        all.line()
    ));
    figure(&format!(
        "policy reload, p99 within 300 ms of a rewrite: {:.1} ms ({} requests); version A answers {denied}, version B {}",
        during.p99_ms,
        during.sent,
        records.len() - denied
    ));
    assert_eq!(
        (all.failed, all.lost, all.refused),
        (0, 0, 0),
        "a review saw a half-loaded set:\n{}",
        load::problems(&records)
    );
    assert!(
        denied > 0 && denied < records.len(),
        "only one version was ever in force"
    );
    let _ = std::fs::remove_dir_all(&policies);
}
