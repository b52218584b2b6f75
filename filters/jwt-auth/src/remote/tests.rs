//! Remote JWKS across workers: three root contexts (main thread + two workers) share one
//! shared-data store, as Envoy's VMs with one `vm_id` do.

use std::time::Duration;

use meshguard_filter_core::mock::{MockHost, SharedHandle};
use meshguard_filter_core::{CallResponse, Decision, Env, Filter, Root, Stream};
use serde_json::json;

use crate::filter::{JwtAuth, JwtRoot, TICK_PERIOD};
use crate::remote::MIN_KEY_AGE;
use crate::testing::{TestKey, jwks};

const ISSUER: &str = "https://id.shop.example";

struct Workers {
    roots: Vec<(JwtRoot, MockHost)>,
}

fn config(cache_duration: &str) -> String {
    json!({
        "providers": [{"name": "shop", "issuer": ISSUER,
                       "remoteJwks": {"cluster": "idp", "uri": "http://idp.local/certs",
                                      "cacheDuration": cache_duration, "timeout": "1s"}}],
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "shop"}}]
    })
    .to_string()
}

impl Workers {
    fn start(count: usize, cache_duration: &str) -> Self {
        let shared = SharedHandle::default();
        let roots = (0..count)
            .map(|seed| {
                let mut host = MockHost::new()
                    .with_shared(shared.clone())
                    .with_seed(seed as u64 + 7);
                let root = JwtAuth::configure(
                    &mut host,
                    &Env::single("jwt-auth"),
                    config(cache_duration).as_bytes(),
                )
                .unwrap();
                assert_eq!(root.tick_period(), Some(TICK_PERIOD));
                (root, host)
            })
            .collect();
        Self { roots }
    }

    fn advance(&mut self, by: Duration) {
        for (_, host) in &mut self.roots {
            host.advance(by);
        }
    }

    fn tick(&mut self) {
        for (root, host) in &mut self.roots {
            root.on_tick(host);
        }
    }

    fn calls(&self) -> usize {
        self.roots.iter().map(|(_, host)| host.calls.len()).sum()
    }

    /// Answers every outstanding callout; returns how many.
    fn answer(&mut self, response: impl Fn() -> Option<CallResponse>) -> usize {
        let mut answered = 0;
        for (root, host) in &mut self.roots {
            let calls: Vec<u32> = host.calls.drain(..).map(|(token, _)| token).collect();
            for token in calls {
                root.on_call_response(host, token, response());
                answered += 1;
            }
        }
        answered
    }

    fn request(&mut self, worker: usize, token: &str) -> Decision {
        let (root, host) = &mut self.roots[worker];
        host.request_headers = vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/api/orders".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ];
        Stream::new(root.new_http(1)).on_request_headers(host, true)
    }

    fn metric(&mut self, name: &str) -> i64 {
        for (root, host) in &mut self.roots {
            root.flush_metrics(host);
        }
        self.roots
            .iter()
            .map(|(_, host)| host.metric(&format!("meshguard.jwt_auth.jwt-auth.{name}")))
            .sum()
    }
}

fn ok(document: String) -> impl Fn() -> Option<CallResponse> {
    move || {
        Some(CallResponse {
            headers: vec![(":status".into(), "200".into())],
            body: document.clone().into_bytes(),
        })
    }
}

fn token(key: &TestKey, now: u64) -> String {
    key.token(&json!({"iss": ISSUER, "sub": "alice", "exp": now + 3600}))
}

