//! SIGTERM during load (the pod is deleted or rolled): every review already in flight is
//! answered, including one still evaluating; new connections are refused at once; the process
//! exits, successfully, within its grace period.

use std::time::{Duration, Instant};

use crate::load::{self, Plan, Summary};
use crate::{Webhook, figure, slow_kind, standard_mix, test_policies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_what_is_in_flight_refuses_the_rest_and_exits_in_time() {
    let _serial = crate::serial().await;
    let grace = Duration::from_secs(5);
    let mut webhook = Webhook::start(
        "sigterm",
        &test_policies(),
        "failurePolicy: Fail\nevaluationTimeout: 1500ms\nshutdownGracePeriod: 5s",
    )
    .await;
    let client = webhook.client();
    let plan = Plan::new(150.0, Duration::from_secs(4), standard_mix());
    let term_at = Duration::from_secs(2);
    let load = {
        let (client, plan) = (client.clone(), plan.clone());
        tokio::spawn(async move { load::run(&client, &plan).await })
    };
    // A few slow reviews just before the signal: still evaluating (1.5 s each) when it comes.
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(term_at - Duration::from_millis(600)).await;
            load::run(
                &client,
                &Plan::new(8.0, Duration::from_millis(500), vec![(slow_kind(), 1)]),
            )
            .await
        })
    };
    tokio::time::sleep(term_at).await;
    webhook.sigterm();
    let signalled = Instant::now();
    // A new connection a moment later is refused (the listener is closed).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = client.connect().await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after SIGTERM"
    );
    let (exit, webhook) = tokio::task::spawn_blocking(move || {
        let exit = webhook.wait_exit(grace + Duration::from_secs(5));
        (exit, webhook)
    })
    .await
    .unwrap();
    let (status, _) =
        exit.unwrap_or_else(|| panic!("no exit within the grace period: {:?}", webhook.logs()));
    let logs = webhook.logs().join("\n");
    assert!(logs.contains("shutting down: listener closed"), "{logs}");
    let exited_after = signalled.elapsed();
    let records = load.await.unwrap();
    let slow = slow.await.unwrap();
    let slow_summary = Summary::of(&slow);

    let before: Vec<_> = records
        .iter()
        .filter(|r| r.sent < term_at)
        .cloned()
        .collect();
    let after: Vec<_> = records
        .iter()
        .filter(|r| r.sent >= term_at)
        .cloned()
        .collect();
    let in_flight = Summary::of(&before);
    let late = Summary::of(&after);
    figure(&format!(
        "SIGTERM at 150/s, sent before the signal: {}",
        in_flight.line()
    ));
    figure(&format!(
        "SIGTERM at 150/s, sent after the signal: {}",
        late.line()
    ));
    figure(&format!(
        "SIGTERM: process exited {status} {:.2} s after the signal (grace period {grace:?})",
        exited_after.as_secs_f64()
    ));
    assert!(status.success(), "exit status {status}");
    assert!(
        exited_after <= grace + Duration::from_secs(1),
        "took {exited_after:?}"
    );
    // Everything sent before the signal got its answer (slow ones their failure-policy answer).
    assert_eq!(
        (in_flight.failed, in_flight.lost, in_flight.refused),
        (0, 0, 0),
        "{}",
        load::problems(&before)
    );
    figure(&format!(
        "SIGTERM: slow reviews in flight at the signal: {}",
        slow_summary.line()
    ));
    assert_eq!(
        slow_summary.answered,
        slow.len(),
        "{}",
        load::problems(&slow)
    );
    assert!(!slow.is_empty());
    // After it: answered (a request already on an open connection) or refused, never lost.
    assert_eq!(
        (late.failed, late.lost),
        (0, 0),
        "{}",
        load::problems(&after)
    );
    assert!(late.refused > 0, "nothing was refused after SIGTERM");
}
