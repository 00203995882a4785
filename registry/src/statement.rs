//! A publisher's signed word for one change to a registry: "key K pushes
//! manifest D as version V of acme/tool", "key K yanks version V",
//! "key K adds key L as an owner of acme". It travels in the
//! [`STATEMENT_HEADER`] of the request that makes the change, so the
//! registry can tell who is asking and enforce namespace ownership.
//!
//! It signs every part of the change (action, repository, reference,
//! subject) and when it was made, so a statement seen once cannot be
//! replayed under another name, version or content, nor after
//! [`MAX_SKEW`]; replaying it sooner only repeats the same change.

use crate::signing::{PublicKey, SecretKey, SignError};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The request header that carries a statement (base64url of its JSON).
pub const STATEMENT_HEADER: &str = "toolmesh-statement";
/// What a statement signs: this context, then its parts, one per line.
const CONTEXT: &str = "toolmesh statement v1";
/// The largest header value read.
const MAX_HEADER: usize = 4096;
/// How far a statement's time may be from the registry's clock.
pub const MAX_SKEW: std::time::Duration = std::time::Duration::from_secs(600);

/// A change a statement covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Push a manifest (`reference`: the tag or digest; `subject`: the manifest digest).
    Push,
    /// Yank a version (`reference`: the version).
    Yank,
    /// Offer a yanked version again (`reference`: the version).
    Unyank,
    /// Add an owner to a namespace (`repository`: the namespace; `subject`: the new key).
    AddOwner,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Yank => "yank",
            Action::Unyank => "unyank",
            Action::AddOwner => "add-owner",
        }
    }
}

/// What a statement is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The change.
    pub action: Action,
    /// The repository (or, to add an owner, the namespace).
    pub repository: String,
    /// The tag or digest it concerns, if any.
    pub reference: String,
    /// The manifest digest pushed, or the key added; empty otherwise.
    pub subject: String,
}

impl Change {
    fn message(&self, issued: u64) -> Vec<u8> {
        let issued = issued.to_string();
        [CONTEXT, self.action.as_str(), &self.repository, &self.reference, &self.subject, &issued]
            .join("\n")
            .into_bytes()
    }
}

/// Seconds since the Unix epoch at `time`.
fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A [`Change`] signed by a publisher key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    /// What it covers.
    #[serde(flatten)]
    pub change: Change,
    /// When it was made, in seconds since the Unix epoch.
    pub issued: u64,
    /// The signer's public key.
    pub public_key: String,
    /// The ed25519 signature over the change, base64.
    pub signature: String,
}

impl Statement {
    /// `key`'s statement of `change`, made now.
    pub fn sign(key: &SecretKey, change: Change) -> Self {
        Self::sign_at(key, change, SystemTime::now())
    }

    /// `key`'s statement of `change`, made at `time`.
    pub fn sign_at(key: &SecretKey, change: Change, time: SystemTime) -> Self {
        let issued = unix(time);
        let signature = STANDARD.encode(key.signing_key().sign(&change.message(issued)).to_bytes());
        Statement { public_key: key.public().to_text(), signature, change, issued }
    }

    /// The statement as a header value.
    pub fn to_header(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a statement serialises"))
    }

    /// Reads a header value written by [`Statement::to_header`].
    pub fn from_header(value: &str) -> Result<Self, SignError> {
        let bad = |why: &str| SignError::InvalidSignature(format!("the {STATEMENT_HEADER} header {why}"));
        if value.len() > MAX_HEADER {
            return Err(bad("is too long"));
        }
        let bytes = URL_SAFE_NO_PAD.decode(value.trim()).map_err(|_| bad("is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|e| bad(&format!("does not hold a statement: {e}")))
    }

    /// Checks that this statement covers exactly `expected`, was made within
    /// [`MAX_SKEW`] of `now`, and that its signature verifies against the
    /// key it names; returns that key.
    pub fn verify(&self, expected: &Change, now: SystemTime) -> Result<PublicKey, SignError> {
        let key = PublicKey::from_text(&self.public_key)?;
        if unix(now).abs_diff(self.issued) > MAX_SKEW.as_secs() {
            return Err(SignError::InvalidSignature(format!(
                "the statement was made {} s from this registry's time, more than {} s: check the clock",
                unix(now).abs_diff(self.issued),
                MAX_SKEW.as_secs()
            )));
        }
        if self.change != *expected {
            return Err(SignError::InvalidSignature(format!(
                "the statement covers {} {} {}, not this request ({} {} {})",
                self.change.action.as_str(),
                self.change.repository,
                self.change.reference,
                expected.action.as_str(),
                expected.repository,
                expected.reference
            )));
        }
        let bytes: [u8; 64] = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SignError::InvalidSignature("not 64 base64 bytes".into()))?;
        key.verifying_key()
            .verify(&expected.message(self.issued), &Signature::from_bytes(&bytes))
            .map_err(|_| SignError::BadSignature(key.key_id()))?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(reference: &str, subject: &str) -> Change {
        Change {
            action: Action::Push,
            repository: "acme/tool".into(),
            reference: reference.into(),
            subject: subject.into(),
        }
    }

    #[test]
    fn a_statement_verifies_only_for_the_change_it_names() {
        let key = SecretKey::generate();
        let statement = Statement::sign(&key, push("1.0.0", "sha256:aa"));
        let read = Statement::from_header(&statement.to_header()).unwrap();
        let now = SystemTime::now();
        assert_eq!(read.verify(&push("1.0.0", "sha256:aa"), now).unwrap(), key.public());
        // Too old, or from too far ahead: refused; so is a changed time.
        let hour = std::time::Duration::from_secs(3600);
        assert!(read.verify(&push("1.0.0", "sha256:aa"), now + hour).is_err());
        assert!(read.verify(&push("1.0.0", "sha256:aa"), now - hour).is_err());
        let later = Statement { issued: read.issued + 1, ..read.clone() };
        assert!(matches!(later.verify(&push("1.0.0", "sha256:aa"), now), Err(SignError::BadSignature(_))));
        // Another version, content, repository or action: refused.
        assert!(read.verify(&push("2.0.0", "sha256:aa"), now).is_err());
        assert!(read.verify(&push("1.0.0", "sha256:bb"), now).is_err());
        assert!(read.verify(&Change { repository: "other/tool".into(), ..push("1.0.0", "sha256:aa") }, now).is_err());
        assert!(read.verify(&Change { action: Action::Yank, ..push("1.0.0", "sha256:aa") }, now).is_err());
        // Editing the covered change after signing breaks the signature.
        let mut edited = read.clone();
        edited.change.reference = "2.0.0".into();
        assert!(matches!(edited.verify(&push("2.0.0", "sha256:aa"), now), Err(SignError::BadSignature(_))));
        // Another key's name on it does not verify either.
        let other = SecretKey::generate();
        let swapped = Statement { public_key: other.public().to_text(), ..read };
        assert!(matches!(swapped.verify(&push("1.0.0", "sha256:aa"), now), Err(SignError::BadSignature(_))));
        assert!(Statement::from_header("not base64 !").is_err());
        assert!(Statement::from_header(&"A".repeat(5000)).is_err());
    }
}
