//! Overload beyond the concurrency bound: a burst of reviews, each of which would take the
//! whole deadline, arrives at once. The webhook evaluates `maxConcurrentReviews` of them, queues
//! `maxQueuedReviews`, and answers every other one at once with the failure policy
//! (`overloaded`, counted); nothing waits without bound, memory stays bounded, and the next
//! reviews are served normally.

use std::time::Duration;

use crate::load::{self, End, Expect, Kind, Plan, Summary};
use crate::{Webhook, figure, metric, slow_kind, standard_mix, test_policies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_answered_at_once_and_memory_stays_bounded() {
    let _serial = crate::serial().await;
    let deadline = Duration::from_secs(3);
    let webhook = Webhook::start(
        "overload",
        &test_policies(),
        "failurePolicy: Fail\nevaluationTimeout: 3s\nmaxConcurrentReviews: 2\nmaxQueuedReviews: 2",
    )
    .await;
    let client = webhook.client();
    let rss_before = webhook.rss_kib();
    // 200 slow reviews, each padded to ~64 KiB, in one burst over 200 connections.
    let mut slow = slow_kind();
    slow.review["request"]["object"]["metadata"]["annotations"] =
        serde_json::json!({"padding": "x".repeat(64 * 1024)});
    let overloaded = Kind {
        expect: Expect::Denied(500, "overloaded".into()),
        label: "burst",
        ..slow.clone()
    };
    let mut burst = Plan::new(2000.0, Duration::from_millis(100), vec![(overloaded, 1)]);
    burst.new_connection_every = 1;
    let (burst_records, peak_rss) = {
        let load = tokio::spawn({
            let (client, burst) = (client.clone(), burst.clone());
            async move { load::run(&client, &burst).await }
        });
        let mut peak = 0;
        while !load.is_finished() {
            peak = peak.max(webhook.rss_kib());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (load.await.unwrap(), peak)
    };
    // The admitted few end with the deadline's failure-policy answer, the rest as overloaded.
    let quick: Vec<_> = burst_records
        .iter()
        .filter(|r| r.end == End::Answered)
        .cloned()
        .collect();
    let admitted: Vec<_> = burst_records
        .iter()
        .filter(|r| r.end != End::Answered)
        .cloned()
        .collect();
    let summary = Summary::of(&burst_records);
    let quick_summary = Summary::of(&quick);
    figure(&format!(
        "overload burst of {} (2 evaluating, 2 queued): {}",
        burst_records.len(),
        summary.line()
    ));
    figure(&format!(
        "overload: {} answered `overloaded` at once (p99 {:.1} ms, max {:.1} ms); RSS {} MiB before, {} MiB at peak",
        quick.len(),
        quick_summary.p99_ms,
        quick_summary.max_ms,
        rss_before / 1024,
        peak_rss / 1024
    ));
    assert_eq!(
        (summary.lost, summary.refused),
        (0, 0),
        "{}",
        load::problems(&burst_records)
    );
    assert!(
        admitted.len() <= 4,
        "more reviews admitted than evaluating + queued: {}",
        load::problems(&burst_records)
    );
    // Evaluated until the deadline, or queued until it without getting a slot.
    let mut slotless = 0;
    for record in &admitted {
        let message = record.answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or("");
        assert!(
            message.contains("exceeded") || message.contains("no evaluation slot"),
            "{message}"
        );
        slotless += usize::from(message.contains("no evaluation slot"));
    }
    assert!(quick.len() >= burst_records.len() - 4);
    assert!(
        quick_summary.max_ms < deadline.as_secs_f64() * 1000.0 / 2.0,
        "overload was not answered at once: {}",
        quick_summary.line()
    );
    assert!(
        peak_rss < rss_before + 256 * 1024,
        "memory grew from {rss_before} KiB to {peak_rss} KiB"
    );
    let metrics = webhook.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "meshguard_validation_errors_total{reason=\"overloaded\""
        ) as usize,
        quick.len() + slotless,
        "{metrics}"
    );

    // Afterwards the webhook serves as usual.
    let after = load::run(
        &client,
        &Plan::new(100.0, Duration::from_secs(1), standard_mix()),
    )
    .await;
    let after_summary = Summary::of(&after);
    figure(&format!(
        "overload, the second after: {}",
        after_summary.line()
    ));
    assert_eq!(
        after_summary.answered,
        after.len(),
        "{}",
        load::problems(&after)
    );
}
