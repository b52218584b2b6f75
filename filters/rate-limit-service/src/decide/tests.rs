//! The decision logic over the reference store (the script's semantics in plain Rust, with a
//! clock the test moves). The script itself is checked against the same reference in real Redis
//! (`store/tests.rs`).

use std::sync::atomic::Ordering;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::google::protobuf::UInt64Value;

use super::*;
use crate::store::reference::ReferenceStore;

const START: u64 = 1_765_000_000_000_000;

const CONFIG: &str = "domain: edge
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: path
    value: /checkout
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: path
    value: /shadow
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: path
    value: /free
    rate_limit: {unlimited: true}
  - key: path
    value: /closed
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: tenant
    value: gold
    descriptors:
      - key: user
        rate_limit: {name: gold-user, unit: hour, requests_per_unit: 10}
  - key: promo
    rate_limit:
      unit: hour
      requests_per_unit: 100
      replaces: [{name: gold-user}]
";

fn decider() -> Decider<ReferenceStore> {
    let config = Config::from_text("edge.yaml", CONFIG).unwrap();
    Decider::new(
        Arc::new(ConfigHandle::new(config)),
        ReferenceStore::at(START),
        Arc::new(Metrics::new()),
        "test:",
    )
}

fn request(descriptors: &[&[(&str, &str)]]) -> RateLimitRequest {
    RateLimitRequest {
        domain: "edge".into(),
        descriptors: descriptors
            .iter()
            .map(|entries| RateLimitDescriptor {
                entries: entries
                    .iter()
                    .map(|(k, v)| Entry {
                        key: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        hits_addend: 0,
    }
}

async fn codes(decider: &Decider<ReferenceStore>, request: &RateLimitRequest) -> Vec<i32> {
    let response = decider.decide(request).await.unwrap();
    std::iter::once(response.overall_code)
        .chain(response.statuses.iter().map(|s| s.code))
        .collect()
}

const OK: i32 = Code::Ok as i32;
const OVER: i32 = Code::OverLimit as i32;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn exact_counts_and_a_second_key_with_its_own_budget() {
    block_on(async {
        let d = decider();
        let alice = request(&[&[("user", "alice")]]);
        for expected_remaining in [2, 1, 0] {
            let response = d.decide(&alice).await.unwrap();
            assert_eq!(response.overall_code, OK);
            let status = &response.statuses[0];
            assert_eq!(status.limit_remaining, expected_remaining);
            assert_eq!(
                status.current_limit,
                Some(RateLimit {
                    name: String::new(),
                    requests_per_unit: 3,
                    unit: Unit::Hour as i32
                })
            );
        }
        let refused = d.decide(&alice).await.unwrap();
        assert_eq!(refused.overall_code, OVER);
        assert_eq!(refused.statuses[0].limit_remaining, 0);
        // The next request fits after one emission interval: 20 minutes.
        assert_eq!(
            refused.statuses[0].duration_until_reset,
            Some(ProtoDuration {
                seconds: 1_200,
                nanos: 0
            })
        );
        // Bob has his own three.
        let bob = request(&[&[("user", "bob")]]);
        for _ in 0..3 {
            assert_eq!(codes(&d, &bob).await, vec![OK, OK]);
        }
        assert_eq!(codes(&d, &bob).await, vec![OVER, OVER]);
        // Twenty minutes later Alice has one more, and only one.
        d.store.now.fetch_add(1_200_000_000, Ordering::SeqCst);
        assert_eq!(codes(&d, &alice).await, vec![OK, OK]);
        assert_eq!(codes(&d, &alice).await, vec![OVER, OVER]);
    });
}

#[test]
fn a_request_is_charged_on_all_its_limits_or_on_none() {
    block_on(async {
        let d = decider();
        let both = request(&[&[("user", "carol")], &[("path", "/checkout")]]);
        assert_eq!(codes(&d, &both).await, vec![OK, OK, OK]);
        assert_eq!(codes(&d, &both).await, vec![OK, OK, OK]);
        // /checkout is spent (2 per minute): the request is refused and carol is not charged.
        assert_eq!(codes(&d, &both).await, vec![OVER, OK, OVER]);
        assert_eq!(codes(&d, &both).await, vec![OVER, OK, OVER]);
        let carol = d.decide(&request(&[&[("user", "carol")]])).await.unwrap();
        assert_eq!(carol.statuses[0].limit_remaining, 0, "third of three");
        assert_eq!(carol.overall_code, OK);
    });
}

#[test]
fn shadow_limits_decide_but_always_answer_ok() {
    block_on(async {
        let d = decider();
        let shadow = request(&[&[("path", "/shadow")]]);
        for _ in 0..4 {
            assert_eq!(codes(&d, &shadow).await, vec![OK, OK]);
        }
        let text = d.metrics.encode().unwrap();
        assert!(
            text.contains(
                "meshguard_rls_rule_hits_total{domain=\"edge\",rule=\"path_/shadow\",result=\"shadow_mode\"} 3"
            ),
            "{text}"
        );
    });
}

#[test]
fn unlimited_unmatched_and_unknown_domains_answer_ok_without_redis() {
    block_on(async {
        let d = decider();
        d.store.down.store(true, Ordering::SeqCst);
        let response = d
            .decide(&request(&[&[("path", "/free")], &[("nothing", "x")]]))
            .await
            .unwrap();
        assert_eq!(response.overall_code, OK);
        assert_eq!(response.statuses[0].limit_remaining, u32::MAX);
        assert_eq!(response.statuses[1], ok_status());
        let mut other = request(&[&[("user", "alice")]]);
        other.domain = "elsewhere".into();
        assert_eq!(codes(&d, &other).await, vec![OK, OK]);
        let text = d.metrics.encode().unwrap();
        assert!(text.contains("meshguard_rls_requests_total{domain=\"unknown\",code=\"ok\"} 1"));
    });
}

#[test]
fn a_zero_limit_refuses_everything() {
    block_on(async {
        let d = decider();
        let response = d.decide(&request(&[&[("path", "/closed")]])).await.unwrap();
        assert_eq!(response.overall_code, OVER);
        assert_eq!(response.statuses[0].duration_until_reset, None);
    });
}

#[test]
fn store_failures_are_errors_never_answers() {
    block_on(async {
        let d = decider();
        d.store.down.store(true, Ordering::SeqCst);
        let err = d
            .decide(&request(&[&[("user", "alice")]]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DecideError::Store(StoreError::Unavailable(_))),
            "{err}"
        );
        let text = d.metrics.encode().unwrap();
        assert!(text.contains("meshguard_rls_redis_errors_total{kind=\"unavailable\"} 1"));
        assert!(text.contains("meshguard_rls_requests_total{domain=\"edge\",code=\"error\"} 1"));
        assert!(text.contains("meshguard_rls_redis_up 0"));
        // Back up: counting resumes where it was.
        d.store.down.store(false, Ordering::SeqCst);
        assert_eq!(
            codes(&d, &request(&[&[("user", "alice")]])).await,
            vec![OK, OK]
        );
    });
}

#[test]
fn malformed_requests_are_invalid() {
    block_on(async {
        let d = decider();
        let mut no_domain = request(&[&[("user", "a")]]);
        no_domain.domain.clear();
        assert!(matches!(
            d.decide(&no_domain).await,
            Err(DecideError::Invalid(_))
        ));
        assert!(matches!(
            d.decide(&request(&[])).await,
            Err(DecideError::Invalid(_))
        ));
        let mut bad_unit = request(&[&[("user", "a")]]);
        bad_unit.descriptors[0].limit = Some(RateLimitOverride {
            requests_per_unit: 1,
            unit: 0,
        });
        let err = d.decide(&bad_unit).await.unwrap_err().to_string();
        assert_eq!(err, "descriptors[0].limit.unit 0 is not a known unit");
    });
}

#[test]
fn hits_addend_overrides_and_refunds() {
    block_on(async {
        let d = decider();
        let mut three = request(&[&[("user", "dave")]]);
        three.hits_addend = 3;
        assert_eq!(codes(&d, &three).await, vec![OK, OK]);
        assert_eq!(
            codes(&d, &request(&[&[("user", "dave")]])).await,
            vec![OVER, OVER]
        );
        // A peek (descriptor hits_addend 0) reports without charging.
        let mut peek = request(&[&[("user", "dave")]]);
        peek.descriptors[0].hits_addend = Some(UInt64Value { value: 0 });
        let response = d.decide(&peek).await.unwrap();
        assert_eq!(
            (response.overall_code, response.statuses[0].limit_remaining),
            (OK, 0)
        );
        // Giving two back makes room for two.
        let mut refund = request(&[&[("user", "dave")]]);
        refund.descriptors[0].hits_addend = Some(UInt64Value { value: 2 });
        refund.descriptors[0].is_negative_hits = true;
        assert_eq!(codes(&d, &refund).await, vec![OK, OK]);
        let one = request(&[&[("user", "dave")]]);
        assert_eq!(codes(&d, &one).await, vec![OK, OK]);
        assert_eq!(codes(&d, &one).await, vec![OK, OK]);
        assert_eq!(codes(&d, &one).await, vec![OVER, OVER]);
        // More hits than the burst can never fit, and say no wait.
        let mut many = request(&[&[("user", "erin")]]);
        many.hits_addend = 4;
        let response = d.decide(&many).await.unwrap();
        assert_eq!(response.overall_code, OVER);
        assert_eq!(response.statuses[0].duration_until_reset, None);
    });
}

#[test]
fn overrides_and_replaces() {
    block_on(async {
        let d = decider();
        let mut overridden = request(&[&[("user", "frank")]]);
        overridden.descriptors[0].limit = Some(RateLimitOverride {
            requests_per_unit: 1,
            unit: Unit::Day as i32,
        });
        assert_eq!(codes(&d, &overridden).await, vec![OK, OK]);
        assert_eq!(codes(&d, &overridden).await, vec![OVER, OVER]);
        // gold-user (10/hour) is replaced by the promo limit when both match.
        let gold = [("tenant", "gold"), ("user", "gina")];
        let both = request(&[&gold, &[("promo", "spring")]]);
        let response = d.decide(&both).await.unwrap();
        assert_eq!(response.statuses[0], ok_status(), "replaced: no limit");
        assert_eq!(
            response.statuses[1]
                .current_limit
                .as_ref()
                .map(|l| l.requests_per_unit),
            Some(100)
        );
    });
}

#[test]
fn log_every_holds_back_and_counts() {
    let log = LogEvery::new(Duration::from_secs(3600));
    assert_eq!(log.check(), Some(0));
    assert_eq!(log.check(), None);
    assert_eq!(log.check(), None);
    let quick = LogEvery::new(Duration::ZERO);
    assert_eq!(quick.check(), Some(0));
    assert_eq!(quick.check(), Some(0));
}