fn now_of(workers: &Workers) -> u64 {
    workers.roots[0]
        .1
        .now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn reason(decision: &Decision) -> String {
    match decision {
        Decision::Respond(response) => {
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            body["reason"].as_str().unwrap().to_string()
        }
        other => format!("{other:?}"),
    }
}

#[test]
fn one_fetch_per_interval_for_all_workers() {
    let mut workers = Workers::start(3, "10s");
    let rsa = TestKey::rsa_a();
    // Before any keys: a clear 401.
    let early = workers.request(1, &token(&rsa, now_of(&workers)));
    assert_eq!(reason(&early), "no_keys");
    let Decision::Respond(response) = &early else {
        unreachable!()
    };
    assert!(String::from_utf8_lossy(&response.body).contains("not available yet"));

    // The first root to tick creates the shared record; the next one takes the lease.
    workers.tick();
    assert_eq!(workers.calls(), 1, "exactly one root fetches");
    let call = workers
        .roots
        .iter()
        .flat_map(|(_, h)| &h.calls)
        .next()
        .unwrap()
        .1
        .clone();
    assert_eq!(call.cluster, "idp");
    assert!(call.headers.contains(&(":path".into(), "/certs".into())));
    assert!(
        call.headers
            .contains(&(":authority".into(), "idp.local".into()))
    );
    // While in flight, nobody else fetches.
    workers.advance(TICK_PERIOD);
    workers.tick();
    assert_eq!(workers.calls(), 1);
    assert_eq!(workers.answer(ok(jwks(&[&rsa]))), 1);
    workers.advance(TICK_PERIOD);
    workers.tick();
    for worker in 0..3 {
        assert_eq!(
            workers.request(worker, &token(&rsa, now_of(&workers))),
            Decision::Continue,
            "worker {worker}"
        );
    }
    assert_eq!(workers.metric("jwks_fetch.ok"), 1);

    // Ticks within the cache duration fetch nothing; past it, exactly one refresh.
    for _ in 0..40 {
        workers.advance(TICK_PERIOD);
        workers.tick();
    }
    assert_eq!(workers.calls(), 0, "8 s into a 10 s cache");
    for _ in 0..15 {
        workers.advance(TICK_PERIOD);
        workers.tick();
    }
    assert_eq!(workers.calls(), 1, "one refresh after 10 s");
}

#[test]
fn failures_keep_the_last_good_keys_and_back_off() {
    let mut workers = Workers::start(2, "5s");
    let rsa = TestKey::rsa_a();
    workers.tick();
    workers.advance(TICK_PERIOD);
    workers.tick();
    workers.answer(ok(jwks(&[&rsa])));
    workers.advance(Duration::from_secs(5));
    workers.tick();
    assert_eq!(workers.calls(), 1);
    // The identity provider is down: 503, then a reset, then garbage.
    let failures: Vec<Box<dyn Fn() -> Option<CallResponse>>> = vec![
        Box::new(|| {
            Some(CallResponse {
                headers: vec![(":status".into(), "503".into())],
                body: vec![],
            })
        }),
        Box::new(|| None),
        Box::new(|| {
            Some(CallResponse {
                headers: vec![(":status".into(), "200".into())],
                body: b"<html>".to_vec(),
            })
        }),
    ];
    let mut waits = Vec::new();
    for failure in failures {
        assert_eq!(workers.answer(failure), 1);
        let mut waited = 0;
        while workers.calls() == 0 && waited < 100 {
            workers.advance(TICK_PERIOD);
            workers.tick();
            waited += 1;
        }
        waits.push(waited);
        // Still serving with the last good keys.
        assert_eq!(
            workers.request(0, &token(&rsa, now_of(&workers))),
            Decision::Continue
        );
    }
    assert_eq!(workers.metric("jwks_fetch.failed"), 3);
    // 1 s, 2 s, 4 s of backoff (in 200 ms ticks).
    assert_eq!(waits, vec![5, 10, 20]);
    assert_eq!(workers.answer(ok(jwks(&[&rsa]))), 1);
    assert_eq!(workers.metric("jwks_fetch.ok"), 2);
}

#[test]
fn unknown_kid_triggers_one_early_refresh_per_interval() {
    let mut workers = Workers::start(2, "300s");
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    workers.tick();
    workers.advance(TICK_PERIOD);
    workers.tick();
    workers.answer(ok(jwks(&[&a])));
    workers.advance(TICK_PERIOD);
    workers.tick();

    // The provider rotates to key b; tokens signed with it arrive. Keys fetched a moment ago
    // are not refreshed early: the first fetch waits until they are MIN_KEY_AGE old.
    let rotated = token(&b, now_of(&workers));
    let mut ticks = 0;
    while workers.calls() == 0 && ticks < 100 {
        assert_eq!(reason(&workers.request(1, &rotated)), "unknown_kid");
        workers.advance(TICK_PERIOD);
        workers.tick();
        ticks += 1;
    }
    assert_eq!(workers.calls(), 1, "an early refresh");
    let waited = TICK_PERIOD * (ticks + 1);
    assert!(
        (MIN_KEY_AGE..MIN_KEY_AGE + 2 * TICK_PERIOD).contains(&waited),
        "refreshed {waited:?} after the fetch"
    );
    workers.answer(ok(jwks(&[&a, &b])));
    workers.advance(TICK_PERIOD);
    workers.tick();
    assert_eq!(workers.request(0, &rotated), Decision::Continue);
    assert_eq!(workers.request(1, &rotated), Decision::Continue);

    // Random kids cannot make it fetch again within the interval (the 300 s cache duration).
    let probes: Vec<String> = (0..8)
        .map(|round| {
            token(
                &TestKey::rsa_a().with_kid(&format!("random-{round}")),
                now_of(&workers),
            )
        })
        .collect();
    let mut fetched = 0;
    for round in 0..1450 {
        let probe = &probes[round % probes.len()];
        assert_eq!(reason(&workers.request(round % 2, probe)), "unknown_kid");
        workers.advance(TICK_PERIOD);
        workers.tick();
        fetched += workers.answer(ok(jwks(&[&a, &b])));
    }
    assert_eq!(fetched, 0, "290 s of unknown kids, no fetch");
    // The interval ends: the scheduled refresh, then (the flood goes on) the next early one once
    // those keys are MIN_KEY_AGE old; never one per unknown kid.
    let mut fetched_at = Vec::new();
    for round in 0..150u32 {
        workers.request(0, &probes[round as usize % probes.len()]);
        workers.advance(TICK_PERIOD);
        workers.tick();
        if workers.answer(ok(jwks(&[&a, &b]))) > 0 {
            fetched_at.push(round);
        }
    }
    assert_eq!(fetched_at.len(), 2, "{fetched_at:?}");
    let gap = TICK_PERIOD * (fetched_at[1] - fetched_at[0]);
    assert!(
        (MIN_KEY_AGE..MIN_KEY_AGE + 2 * TICK_PERIOD).contains(&gap),
        "{gap:?}"
    );
}

#[test]
fn an_abandoned_lease_expires() {
    let mut workers = Workers::start(2, "60s");
    workers.tick();
    workers.advance(TICK_PERIOD);
    workers.tick();
    assert_eq!(workers.calls(), 1);
    // The holder never hears back (its VM went away): drop the call and stop ticking it.
    let holder = workers
        .roots
        .iter()
        .position(|(_, host)| !host.calls.is_empty())
        .unwrap();
    for (_, host) in &mut workers.roots {
        host.calls.clear();
    }
    let mut ticks = 0;
    while workers.calls() == 0 && ticks < 50 {
        workers.advance(TICK_PERIOD);
        for (index, (root, host)) in workers.roots.iter_mut().enumerate() {
            if index != holder {
                root.on_tick(host);
            }
        }
        ticks += 1;
    }
    // Lease = timeout (1 s) + 1 s.
    assert!((9..=11).contains(&ticks), "took {ticks} ticks");
}

#[test]
fn a_worker_uses_keys_another_worker_fetched_before_its_own_tick() {
    let mut workers = Workers::start(2, "300s");
    let (a, b) = (TestKey::rsa_a(), TestKey::rsa_b());
    workers.tick();
    workers.answer(ok(jwks(&[&a])));
    // No tick in between: both workers serve at once.
    let now = now_of(&workers);
    assert_eq!(workers.request(0, &token(&a, now)), Decision::Continue);
    assert_eq!(workers.request(1, &token(&a, now)), Decision::Continue);
    // A rotation fetched by one worker is used by the other on its first unknown kid.
    workers.advance(Duration::from_secs(301));
    workers.tick();
    assert_eq!(workers.answer(ok(jwks(&[&a, &b]))), 1);
    let now = now_of(&workers);
    assert_eq!(workers.request(0, &token(&b, now)), Decision::Continue);
    assert_eq!(workers.request(1, &token(&b, now)), Decision::Continue);
}
