//! The request path: pick the requirement, evaluate it over per-provider outcomes (cache first,
//! then full verification), and turn the result into a decision plus the header changes.
//!
//! Host calls are kept to what the decision needs: one read of the header map (through the
//! request model, so every later stage's header reads are free), the clock, the signature
//! verifications that miss the cache, and the writes (claim headers, the token's removal, and
//! removal of spoofed copies of written headers that are actually present). The verified tokens'
//! claims are published to the later stages of the module ([`Ctx::set_identity`]).

use std::rc::Rc;

use meshguard_filter_core::request::Identity;
use meshguard_filter_core::{Ctx, Decision, HeaderMap, Host, claims};

use crate::claims::check_times;
use crate::config::{Config, KeySource, Requirement};
use crate::crypto::{HostCrypto, Path, WasmCrypto};
use crate::extract::{self, Found};
use crate::failure::Failure;
use crate::filter::Worker;
use crate::keys::KeySet;
use crate::metrics::Counter;
use crate::policy::{Evaluation, Outcome};
use crate::request::Request;
use crate::verify::verify_token;

/// Authenticates the request seen through `ctx`. The clock is read only when a token is judged
/// (public paths and preflights do not need it).
pub fn authenticate(ctx: &mut Ctx<'_>, worker: &mut Worker) -> Decision {
    let config = Rc::clone(&worker.config);
    let request = Request::read(ctx);
    let (method, path) = (request.method(), request.path());
    let preflight = config.bypass_cors_preflight
        && method == "OPTIONS"
        && request.has("origin")
        && request.has("access-control-request-method");
    // The header map is in the request model now: matching reads nothing more from the host.
    let requirement = config
        .rules
        .iter()
        .find(|rule| rule.matches(&*ctx))
        .map_or(&config.default_requirement, |rule| &rule.requirement);
    let host: &mut dyn Host = ctx;
    if preflight || *requirement == Requirement::None {
        strip_spoofed(host, &config, &request, &[]);
        worker.metrics.increment(Counter::Public);
        return Decision::Continue;
    }
    let now = host
        .now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    let mut found: Vec<Option<Found>> = vec![None; config.providers.len()];
    let (result, valid) = {
        let mut compute = |index: usize| {
            provider_outcome(host, worker, &config, &request, index, now, &mut found)
        };
        let mut evaluation = Evaluation::new(config.providers.len(), &mut compute);
        let result = evaluation.check(requirement);
        (result, evaluation.valid().collect::<Vec<_>>())
    };
    if let Err(failure) = result {
        // The request never goes upstream, so nothing needs stripping.
        worker.metrics.increment(Counter::Denied(failure.reason()));
        let realm = config.realm.clone().unwrap_or_else(|| request.url());
        return Decision::Respond(failure.response(&realm));
    }

    let written: Vec<&(String, String)> = valid
        .iter()
        .flat_map(|(_, verified)| verified.headers.iter())
        .collect();
    for (index, verified) in &valid {
        if let Some(provider) = config.providers.get(*index) {
            ctx.set_identity(Identity {
                provider: Rc::from(provider.name.as_str()),
                claims: Rc::clone(&verified.claims),
                metadata: verified.metadata.clone(),
            });
        }
    }
    let host: &mut dyn Host = ctx;
    strip_spoofed(host, &config, &request, &written);
    for (name, value) in &written {
        // Replaces every value a client may have sent under the same name.
        host.set_header(HeaderMap::Request, name, Some(value));
    }
    let metadata: Vec<&[u8]> = valid
        .iter()
        .filter_map(|(_, verified)| verified.metadata.as_deref())
        .collect();
    if let Some(bytes) = merge_metadata(&metadata) {
        host.set_property(&[claims::FILTER_STATE], &bytes);
    }
    let mut new_path: Option<String> = None;
    for (index, _) in &valid {
        if let (Some(provider), Some(Some(found))) =
            (config.providers.get(*index), found.get(*index))
            && !provider.forward
        {
            let current = new_path.as_deref().unwrap_or(path);
            if let Some(rewritten) = extract::remove(host, &request, provider, found, current) {
                new_path = Some(rewritten);
            }
        }
    }
    if let Some(new_path) = new_path {
        host.set_header(HeaderMap::Request, ":path", Some(&new_path));
    }
    worker.metrics.increment(Counter::Allowed);
    Decision::Continue
}

/// One object of every valid provider's `{"<payloadInMetadata>": <payload>}` (each already
/// encoded when its token was verified, so a cached token costs no encoding).
fn merge_metadata(entries: &[&[u8]]) -> Option<Vec<u8>> {
    meshguard_filter_core::claims::merge_objects(entries)
}

/// Removes client-sent copies of the headers this filter writes, except those about to be
/// overwritten.
fn strip_spoofed(
    host: &mut dyn Host,
    config: &Config,
    request: &Request,
    written: &[&(String, String)],
) {
    for header in &config.protected_headers {
        if request.has(header) && !written.iter().any(|(name, _)| name == header) {
            host.set_header(HeaderMap::Request, header, None);
        }
    }
}

fn provider_outcome(
    host: &mut dyn Host,
    worker: &mut Worker,
    config: &Config,
    request: &Request,
    index: usize,
    now: u64,
    found: &mut [Option<Found>],
) -> Outcome {
    let Some(provider) = config.providers.get(index) else {
        return Outcome::Missing;
    };
    let Some(location) = extract::find(request, provider) else {
        return Outcome::Missing;
    };
    let token = location.token.clone();
    if let Some(slot) = found.get_mut(index) {
        *slot = Some(location);
    }
    if let Some(keys) = worker.keys.get_mut(index)
        && keys.set.is_none()
    {
        // Another worker may have fetched the keys since this one's last tick.
        keys.sync(host);
    }
    let (set, mut generation) = match worker.keys.get(index) {
        Some(keys) => (keys.set.clone(), keys.generation),
        None => (None, 0),
    };
    if let Some(hit) = worker.cache.get(index, &token, generation) {
        let hit = hit.clone();
        worker.metrics.increment(Counter::CacheHit);
        return match check_times(provider, &hit.times, now) {
            Ok(()) => Outcome::Valid(hit),
            Err(failure) => Outcome::Invalid(failure),
        };
    }
    worker.metrics.increment(Counter::CacheMiss);
    let support = worker.support;
    let verify = |host: &mut dyn Host, set: Option<&KeySet>| {
        let max = config.max_token_bytes;
        if config.host_crypto {
            let mut crypto = HostCrypto::new(host, support);
            verify_token(provider, set, &token, max, now, &mut crypto)
        } else {
            verify_token(provider, set, &token, max, now, &mut WasmCrypto)
        }
    };
    let mut result = verify(host, set.as_deref());
    if result == Err(Failure::UnknownKid)
        && let Some(keys) = worker.keys.get_mut(index)
        && keys.sync(host)
    {
        // Another worker already fetched newer keys (a rotation): use them at once.
        generation = keys.generation;
        let newer = keys.set.clone();
        result = verify(host, newer.as_deref());
    }
    match result {
        Ok(success) => {
            worker.metrics.increment(match success.path {
                Path::Host => Counter::VerifiedOnHost,
                Path::Wasm => Counter::VerifiedInWasm,
            });
            worker
                .cache
                .insert(index, &token, generation, success.verified.clone());
            Outcome::Valid(success.verified)
        }
        Err(failure) => {
            if failure == Failure::UnknownKid
                && matches!(provider.keys, KeySource::Remote(_))
                && let Some(keys) = worker.keys.get_mut(index)
            {
                keys.wants_refresh = true;
            }
            Outcome::Invalid(failure)
        }
    }
}
