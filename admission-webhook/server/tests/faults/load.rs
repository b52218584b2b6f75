//! A paced load of AdmissionReviews, like the API server's: kept-alive TLS connections from a
//! pool (and a share of new connections), each review with its own uid, each answer checked.
//!
//! Every request ends in one of four ways: **answered** (HTTP 200, the AdmissionReview for its
//! uid, with the verdict the review expects), **failed** (an answer, but not that one: another
//! status, another verdict, the failure policy), **refused** (no connection, or the connection
//! closed before anything was sent back: what a client sees from a server that has stopped
//! accepting) or **lost** (no answer within the client's timeout, or the connection broke while
//! the request was being served). Sent = answered + failed + refused + lost.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshguard_admission_webhook::client::{Connection, TlsClient};
use serde_json::{Value as Json, json};

/// What a review's answer must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Allowed, with exactly these warnings.
    Allowed(Vec<String>),
    /// Denied with this status code, its message containing the text.
    Denied(u16, String),
    /// Any one of these.
    OneOf(Vec<Expect>),
}

/// One kind of review in the mix.
#[derive(Debug, Clone)]
pub struct Kind {
    /// The AdmissionReview (its uid is replaced per request).
    pub review: Json,
    /// The answer it must get.
    pub expect: Expect,
    /// Label for the figures.
    pub label: &'static str,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The expected answer.
    Answered,
    /// Another answer (the text says what).
    Failed(String),
    /// Not accepted (connection refused, or closed before any response).
    Refused(String),
    /// No answer.
    Lost(String),
}

/// One request's record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Index in the plan.
    pub index: usize,
    /// Which kind of review.
    pub label: &'static str,
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    /// How long the answer took (or the failure).
    pub latency: Duration,
    /// How it ended.
    pub end: End,
    /// The certificate the connection was served with (DER), for new connections.
    pub new_connection_cert: Option<Vec<u8>>,
    /// The raw answer (for checks beyond the expectation).
    pub answer: Json,
}

/// A load: `rate` reviews per second for `duration`, cycling through `mix` by weight.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Reviews per second.
    pub rate: f64,
    /// How long.
    pub duration: Duration,
    /// Kinds with their weights.
    pub mix: Vec<(Kind, usize)>,
    /// Kept-alive connections at most.
    pub connections: usize,
    /// Every n-th request opens a new connection (0: never beyond the pool).
    pub new_connection_every: usize,
    /// Client-side timeout per request.
    pub timeout: Duration,
}

impl Plan {
    /// `rate`/s for `duration` over `mix`, 8 connections, every 4th request on a new one.
    pub fn new(rate: f64, duration: Duration, mix: Vec<(Kind, usize)>) -> Self {
        Self {
            rate,
            duration,
            mix,
            connections: 8,
            new_connection_every: 4,
            timeout: Duration::from_secs(15),
        }
    }
}

