//! Certificate rotation under steady load: cert-manager renews the Secret and the kubelet
//! rewrites the mounted files while reviews keep arriving at ~300/s. No review may fail or be
//! lost, and new connections must get the new certificate within the reload interval.

use std::time::Duration;

use crate::load::{self, End, Plan, Summary};
use crate::{Webhook, figure, standard_mix, test_policies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_fails_nothing_and_new_connections_get_the_new_certificate() {
    let _serial = crate::serial().await;
    let webhook = Webhook::start(
        "rotation",
        &test_policies(),
        "failurePolicy: Fail\nevaluationTimeout: 2s",
    )
    .await;
    let client = webhook.client();
    let plan = Plan::new(300.0, Duration::from_secs(6), standard_mix());
    let rotations = [Duration::from_secs(2), Duration::from_secs(4)];
    let rotate = {
        let (dir, pki) = (webhook.dir.clone(), webhook.pki.clone());
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for (generation, at) in rotations.iter().enumerate() {
                tokio::time::sleep_until(start + *at).await;
                let (cert, key) = pki.server_cert(&format!("generation-{}", generation + 2));
                // Key first, as a writer that is not atomic would: the half-written pair is
                // refused and the old certificate stays until both files match.
                std::fs::write(dir.join("tls.key"), key).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                std::fs::write(dir.join("tls.crt"), cert).unwrap();
            }
        })
    };
    let records = load::run(&client, &plan).await;
    rotate.await.unwrap();

    let all = Summary::of(&records);
    let during = Summary::of(records.iter().filter(|r| {
        rotations.iter().any(|at| {
            r.sent + Duration::from_millis(500) >= *at && r.sent <= *at + Duration::from_secs(1)
        })
    }));
    figure(&format!("certificate rotation at 300/s: {}", all.line()));
    figure(&format!(
        "certificate rotation, p99 within 1 s of a rotation: {:.1} ms ({} requests)",
        during.p99_ms, during.sent
    ));
    assert_eq!(
        (all.failed, all.lost, all.refused),
        (0, 0, 0),
        "{}",
        load::problems(&records)
    );
    assert_eq!(all.answered, records.len());

    // Which certificate each new connection got: one generation per rotation, in order, and
    // every connection opened a second after a rotation has the newer certificate.
    let mut generations: Vec<Vec<u8>> = Vec::new();
    for record in &records {
        if let Some(cert) = &record.new_connection_cert
            && generations.last() != Some(cert)
        {
            assert!(
                !generations.contains(cert),
                "an older certificate came back at {:?}",
                record.sent
            );
            generations.push(cert.clone());
        }
    }
    assert_eq!(
        generations.len(),
        3,
        "expected the first certificate and two rotations"
    );
    for (index, at) in rotations.iter().enumerate() {
        let settled = *at + Duration::from_secs(1);
        let late_old = records
            .iter()
            .filter(|r| r.sent > settled && r.end == End::Answered)
            .find(|r| {
                r.new_connection_cert.as_ref().is_some_and(|cert| {
                    generations.iter().position(|g| g == cert) < Some(index + 1)
                })
            });
        assert!(
            late_old.is_none(),
            "a new connection got an old certificate a second after rotation {index}"
        );
    }
}
