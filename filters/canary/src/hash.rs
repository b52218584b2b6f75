//! The stable hash that places a (service, sticky key) pair on the ring of buckets.
//!
//! Users keep their version only if every release of the filter, on every Envoy worker and every
//! proxy in the mesh, computes the same bucket for the same key. That rules out `std`'s
//! `DefaultHasher` (SipHash with an unspecified algorithm and, through `RandomState`, random
//! keys) and any crate whose output may change between versions. The hash is therefore written
//! out here and pinned by golden tests; **changing it reshuffles every user and is a breaking
//! change of the filter.**
//!
//! The algorithm (format version 1):
//!
//! 1. `h = FNV-1a 64` (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the bytes
//!    `service ‖ 0xFF ‖ key`. The separator byte never occurs in UTF-8 text, so the pair
//!    ("ab", "c") cannot collide with ("a", "bc"). Hashing the service name in means that one
//!    user's position is independent from one service to the next: being in the 10 % canary of
//!    `product` says nothing about `cart`.
//! 2. `m = fmix64(h)`, MurmurHash3's 64-bit finalizer, which spreads FNV's weak high-order
//!    avalanche over all 64 bits.
//! 3. `bucket = floor(m × 10 000 / 2⁶⁴)`: the high bits choose the bucket (a multiply-shift,
//!    not a modulo, so no bias towards low buckets beyond 1 in 10¹⁵).

/// Number of buckets on the ring: weights have a resolution of 0.01 %.
pub const BUCKETS: u32 = 10_000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over a sequence of byte slices (hashed as if concatenated).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// MurmurHash3's 64-bit finalizer (`fmix64`).
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Maps 64 uniformly distributed bits onto `0..BUCKETS` by their high bits.
pub fn to_bucket(bits: u64) -> u32 {
    // (bits * BUCKETS) >> 64 < BUCKETS, so the narrowing cannot truncate.
    ((u128::from(bits) * u128::from(BUCKETS)) >> 64) as u32
}

/// The bucket of `key` within `service` (format version 1, documented above).
pub fn bucket(service: &str, key: &[u8]) -> u32 {
    to_bucket(fmix64(fnv1a64(&[service.as_bytes(), &[0xff], key])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv).
        for (input, expected) in [
            ("", 0xcbf2_9ce4_8422_2325_u64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            assert_eq!(fnv1a64(&[input.as_bytes()]), expected, "{input:?}");
        }
    }

    #[test]
    fn parts_hash_as_their_concatenation() {
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
    }

    #[test]
    fn fmix64_matches_murmur3() {
        assert_eq!(fmix64(0), 0);
        // Reference values of MurmurHash3's fmix64.
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
        assert_eq!(fmix64(u64::MAX), 0x64b5_720b_4b82_5f21);
    }

    /// Golden values: if this test fails, the hash changed and every user in the mesh would be
    /// reshuffled. Do not update these numbers; restore the algorithm.
    #[test]
    fn buckets_are_pinned_across_releases() {
        for (service, key, expected) in [
            ("product", "alice", GOLDEN[0]),
            ("product", "bob", GOLDEN[1]),
            ("cart", "alice", GOLDEN[2]),
            ("search", "", GOLDEN[3]),
            ("order", "user-0042", GOLDEN[4]),
        ] {
            assert_eq!(bucket(service, key.as_bytes()), expected, "{service}/{key}");
        }
    }

    // Computed with an independent Python implementation of the documented algorithm.
    const GOLDEN: [u32; 5] = [1745, 256, 9090, 5065, 6576];

    #[test]
    fn the_separator_keeps_service_and_key_apart() {
        let ab_c = fmix64(fnv1a64(&[b"ab", &[0xff], b"c"]));
        let a_bc = fmix64(fnv1a64(&[b"a", &[0xff], b"bc"]));
        assert_ne!(ab_c, a_bc);
    }

    #[test]
    fn to_bucket_covers_the_whole_ring() {
        assert_eq!(to_bucket(0), 0);
        assert_eq!(to_bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(to_bucket(1 << 63), BUCKETS / 2);
    }
}
