//! Publisher keys and signatures.
//!
//! A publisher holds an ed25519 key pair (`tool keygen`). A signature covers
//! a manifest digest, and so the config and the component it names. It is
//! stored as an OCI referrer of the signed manifest: an artifact of type
//! [`crate::oci::SIGNATURE_ARTIFACT_TYPE`] whose one layer is a
//! [`SignaturePayload`].

use crate::digest::Digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Media type of the signature payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.toolmesh.signature.payload.v1+json";
const SECRET_PREFIX: &str = "toolmesh-ed25519-secret:";
const PUBLIC_PREFIX: &str = "toolmesh-ed25519:";
/// What a signature signs: this context, then the digest's text.
const CONTEXT: &[u8] = b"toolmesh manifest signature v1\n";

/// Keys, signatures and their checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A key file or string does not parse.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The payload does not parse.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// The signature is for another manifest.
    #[error("signature is for {signed}, not {expected}")]
    WrongDigest {
        /// What the signature covers.
        signed: Digest,
        /// What was to be verified.
        expected: Digest,
    },
    /// No trusted key made this signature.
    #[error("no trusted key verifies the signature (signed by key {0})")]
    Untrusted(String),
    /// The signature does not verify.
    #[error("signature does not verify against key {0}")]
    BadSignature(String),
}

/// A publisher's secret key.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

/// A publisher's public key, as trusted by nodes.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source failed");
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key as a one-line string for a key file.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(self.0.to_bytes()))
    }

    /// Parses [`SecretKey::to_text`] output.
    pub fn from_text(text: &str) -> Result<Self, SignError> {
        let bytes = decode_key(text, SECRET_PREFIX)?;
        Ok(SecretKey(SigningKey::from_bytes(&bytes)))
    }

    /// The ed25519 key, for the crate's other signed statements.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// Signs `digest`.
    pub fn sign(&self, digest: &Digest) -> SignaturePayload {
        let signature = self.0.sign(&message(digest));
        SignaturePayload {
            digest: *digest,
            key_id: self.public().key_id(),
            public_key: self.public().to_text(),
            signature: STANDARD.encode(signature.to_bytes()),
        }
    }
}

impl PublicKey {
    /// The ed25519 key, for the crate's other signed statements.
    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// A short, stable id: the first 16 hex digits of the sha256 of the key.
    pub fn key_id(&self) -> String {
        Digest::of(self.0.as_bytes()).hex()[..16].to_owned()
    }

    /// The key as a one-line string.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }

    /// Parses [`PublicKey::to_text`] output.
    pub fn from_text(text: &str) -> Result<Self, SignError> {
        let bytes = decode_key(text, PUBLIC_PREFIX)?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|e| SignError::InvalidKey(e.to_string()))
    }
}

/// Shows the public key's id, never the secret.
impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public().key_id())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// The 32 key bytes of `text`, which must be `prefix` and base64.
fn decode_key(text: &str, prefix: &str) -> Result<[u8; 32], SignError> {
    let b64 = text.trim().strip_prefix(prefix).ok_or_else(|| SignError::InvalidKey(format!("expected `{prefix}…`")))?;
    STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SignError::InvalidKey("not 32 base64 bytes".into()))
}

fn message(digest: &Digest) -> Vec<u8> {
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(digest.to_string().as_bytes());
    m
}

/// The signed statement stored in a signature artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignaturePayload {
    /// The manifest digest it covers.
    pub digest: Digest,
    /// The signer's key id.
    pub key_id: String,
    /// The signer's public key (informational: trust comes from the verifier's own list).
    pub public_key: String,
    /// The ed25519 signature, base64.
    pub signature: String,
}

impl SignaturePayload {
    /// Checks that this signature covers `expected` and was made by one of `trusted`.
    /// Returns the key id that verified it.
    pub fn verify(&self, expected: &Digest, trusted: &[PublicKey]) -> Result<String, SignError> {
        if self.digest != *expected {
            return Err(SignError::WrongDigest { signed: self.digest, expected: *expected });
        }
        let key = trusted
            .iter()
            .find(|k| k.key_id() == self.key_id)
            .ok_or_else(|| SignError::Untrusted(self.key_id.clone()))?;
        let bytes: [u8; 64] = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SignError::InvalidSignature("not 64 base64 bytes".into()))?;
        key.0
            .verify(&message(expected), &Signature::from_bytes(&bytes))
            .map_err(|_| SignError::BadSignature(self.key_id.clone()))?;
        Ok(self.key_id.clone())
    }
}

impl SignaturePayload {
    /// Checks that this signature covers `expected` and verifies against
    /// the public key it names itself: proof that whoever holds that key
    /// signed it, not that the key is trusted. Returns the key's id.
    pub fn verify_own_key(&self, expected: &Digest) -> Result<String, SignError> {
        let key = PublicKey::from_text(&self.public_key)?;
        self.verify(expected, &[key])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_only_the_signed_digest_with_a_trusted_key() {
        let key = SecretKey::generate();
        let other = SecretKey::generate();
        let d = Digest::of(b"manifest");
        let sig = key.sign(&d);
        assert_eq!(sig.verify(&d, &[key.public()]).unwrap(), key.public().key_id());
        assert!(matches!(sig.verify(&Digest::of(b"other"), &[key.public()]), Err(SignError::WrongDigest { .. })));
        assert!(matches!(sig.verify(&d, &[other.public()]), Err(SignError::Untrusted(_))));
        // Swapping the digest field does not make it valid for the other digest.
        let swapped = SignaturePayload { digest: Digest::of(b"other"), ..sig.clone() };
        assert!(matches!(swapped.verify(&Digest::of(b"other"), &[key.public()]), Err(SignError::BadSignature(_))));
    }

    #[test]
    fn keys_round_trip_as_text() {
        let key = SecretKey::generate();
        let again = SecretKey::from_text(&key.to_text()).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(PublicKey::from_text(&key.public().to_text()).unwrap(), key.public());
        assert!(PublicKey::from_text("toolmesh-ed25519:AAAA").is_err());
        assert!(SecretKey::from_text(&key.public().to_text()).is_err());
    }
}
