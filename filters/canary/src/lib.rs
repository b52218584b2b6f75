//! `canary`: sticky, monotone percentage rollouts for the mesh's services.
//!
//! An Istio VirtualService with weights 90/10 between subsets v1 and v2 picks a version per
//! request: a user flips between versions from one click to the next, and raising the weight
//! reshuffles everyone. This filter makes the choice once per user instead, and sets it in a
//! request header (`x-mesh-version` by default) that the route table matches on
//! (`istio/canary/` has the VirtualServices and DestinationRules):
//!
//! - the user's **sticky key** (a verified JWT claim in the `meshguard` pipeline, a header such
//!   as the JWT filter's user-id claim header, a cookie, or the client IP, tried in a
//!   configured order) is hashed with the service name onto
//!   a ring of 10,000 buckets by a hash that is part of the filter's contract ([`hash`]);
//! - the versions own **contiguous ranges** of the ring ([`ring`]), so raising the canary's
//!   weight only moves users into the canary, never out, and a rollback moves them back;
//! - testers may **override** the version by header or cookie, optionally only when a gate
//!   header (an internal-caller marker) is present ([`select`]);
//! - a client-sent copy of the route header is **always removed** first, so nobody routes
//!   themselves by sending it;
//! - anonymous users can be **pinned** with a cookie holding a random key ([`cookie`]).
//!
//! Layout: [`config`] (raw serde -> validated types), the pure core ([`hash`], [`ring`],
//! [`select`], [`cookie`]) and the thin shell over the host ([`filter`]).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
pub mod cookie;
pub mod filter;
pub mod hash;
pub mod ring;
pub mod select;

pub use config::{Config, parse_config};
pub use filter::{Canary, CanaryHttp, CanaryRoot};
