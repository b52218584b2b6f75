//! `verify_signature` against keys and signatures made here, with Envoy's message shapes.

use p256::pkcs8::EncodePublicKey;
use rand_core::OsRng;

use super::*;

fn result(bytes: &[u8]) -> (bool, String) {
    let fields = proto::decode(bytes).unwrap();
    let ok = fields.get(&1).is_some_and(|v| v.first() == Some(&1));
    let error = String::from_utf8(fields.get(&2).cloned().unwrap_or_default()).unwrap();
    (ok, error)
}

#[test]
fn rs256_signatures_verify_and_tampering_fails() {
    use sha2::Digest;
    let key = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
    let der = key.to_public_key().to_public_key_der().unwrap();
    let text = b"header.payload";
    let digest = sha2::Sha256::digest(text);
    let signature = key
        .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
        .unwrap();
    let ok = verify_signature(&verify_arguments(
        "sha256",
        der.as_bytes(),
        &signature,
        text,
    ));
    assert_eq!(result(&ok.unwrap()), (true, String::new()));

    let bad = verify_signature(&verify_arguments(
        "sha256",
        der.as_bytes(),
        &signature,
        b"other",
    ));
    assert_eq!(
        result(&bad.unwrap()),
        (false, "Failed to verify digest. Error code: 0".to_string())
    );
}

#[test]
fn es256_needs_der_signatures_like_boringssl() {
    let signing = p256::ecdsa::SigningKey::random(&mut OsRng);
    let der = signing.verifying_key().to_public_key_der().unwrap();
    let text = b"header.payload";
    use p256::ecdsa::signature::Signer;
    let signature: p256::ecdsa::Signature = signing.sign(text);
    let args = verify_arguments(
        "SHA256",
        der.as_bytes(),
        signature.to_der().as_bytes(),
        text,
    );
    assert_eq!(
        result(&verify_signature(&args).unwrap()),
        (true, String::new())
    );
    // The raw r||s form a JWT carries is not accepted as such.
    let raw = verify_arguments("sha256", der.as_bytes(), &signature.to_bytes(), text);
    assert!(!result(&verify_signature(&raw).unwrap()).0);
}

#[test]
fn pem_keys_unknown_hashes_and_bad_keys() {
    let signing = p384::ecdsa::SigningKey::random(&mut OsRng);
    let pem = signing
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    use p384::ecdsa::signature::Signer;
    let signature: p384::ecdsa::Signature = signing.sign(b"t");
    let mut args = Vec::new();
    proto::put_bytes_field(&mut args, 1, b"sha384");
    proto::put_bytes_field(&mut args, 3, signature.to_der().as_bytes());
    proto::put_bytes_field(&mut args, 4, b"t");
    proto::put_bytes_field(&mut args, 5, pem.as_bytes());
    assert_eq!(
        result(&verify_signature(&args).unwrap()),
        (true, String::new())
    );

    let der = signing.verifying_key().to_public_key_der().unwrap();
    let md5 = verify_arguments("md5", der.as_bytes(), b"sig", b"t");
    assert_eq!(
        result(&verify_signature(&md5).unwrap()),
        (false, "md5 is not supported.".to_string())
    );
    let garbage = verify_arguments("sha256", b"not a key", b"sig", b"t");
    assert_eq!(verify_signature(&garbage), Err(Status::BadArgument));
    assert_eq!(verify_signature(&[0xff, 0xff]), Err(Status::BadArgument));
}

#[test]
fn registry_lists_and_replaces_functions() {
    let functions = ForeignFunctions::envoy().with("echo", |a| Ok(a.to_vec()));
    assert_eq!(functions.names(), vec!["echo", "verify_signature"]);
    assert_eq!((functions.get("echo").unwrap())(b"x"), Ok(b"x".to_vec()));
    assert!(ForeignFunctions::none().get("verify_signature").is_none());
}
