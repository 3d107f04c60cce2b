//! The three algorithms authd signs with (EdDSA, ES256, RS256): tokens jsonwebtoken signs pass
//! here and in jsonwebtoken's own `decode` alike, and a token signed by a key of one type,
//! presented under the `kid` of another, is refused whatever its header says.

use super::*;
use crate::test_support::{KeyPair, signing_input};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

/// The `kid` each pair is published under.
fn kid(pair: &KeyPair) -> &'static str {
    match pair.algorithm {
        Algorithm::EdDSA => "ed25519-1",
        Algorithm::ES256 => "p256-1",
        _ => "rsa-1",
    }
}

/// The JWK Set of `pairs`, as authd publishes it.
fn jwks(pairs: &[KeyPair]) -> Value {
    let keys: Vec<Value> = pairs.iter().map(|pair| pair.jwk(kid(pair))).collect();
    json!({ "keys": keys })
}

fn keys_of(pairs: &[KeyPair]) -> PublicKeys {
    PublicKeys::from_json(&jwks(pairs).to_string()).unwrap()
}

/// A header like authd's with this `alg` and `kid`.
fn header(alg: &str, kid: &str) -> Value {
    json!({ "alg": alg, "typ": "at+jwt", "kid": kid })
}

/// Every JWS algorithm that is not HMAC: a verifier that allows them all still refuses what
/// does not fit the key.
fn every_asymmetric_algorithm() -> Checks {
    use Algorithm::*;
    checks().with_algorithms(&[
        EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512,
    ])
}

#[test]
fn each_algorithm_passes_here_and_in_an_outside_library() {
    let pairs = KeyPair::all();
    let keys = keys_of(&pairs);
    assert_eq!(keys.len(), 3);
    let set: JwkSet = serde_json::from_value(jwks(&pairs)).unwrap();
    for pair in &pairs {
        let alg = pair.alg();
        assert_eq!(
            keys.get(kid(pair)).map(|k| k.algorithm()),
            Some(pair.algorithm)
        );
        let token = pair.token(kid(pair));
        let ours = checks().check(&token, &keys).unwrap();
        assert_eq!(
            (ours.iss.as_str(), ours.exp - ours.iat),
            (ISSUER, 900),
            "{alg}"
        );

        let jwk = set.find(kid(pair)).unwrap();
        let mut validation = jsonwebtoken::Validation::new(pair.algorithm);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let theirs = jsonwebtoken::decode::<AccessClaims>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(ours, theirs.claims, "{alg}");
        assert_eq!(theirs.header.kid.as_deref(), Some(kid(pair)), "{alg}");

        // Narrowed to EdDSA, only the EdDSA token passes.
        let ed_only = checks().with_algorithms(&[Algorithm::EdDSA]);
        let narrowed = ed_only.check(&token, &keys);
        if pair.algorithm == Algorithm::EdDSA {
            assert!(narrowed.is_ok());
        } else {
            assert_eq!(narrowed, Err(Refusal::Algorithm), "{alg}");
        }
    }
}

