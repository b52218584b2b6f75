//! A policy that runs long: the evaluation deadline stops it, the configured failure policy
//! answers (and it is counted), and the other reviews, evaluated beside it, are answered by the
//! policies, not by the deadline.

use std::time::Duration;

use crate::load::{self, Plan, Summary};
use crate::{Webhook, figure, metric, slow_kind, standard_mix, test_policies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_policy_meets_the_deadline_and_delays_nothing_else() {
    let _serial = crate::serial().await;
    let deadline = Duration::from_millis(500);
    let webhook = Webhook::start(
        "deadline",
        &test_policies(),
        "failurePolicy: Fail\nevaluationTimeout: 500ms\nmaxConcurrentReviews: 8",
    )
    .await;
    let client = webhook.client();
    let mut mix = standard_mix();
    mix.push((slow_kind(), 1));
    // One review in 51 is slow: about 2 a second, each stopped at 500 ms.
    let mix = mix
        .into_iter()
        .map(|(kind, weight)| {
            (
                kind.clone(),
                if kind.label == "slow" { 1 } else { weight * 5 },
            )
        })
        .collect();
    let plan = Plan::new(100.0, Duration::from_secs(4), mix);
    let records = load::run(&client, &plan).await;

    let slow: Vec<_> = records
        .iter()
        .filter(|r| r.label == "slow")
        .cloned()
        .collect();
    let others: Vec<_> = records
        .iter()
        .filter(|r| r.label != "slow")
        .cloned()
        .collect();
    let slow_summary = Summary::of(&slow);
    let others_summary = Summary::of(&others);
    figure(&format!(
        "deadline 500 ms, slow policy: {}",
        slow_summary.line()
    ));
    figure(&format!(
        "deadline 500 ms, other reviews beside it: {}",
        others_summary.line()
    ));
    // The slow reviews got the failure policy's answer, after the deadline, not much later.
    assert_eq!(
        slow_summary.answered,
        slow.len(),
        "{}",
        load::problems(&slow)
    );
    for record in &slow {
        assert!(
            record.latency >= deadline,
            "a slow review answered before the deadline: {:?}",
            record.latency
        );
        assert!(
            record.latency < deadline * 4,
            "a slow review answered long after the deadline: {:?}",
            record.latency
        );
        let message = record.answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains("exceeded"), "{message}");
    }
    // Every other review was decided by the policies: none waited until the deadline.
    assert_eq!(
        others_summary.answered,
        others.len(),
        "{}",
        load::problems(&others)
    );
    let metrics = webhook.metrics().await;
    let counted = metric(
        &metrics,
        "meshguard_validation_errors_total{reason=\"timeout\"",
    );
    assert_eq!(counted as usize, slow.len(), "{metrics}");
}
