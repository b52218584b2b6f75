//! Every message of `meshguard-rls` against Envoy's own generated types (`envoy-types`), both
//! ways: what we encode, Envoy's types decode to the same values, and what an RLS server built on
//! Envoy's types answers (including the fields we leave out), we decode.

use envoy_types::pb::envoy::config::core::v3::HeaderValue as EnvoyHeaderValue;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    RateLimitDescriptor as EnvoyDescriptor,
    rate_limit_descriptor::{Entry as EnvoyEntry, RateLimitOverride as EnvoyOverride},
};
use envoy_types::pb::envoy::service::ratelimit::v3::{
    RateLimitRequest as EnvoyRequest, RateLimitResponse as EnvoyResponse,
    rate_limit_response::{
        Code as EnvoyCode, DescriptorStatus as EnvoyStatus, Quota, RateLimit as EnvoyRateLimit,
        rate_limit::Unit as EnvoyUnit,
    },
};
use envoy_types::pb::google::protobuf::{
    Duration as EnvoyDuration, Struct, UInt64Value as EnvoyUInt64,
};
use meshguard_rls::{
    Code, DescriptorStatus, Duration, Entry, HeaderValue, Message, RateLimit, RateLimitDescriptor,
    RateLimitOverride, RateLimitRequest, RateLimitResponse, UInt64Value, Unit,
};

fn requests() -> Vec<RateLimitRequest> {
    let mut full = RateLimitRequest::new("commerce-edge")
        .descriptor([("generic_key", "flash-sale")])
        .descriptor([("user", "alice@example.com"), ("path", "/api/orders/ü/€")]);
    full.hits_addend = 7;
    full.descriptors.push(RateLimitDescriptor {
        entries: vec![Entry {
            key: "remote_address".into(),
            value: "2001:db8::1".into(),
        }],
        limit: Some(RateLimitOverride {
            requests_per_unit: 42,
            unit: Unit::Week as i32,
        }),
        hits_addend: Some(UInt64Value { value: 3 }),
        is_negative_hits: true,
    });
    let mut zero = RateLimitRequest::new("");
    zero.hits_addend = 0;
    vec![
        full,
        zero,
        RateLimitRequest::new("d").descriptor([("k", "")]),
        RateLimitRequest::new("d").descriptor([("", "v"); 40]),
    ]
}

#[test]
fn envoy_decodes_our_requests_to_the_same_values() {
    for ours in requests() {
        let bytes = ours.encode_to_vec();
        let theirs = EnvoyRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(theirs.domain, ours.domain);
        assert_eq!(theirs.hits_addend, ours.hits_addend);
        assert_eq!(theirs.descriptors.len(), ours.descriptors.len());
        for (theirs, ours) in theirs.descriptors.iter().zip(&ours.descriptors) {
            let entries: Vec<(&str, &str)> = theirs
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect();
            let expected: Vec<(&str, &str)> = ours
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect();
            assert_eq!(entries, expected);
            assert_eq!(
                theirs.limit.map(|l| (l.requests_per_unit, l.unit)),
                ours.limit.map(|l| (l.requests_per_unit, l.unit))
            );
            assert_eq!(
                theirs.hits_addend.map(|h| h.value),
                ours.hits_addend.map(|h| h.value)
            );
            assert_eq!(theirs.is_negative_hits, ours.is_negative_hits);
        }
        // And back: Envoy's encoding decodes to ours unchanged.
        assert_eq!(
            RateLimitRequest::decode(theirs.encode_to_vec().as_slice()).unwrap(),
            ours
        );
    }
}

