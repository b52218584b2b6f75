//! The little DER this filter writes: public keys as `SubjectPublicKeyInfo` (what BoringSSL's
//! `EVP_parse_public_key` reads inside Envoy's `verify_signature`) and ECDSA signatures as
//! `ECDSA-Sig-Value` (JWS carries them as raw `r || s`, RFC 7518 §3.4; `EVP_DigestVerify`
//! wants DER).
//!
//! Only encoding, never decoding, so the attack surface is nil: every input has been length
//! checked by the caller.

use crate::keys::Curve;

/// `rsaEncryption` (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `id-ecPublicKey` (1.2.840.10045.2.1).
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` (1.3.132.0.34).
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let significant = bytes.get(first..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes (minimal encoding).
fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let trimmed = magnitude.get(first..).unwrap_or_default();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(INTEGER, &content)
}

fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(key);
    let mut content = tlv(SEQUENCE, algorithm);
    content.extend(tlv(BIT_STRING, &bits));
    tlv(SEQUENCE, &content)
}

/// `SubjectPublicKeyInfo` of an RSA key given its modulus and exponent magnitudes.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = unsigned_integer(n);
    key.extend(unsigned_integer(e));
    let mut algorithm = tlv(OID, OID_RSA);
    algorithm.extend(tlv(NULL, &[]));
    spki(&algorithm, &tlv(SEQUENCE, &key))
}

/// `SubjectPublicKeyInfo` of an EC key given its uncompressed SEC1 point (`04 || x || y`).
pub fn ec_spki(curve: Curve, point: &[u8]) -> Vec<u8> {
    let mut algorithm = tlv(OID, OID_EC);
    algorithm.extend(tlv(
        OID,
        match curve {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
        },
    ));
    spki(&algorithm, point)
}

/// Converts a JWS ECDSA signature (`r || s`, each `curve.size()` bytes) to DER; `None` when
/// the length is wrong for the curve (such a signature is simply invalid).
pub fn ecdsa_signature(curve: Curve, raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 2 * curve.size() {
        return None;
    }
    let (r, s) = raw.split_at(curve.size());
    let mut content = unsigned_integer(r);
    content.extend(unsigned_integer(s));
    Some(tlv(SEQUENCE, &content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0x00, 0x01]), vec![0x02, 0x01, 0x01]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![0x02, 0x01, 0x00]);
        assert_eq!(
            unsigned_integer(&[0x7f, 0xff]),
            vec![0x02, 0x02, 0x7f, 0xff]
        );
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let content = vec![0u8; 300];
        let encoded = tlv(SEQUENCE, &content);
        assert_eq!(&encoded[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(encoded.len(), 304);
        assert_eq!(&tlv(SEQUENCE, &[0u8; 0x80])[..3], &[0x30, 0x81, 0x80]);
    }

    #[test]
    fn ecdsa_signature_needs_the_exact_length() {
        assert!(ecdsa_signature(Curve::P256, &[1u8; 63]).is_none());
        assert!(ecdsa_signature(Curve::P256, &[1u8; 65]).is_none());
        let der = ecdsa_signature(Curve::P256, &[0xffu8; 64]).unwrap();
        // SEQUENCE { INTEGER 00 ff.. (33), INTEGER 00 ff.. (33) }
        assert_eq!(der.len(), 2 + 2 * (2 + 33));
    }
}