#[test]
fn a_key_of_one_type_never_checks_a_token_under_another_kid() {
    let pairs = KeyPair::all();
    let keys = keys_of(&pairs);
    // Every ordered pair of types, among them: RS256 signed by the RSA key under the EC key's
    // kid, ES256 under the Ed25519 key's kid, EdDSA under the RSA key's kid.
    for signer in &pairs {
        for owner in pairs.iter().filter(|p| p.algorithm != signer.algorithm) {
            let case = format!("{} signed, under the {} kid", signer.alg(), owner.alg());
            // The signer's own algorithm in the header: not the key's.
            let token = signer.sign(&header(&signer.alg(), kid(owner)), &t::claims(t::now()));
            assert_eq!(
                checks().check(&token, &keys),
                Err(Refusal::Algorithm),
                "{case}"
            );
            let lax = every_asymmetric_algorithm().check(&token, &keys);
            assert_eq!(lax, Err(Refusal::Algorithm), "{case}");
            // The key's algorithm in the header, over the other type's signature.
            let token = signer.sign(&header(&owner.alg(), kid(owner)), &t::claims(t::now()));
            assert_eq!(
                checks().check(&token, &keys),
                Err(Refusal::Signature),
                "{case}"
            );
        }
    }
    // Within a family: another RSA or EC algorithm than the key's, signed by that very key
    // where jsonwebtoken can.
    let rsa = KeyPair::rsa();
    for alg in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        let header = header(json!(alg).as_str().unwrap(), "rsa-1");
        let input = signing_input(&header, &t::claims(t::now()));
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &rsa.encoding, alg).unwrap();
        let lax = every_asymmetric_algorithm().check(&format!("{input}.{signature}"), &keys);
        assert_eq!(lax, Err(Refusal::Algorithm), "{alg:?}");
    }
    let p256 = KeyPair::p256(1);
    let es384 = p256.sign(&header("ES384", "p256-1"), &t::claims(t::now()));
    let lax = every_asymmetric_algorithm().check(&es384, &keys);
    assert_eq!(lax, Err(Refusal::Algorithm));
}

#[test]
fn hs256_keyed_with_the_rsa_public_key_is_refused() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    let pairs = KeyPair::all();
    let keys = keys_of(&pairs);
    let jwk = pairs[2].jwk("rsa-1");
    let b64 = |member: &str| jwk[member].as_str().unwrap().to_owned();
    let (n, e) = (b64("n"), b64("e"));
    let n_bytes = URL_SAFE_NO_PAD.decode(&n).unwrap();
    let public = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n_bytes),
        rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(&e).unwrap()),
    )
    .unwrap();
    let lf = rsa::pkcs8::LineEnding::LF;
    let secrets: Vec<Vec<u8>> = vec![
        public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
        public.to_public_key_der().unwrap().as_bytes().to_vec(),
        public.to_pkcs1_pem(lf).unwrap().into_bytes(),
        public.to_public_key_pem(lf).unwrap().into_bytes(),
        n_bytes,
        n.into_bytes(),
        jwk.to_string().into_bytes(),
        jwks(&pairs).to_string().into_bytes(),
    ];
    let lax = checks().with_algorithms(&[Algorithm::RS256, Algorithm::HS256, Algorithm::HS512]);
    for secret in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS512] {
            let header = header(json!(alg).as_str().unwrap(), "rsa-1");
            let input = signing_input(&header, &t::claims(t::now()));
            let key = jsonwebtoken::EncodingKey::from_secret(secret);
            let mac = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).unwrap();
            let token = format!("{input}.{mac}");
            assert_eq!(checks().check(&token, &keys), Err(Refusal::Algorithm));
            // Even a verifier told to allow HMAC drops it: the key would be public.
            assert_eq!(lax.check(&token, &keys), Err(Refusal::Algorithm));
        }
    }
}

#[test]
fn an_rsa_1024_key_in_the_set_is_skipped() {
    let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let small = KeyPair::rsa_of(&small);
    let mut published = jwks(&KeyPair::all());
    published["keys"]
        .as_array_mut()
        .unwrap()
        .push(small.jwk("rsa-1024"));
    let keys = PublicKeys::from_json(&published.to_string()).unwrap();
    assert_eq!(keys.len(), 3);
    assert!(!keys.contains("rsa-1024"));
    let token = small.token("rsa-1024");
    assert_eq!(checks().check(&token, &keys), Err(Refusal::UnknownKey));
    // Under the 2048-bit key's kid its signature is simply wrong.
    let token = small.token("rsa-1");
    assert_eq!(checks().check(&token, &keys), Err(Refusal::Signature));
}

/// A valid ES256 token, split into its signing input and its 64 signature bytes.
fn es256_parts() -> (PublicKeys, String, [u8; 64]) {
    let pair = KeyPair::p256(1);
    let keys = keys_of(&KeyPair::all());
    let token = pair.token("p256-1");
    let (input, signature) = token.rsplit_once('.').unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(signature.len(), 86);
    assert!(checks().check(&token, &keys).is_ok());
    (keys, input.to_owned(), bytes.try_into().unwrap())
}