#[test]
fn we_decode_what_an_envoy_typed_server_answers() {
    let theirs = EnvoyResponse {
        overall_code: EnvoyCode::OverLimit as i32,
        statuses: vec![
            EnvoyStatus {
                code: EnvoyCode::Ok as i32,
                current_limit: Some(EnvoyRateLimit {
                    name: "per-user".into(),
                    requests_per_unit: 20,
                    unit: EnvoyUnit::Minute as i32,
                }),
                limit_remaining: 19,
                duration_until_reset: Some(EnvoyDuration {
                    seconds: 3,
                    nanos: 250_000_000,
                }),
                quota: None,
            },
            EnvoyStatus {
                code: EnvoyCode::OverLimit as i32,
                current_limit: Some(EnvoyRateLimit {
                    name: String::new(),
                    requests_per_unit: 1,
                    unit: EnvoyUnit::Year as i32,
                }),
                limit_remaining: 0,
                duration_until_reset: Some(EnvoyDuration {
                    seconds: 31_535_999,
                    nanos: 1,
                }),
                quota: Some(Quota {
                    requests: 5,
                    id: "q".into(),
                    expiration_specifier: None,
                }),
            },
            EnvoyStatus::default(),
        ],
        response_headers_to_add: vec![EnvoyHeaderValue {
            key: "x-ratelimit-limit".into(),
            value: "20, 20;w=60".into(),
            raw_value: Vec::new(),
        }],
        request_headers_to_add: vec![EnvoyHeaderValue {
            key: "x-raw".into(),
            value: String::new(),
            raw_value: b"\xff\x00bytes".to_vec(),
        }],
        // Fields this crate leaves out are skipped, not an error.
        raw_body: b"over the limit".to_vec(),
        dynamic_metadata: Some(Struct::default()),
        quota: Some(Quota::default()),
    };
    let ours = RateLimitResponse::decode(theirs.encode_to_vec().as_slice()).unwrap();
    assert_eq!(ours.overall_code(), Code::OverLimit);
    assert_eq!(ours.statuses.len(), 3);
    let first = &ours.statuses[0];
    assert_eq!(first.code(), Code::Ok);
    assert_eq!(
        first.current_limit,
        Some(RateLimit {
            name: "per-user".into(),
            requests_per_unit: 20,
            unit: Unit::Minute as i32
        })
    );
    assert_eq!(first.limit_remaining, 19);
    assert_eq!(
        first.duration_until_reset,
        Some(Duration {
            seconds: 3,
            nanos: 250_000_000
        })
    );
    assert_eq!(ours.statuses[1].code(), Code::OverLimit);
    assert_eq!(
        ours.statuses[1].current_limit.as_ref().map(|l| l.unit),
        Some(Unit::Year as i32)
    );
    assert_eq!(ours.statuses[2], DescriptorStatus::default());
    assert_eq!(
        ours.response_headers_to_add,
        vec![HeaderValue {
            key: "x-ratelimit-limit".into(),
            value: "20, 20;w=60".into(),
            raw_value: Vec::new()
        }]
    );
    assert_eq!(ours.request_headers_to_add[0].raw_value, b"\xff\x00bytes");
    assert_eq!(
        ours.retry_after(),
        Some(std::time::Duration::new(31_535_999, 1))
    );
}

#[test]
fn envoy_decodes_our_responses() {
    let ours = RateLimitResponse {
        overall_code: Code::Ok as i32,
        statuses: vec![DescriptorStatus {
            code: Code::Ok as i32,
            current_limit: Some(RateLimit {
                name: "n".into(),
                requests_per_unit: 100,
                unit: Unit::Hour as i32,
            }),
            limit_remaining: u32::MAX,
            duration_until_reset: Some(Duration::from_std(std::time::Duration::from_micros(
                1_000_001,
            ))),
        }],
        ..Default::default()
    };
    let theirs = EnvoyResponse::decode(ours.encode_to_vec().as_slice()).unwrap();
    assert_eq!(theirs.overall_code, EnvoyCode::Ok as i32);
    let status = &theirs.statuses[0];
    assert_eq!(status.limit_remaining, u32::MAX);
    assert_eq!(
        status
            .current_limit
            .as_ref()
            .map(|l| (l.name.as_str(), l.requests_per_unit, l.unit)),
        Some(("n", 100, EnvoyUnit::Hour as i32))
    );
    assert_eq!(
        status.duration_until_reset,
        Some(EnvoyDuration {
            seconds: 1,
            nanos: 1_000
        })
    );
}

#[test]
fn units_are_numbered_as_envoys_two_unit_enums() {
    use envoy_types::pb::envoy::r#type::v3::RateLimitUnit;
    for unit in [
        Unit::Unknown,
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Week,
        Unit::Month,
        Unit::Year,
    ] {
        let response_unit = EnvoyUnit::try_from(unit as i32).unwrap();
        assert_eq!(
            response_unit.as_str_name().to_ascii_lowercase(),
            unit.name(),
            "{unit:?}"
        );
        // Overrides (`envoy.type.v3.RateLimitUnit`) have every unit but the week.
        match RateLimitUnit::try_from(unit as i32) {
            Ok(override_unit) => assert_eq!(
                override_unit.as_str_name().to_ascii_lowercase(),
                unit.name(),
                "{unit:?}"
            ),
            Err(_) => assert_eq!(unit, Unit::Week),
        }
    }
    // The override message, too: our RateLimitOverride against Envoy's.
    let theirs = EnvoyDescriptor {
        entries: vec![EnvoyEntry {
            key: "k".into(),
            value: "v".into(),
        }],
        limit: Some(EnvoyOverride {
            requests_per_unit: 9,
            unit: RateLimitUnit::Month as i32,
        }),
        hits_addend: Some(EnvoyUInt64 { value: 0 }),
        is_negative_hits: false,
    };
    let ours = RateLimitDescriptor::decode(theirs.encode_to_vec().as_slice()).unwrap();
    assert_eq!(ours.limit.map(|l| l.unit), Some(Unit::Month as i32));
    assert_eq!(ours.hits_addend, Some(UInt64Value { value: 0 }));
}
