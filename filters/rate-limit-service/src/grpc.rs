//! The gRPC face: `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` on tonic, with
//! Envoy's own generated types (`envoy-types`). It only maps a decision to a gRPC answer:
//! - a decision: the `RateLimitResponse`;
//! - a malformed request: `INVALID_ARGUMENT`;
//! - a failed store (Redis down or slow): `UNKNOWN` with the reason. That is what
//!   envoyproxy/ratelimit answers too, and every RLS v3 client, Envoy's native rate-limit filter
//!   and meshguard's, resolves an error answer by its failure mode.

use std::sync::Arc;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tonic::{Request, Response, Status};

use crate::decide::{DecideError, Decider};
use crate::store::Store;

/// The RLS v3 service over a [`Decider`].
#[derive(Debug)]
pub struct Rls<S> {
    decider: Arc<Decider<S>>,
}

impl<S: Store> Rls<S> {
    /// The tonic service for `decider`.
    pub fn server(decider: Arc<Decider<S>>) -> RateLimitServiceServer<Self> {
        RateLimitServiceServer::new(Self { decider })
    }
}

#[tonic::async_trait]
impl<S: Store> RateLimitService for Rls<S> {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        match self.decider.decide(request.get_ref()).await {
            Ok(response) => Ok(Response::new(response)),
            Err(DecideError::Invalid(message)) => Err(Status::invalid_argument(message)),
            Err(DecideError::Store(err)) => {
                Err(Status::unknown(format!("no rate-limit decision: {err}")))
            }
        }
    }
}
