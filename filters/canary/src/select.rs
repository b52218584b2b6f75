//! The decision: which service a request belongs to, and which version serves it.
//!
//! Pure: request facts come through the small [`Facts`] trait (looked up lazily, so a request
//! that finds its sticky header never reads cookies) and randomness is a parameter. The order
//! of precedence for a matched service:
//!
//! 1. an **override** (header first, then cookie) naming a known version, if the service allows
//!    overrides and, when `onlyWithHeader` is set, the gate header is present (with its value);
//!    an override that is present but not permitted, or names no version, is ignored and
//!    reported as denied;
//! 2. the first non-empty **sticky key** source, hashed onto the ring;
//! 3. the **pin cookie**, if configured: an existing pin is used as the key, otherwise a fresh
//!    random pin is drawn (and the filter sets it on the response);
//! 4. otherwise the service's `unkeyedVersion`, or a weighted random bucket for this request.

use meshguard_filter_core::request::ClaimPath;
use meshguard_filter_core::route::RequestFacts;

use crate::config::{Config, Overrides, PinCookie, Service};
use crate::cookie::{is_pin_value, pin_value};
use crate::hash::{bucket, to_bucket};

/// What the decision may read about the request.
pub trait Facts {
    /// A request header by lowercase name (first value).
    fn header(&mut self, name: &str) -> Option<String>;
    /// A cookie by name.
    fn cookie(&mut self, name: &str) -> Option<String>;
    /// A verified claim (never a client-sent header).
    fn claim(&mut self, path: &ClaimPath) -> Option<String>;
    /// The downstream client's IP address, without port.
    fn client_ip(&mut self) -> Option<String>;
    /// 64 random bits (for a fresh pin or an unkeyed pick); drawn at most once per decision.
    fn random(&mut self) -> u64;
}

/// The chosen version and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index of the version in the service's ring.
    pub version: usize,
    /// Which rule chose it.
    pub via: Via,
    /// An override was present but not honoured (gate missing, or no such version).
    pub override_denied: bool,
}

/// Which rule chose the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A tester override.
    Override,
    /// The sticky key from source number `.0` of `stickyKey`.
    Sticky(usize),
    /// The pin cookie the client already had.
    Pin,
    /// A pin drawn for this request; the response must set it.
    NewPin(String),
    /// No key at all: `unkeyedVersion` or a random bucket.
    Unkeyed,
}

/// The first service matching the request (with its index), by its route match.
pub fn find_service<'c>(
    config: &'c Config,
    request: &dyn RequestFacts,
) -> Option<(usize, &'c Service)> {
    config
        .services
        .iter()
        .enumerate()
        .find(|(_, service)| service.matcher.matches(request))
}

/// Chooses the version of `service` for a request.
pub fn select(service: &Service, pin: Option<&PinCookie>, facts: &mut dyn Facts) -> Selection {
    let mut override_denied = false;
    if let Some(overrides) = &service.overrides {
        match override_version(service, overrides, facts) {
            Override::Absent => {}
            Override::Denied => override_denied = true,
            Override::Version(version) => {
                return Selection {
                    version,
                    via: Via::Override,
                    override_denied,
                };
            }
        }
    }
    let choose = |key: &[u8], via: Via| Selection {
        version: service.ring.version_at(bucket(&service.name, key)),
        via,
        override_denied,
    };
    for (index, source) in service.sticky.iter().enumerate() {
        let key = match source {
            crate::config::KeySource::Header(name) => facts.header(name),
            crate::config::KeySource::Cookie(name) => facts.cookie(name),
            crate::config::KeySource::Claim(path) => facts.claim(path),
            crate::config::KeySource::ClientIp => facts.client_ip(),
        };
        if let Some(key) = key.filter(|key| !key.is_empty()) {
            return choose(key.as_bytes(), Via::Sticky(index));
        }
    }
    if let Some(pin) = pin {
        return match facts.cookie(&pin.name).filter(|value| is_pin_value(value)) {
            Some(value) => choose(value.as_bytes(), Via::Pin),
            None => {
                let value = pin_value(facts.random());
                choose(value.as_bytes(), Via::NewPin(value.clone()))
            }
        };
    }
    let version = match service.unkeyed_version {
        Some(version) => version,
        None => service.ring.version_at(to_bucket(facts.random())),
    };
    Selection {
        version,
        via: Via::Unkeyed,
        override_denied,
    }
}

enum Override {
    Absent,
    Denied,
    Version(usize),
}

fn override_version(service: &Service, overrides: &Overrides, facts: &mut dyn Facts) -> Override {
    let requested = overrides
        .header
        .as_deref()
        .and_then(|name| facts.header(name))
        .filter(|value| !value.is_empty())
        .or_else(|| {
            overrides
                .cookie
                .as_deref()
                .and_then(|name| facts.cookie(name))
                .filter(|value| !value.is_empty())
        });
    let Some(requested) = requested else {
        return Override::Absent;
    };
    if let Some(gate) = &overrides.only_with_header {
        let open = facts
            .header(&gate.name)
            .is_some_and(|value| gate.value.as_ref().is_none_or(|want| *want == value));
        if !open {
            return Override::Denied;
        }
    }
    match service.ring.find(requested.trim()) {
        Some(version) => Override::Version(version),
        None => Override::Denied,
    }
}

#[cfg(test)]
mod tests;