/// Runs the plan against `client`; returns every request's record, in plan order.
pub async fn run(client: &TlsClient, plan: &Plan) -> Vec<Record> {
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as usize;
    let kinds: Vec<&Kind> = plan
        .mix
        .iter()
        .flat_map(|(kind, weight)| std::iter::repeat_n(kind, *weight))
        .collect();
    // First in, first out: every pooled connection is used in turn, so none sits idle long
    // enough for the server's idle timeout.
    let pool: Arc<Mutex<VecDeque<Connection>>> = Arc::new(Mutex::new(VecDeque::new()));
    let records = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for index in 0..total {
        let at = start + Duration::from_secs_f64(index as f64 / plan.rate);
        tokio::time::sleep_until(at.into()).await;
        let kind = kinds[index % kinds.len()].clone();
        let fresh = plan.new_connection_every > 0 && index % plan.new_connection_every == 0;
        let (client, pool, records) = (client.clone(), pool.clone(), records.clone());
        let (connections, timeout) = (plan.connections, plan.timeout);
        tasks.push(tokio::spawn(async move {
            let sent = start.elapsed();
            let began = Instant::now();
            let (end, cert, answer) = tokio::time::timeout(
                timeout,
                one(&client, &pool, &kind, index, fresh, connections),
            )
            .await
            .unwrap_or_else(|_| {
                (
                    End::Lost("no answer within the client timeout".into()),
                    None,
                    Json::Null,
                )
            });
            records.lock().unwrap().push(Record {
                index,
                label: kind.label,
                sent,
                latency: began.elapsed(),
                end,
                new_connection_cert: cert,
                answer,
            });
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut records = Arc::try_unwrap(records).unwrap().into_inner().unwrap();
    records.sort_by_key(|r| r.index);
    records
}

async fn one(
    client: &TlsClient,
    pool: &Mutex<VecDeque<Connection>>,
    kind: &Kind,
    index: usize,
    fresh: bool,
    connections: usize,
) -> (End, Option<Vec<u8>>, Json) {
    let pooled = if fresh {
        None
    } else {
        pool.lock().unwrap().pop_front()
    };
    let (mut conn, new_cert) = match pooled {
        Some(conn) => (conn, None),
        None => match client.connect().await {
            Ok(conn) => {
                let cert = conn.peer_certificate().to_vec();
                (conn, Some(cert))
            }
            Err(err) => return (End::Refused(format!("connect: {err:#}")), None, Json::Null),
        },
    };
    let uid = format!("00000000-fau1-7000-8000-{index:012}");
    let mut review = kind.review.clone();
    review["request"]["uid"] = json!(uid);
    let reply = match conn
        .post("/validate", serde_json::to_vec(&review).unwrap())
        .await
    {
        Ok(reply) => reply,
        Err(err) => {
            let text = format!("{err:#}");
            // hyper: the server closed the connection before it sent anything back (it answers
            // every request whose headers it has read, so this one was never taken up).
            let end = if text.contains("connection closed before message completed")
                || text.contains("channel closed")
                || text.contains("canceled: connection closed")
            {
                End::Refused(text)
            } else {
                End::Lost(text)
            };
            return (end, new_cert, Json::Null);
        }
    };
    {
        let mut pool = pool.lock().unwrap();
        if pool.len() < connections {
            pool.push_back(conn);
        }
    }
    let answer = reply.json().unwrap_or(Json::Null);
    let end = judge(reply.status, &answer, &uid, &kind.expect);
    (end, new_cert, answer)
}

fn judge(status: u16, answer: &Json, uid: &str, expect: &Expect) -> End {
    if let Expect::OneOf(choices) = expect {
        return choices
            .iter()
            .map(|choice| judge(status, answer, uid, choice))
            .find(|end| *end == End::Answered)
            .unwrap_or_else(|| End::Failed(format!("none of the expected answers: {answer}")));
    }
    if status != 200 {
        return End::Failed(format!("HTTP {status}: {answer}"));
    }
    let response = &answer["response"];
    if response["uid"] != json!(uid) {
        return End::Failed(format!(
            "answer for uid {} instead of {uid}",
            response["uid"]
        ));
    }
    let warnings: Vec<String> = response["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match expect {
        Expect::Allowed(expected)
            if response["allowed"] == json!(true) && &warnings == expected =>
        {
            End::Answered
        }
        Expect::Denied(code, text)
            if response["allowed"] == json!(false)
                && response["status"]["code"] == json!(code)
                && response["status"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text.as_str())) =>
        {
            End::Answered
        }
        Expect::Denied(..) | Expect::Allowed(_) | Expect::OneOf(_) => {
            End::Failed(format!("unexpected answer: {response}"))
        }
    }
}

/// Counts and latency percentiles of some records.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub sent: usize,
    pub answered: usize,
    pub failed: usize,
    pub refused: usize,
    pub lost: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// Summarises the records `keep` selects; latency over answered and failed requests.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut summary = Summary::default();
        let mut latencies = Vec::new();
        for record in records {
            summary.sent += 1;
            match record.end {
                End::Answered => summary.answered += 1,
                End::Failed(_) => summary.failed += 1,
                End::Refused(_) => summary.refused += 1,
                End::Lost(_) => summary.lost += 1,
            }
            if matches!(record.end, End::Answered | End::Failed(_)) {
                latencies.push(record.latency.as_secs_f64() * 1000.0);
            }
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0.0)
        };
        summary.p50_ms = at(0.50);
        summary.p99_ms = at(0.99);
        summary.max_ms = latencies.last().copied().unwrap_or(0.0);
        summary
    }

    /// `sent N, answered N, failed N, refused N, lost N, p50 X ms, p99 Y ms, max Z ms`.
    pub fn line(&self) -> String {
        format!(
            "sent {}, answered {}, failed {}, refused {}, lost {}; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.sent,
            self.answered,
            self.failed,
            self.refused,
            self.lost,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

/// The first few records that did not end as expected, for an assertion message.
pub fn problems(records: &[Record]) -> String {
    records
        .iter()
        .filter(|r| r.end != End::Answered)
        .take(8)
        .map(|r| format!("#{} {} at {:?}: {:?}", r.index, r.label, r.sent, r.end))
        .collect::<Vec<_>>()
        .join("\n")
}