fn with_signature(input: &str, signature: &[u8]) -> String {
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[test]
fn es256_signatures_are_64_bytes_of_r_and_s_and_nothing_else() {
    let (keys, input, bytes) = es256_parts();
    let check = |token: &str| checks().check(token, &keys);
    let der = p256::ecdsa::Signature::from_slice(&bytes).unwrap().to_der();
    let order = hex_bytes("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("DER", der.as_bytes().to_vec()),
        ("63 bytes", bytes[..63].to_vec()),
        ("65 bytes", [&bytes[..], &[0]].concat()),
        ("r alone", bytes[..32].to_vec()),
        ("twice", [bytes, bytes].concat()),
        ("none", Vec::new()),
        ("zeros", vec![0; 64]),
        ("r = 0", [&[0; 32], &bytes[32..]].concat()),
        ("s = 0", [&bytes[..32], &[0; 32]].concat()),
        ("r = n", [&order[..], &bytes[32..]].concat()),
        ("s = n", [&bytes[..32], &order[..]].concat()),
        ("s, r", [&bytes[32..], &bytes[..32]].concat()),
    ];
    for (case, signature) in refused {
        let token = with_signature(&input, &signature);
        assert_eq!(check(&token), Err(Refusal::Signature), "{case}");
    }
    // The right bytes in another spelling: padded, or with the last character's four unused
    // bits set.
    let encoded = URL_SAFE_NO_PAD.encode(bytes);
    let last = encoded.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    let unused_bits_set = alphabet.chars().nth(index | 0x0f).unwrap();
    for signature in [
        format!("{encoded}=="),
        format!("{}{unused_bits_set}", &encoded[..85]),
        encoded.replace('-', "+").replace('_', "/"),
    ] {
        if signature != encoded {
            let token = format!("{input}.{signature}");
            assert_eq!(check(&token), Err(Refusal::Signature), "{signature}");
        }
    }
}

#[test]
fn an_es256_signature_with_any_one_bit_flipped_is_refused() {
    let (keys, input, bytes) = es256_parts();
    for bit in 0..512 {
        let mut flipped = bytes;
        flipped[bit / 8] ^= 1 << (bit % 8);
        let token = with_signature(&input, &flipped);
        assert_eq!(
            checks().check(&token, &keys),
            Err(Refusal::Signature),
            "bit {bit}"
        );
    }
}

#[test]
fn the_high_s_twin_of_an_es256_signature_is_judged_as_jsonwebtoken_judges_it() {
    // ECDSA's (r, s) and (r, n - s) both verify; p256 signs with either, so both are accepted
    // here, as jsonwebtoken and other JWT libraries accept them.
    let (keys, input, bytes) = es256_parts();
    let signature = p256::ecdsa::Signature::from_slice(&bytes).unwrap();
    let (r, s) = signature.split_scalars();
    let twin = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    assert_ne!(twin, signature);
    let token = with_signature(&input, &twin.to_bytes());
    let ours = checks().check(&token, &keys);
    let jwk = KeyPair::p256(1).jwk("p256-1");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    let theirs = jsonwebtoken::decode::<AccessClaims>(
        &token,
        &DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    );
    assert!(ours.is_ok());
    assert_eq!(ours.ok(), theirs.ok().map(|data| data.claims));
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

proptest! {
    #[test]
    fn flipping_any_byte_breaks_an_es256_or_rs256_token(
        which in 0usize..2,
        index in 0usize..600,
        byte in any::<u8>(),
    ) {
        let pairs = KeyPair::all();
        let pair = &pairs[1 + which];
        let token = pair.token(kid(pair));
        let mut bytes = token.clone().into_bytes();
        let index = index % bytes.len();
        prop_assume!(bytes[index] != byte);
        bytes[index] = byte;
        let forged = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(forged != token);
        prop_assert!(checks().check(&forged, &keys_of(&pairs)).is_err());
    }
}
