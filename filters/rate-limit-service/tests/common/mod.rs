//! Shared by the service's integration tests: a Redis and the service binary started from a
//! configuration text, and an RLS v3 client built on Envoy's own types.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    RateLimitDescriptor, rate_limit_descriptor::Entry,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use meshguard_testkit::{RateLimitService, Redis};
use tonic::transport::Channel;

/// The binary cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_meshguard-rate-limit-service");

/// A folder under target/ for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = meshguard_testkit::paths::target_dir()
        .join("rls-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` as `dir/ratelimit.yaml` and returns the path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("ratelimit.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the service on `config` against `redis`.
pub fn service(config: &Path, redis: &Redis, extra: &[&str]) -> RateLimitService {
    RateLimitService::start(Path::new(BINARY), config, &redis.url(), extra).unwrap()
}

/// A runtime for the client whose worker keeps its connections alive (answering HTTP/2 pings
/// and GOAWAY) while the test thread blocks, as a real client would.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// An RLS v3 client of `service`.
pub async fn client(service: &RateLimitService) -> RateLimitServiceClient<Channel> {
    let channel = Channel::from_shared(service.grpc_url())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    RateLimitServiceClient::new(channel)
}

/// A request in `domain` with one descriptor per entry list.
pub fn request(domain: &str, descriptors: &[&[(&str, &str)]]) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.into(),
        descriptors: descriptors
            .iter()
            .map(|entries| RateLimitDescriptor {
                entries: entries
                    .iter()
                    .map(|(key, value)| Entry {
                        key: key.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        hits_addend: 0,
    }
}

/// Sends `request`; the answer or the gRPC status.
pub async fn ask(
    client: &mut RateLimitServiceClient<Channel>,
    request: &RateLimitRequest,
) -> Result<RateLimitResponse, tonic::Status> {
    client
        .should_rate_limit(request.clone())
        .await
        .map(tonic::Response::into_inner)
}

/// The overall code of each of `count` sends of `request`.
pub async fn overall_codes(
    client: &mut RateLimitServiceClient<Channel>,
    request: &RateLimitRequest,
    count: usize,
) -> Vec<i32> {
    let mut codes = Vec::new();
    for _ in 0..count {
        codes.push(ask(client, request).await.unwrap().overall_code);
    }
    codes
}

/// `OK` and `OVER_LIMIT` as numbers.
pub const OK: i32 = 1;
/// `OVER_LIMIT`.
pub const OVER: i32 = 2;
