//! Repository names, tags and references, validated as the OCI distribution
//! spec defines them. A validated name or tag is also a safe relative path:
//! no component can be empty, `.` or `..`.

use crate::digest::Digest;
use std::fmt;
use std::str::FromStr;

/// A name, tag or reference that does not follow the spec's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repository name is malformed.
    #[error(
        "invalid repository name {0:?}: use lower-case path components of [a-z0-9] joined by `.`, `_`, `__` or `-`, separated by `/` (at most 255 characters)"
    )]
    Repository(String),
    /// The tag is malformed.
    #[error("invalid tag {0:?}: use 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`")]
    Tag(String),
    /// The reference is malformed.
    #[error("invalid reference {0:?}: expected `namespace/name:tag`, `namespace/name@sha256:…` or both")]
    Reference(String),
}

/// A validated repository name such as `toolmesh/text`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    /// The name as text (also a safe relative path).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its namespace: the first component (`acme` of `acme/tools/text`),
    /// which belongs to the publishers that own it.
    pub fn namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Checks that `text` is a namespace: one component of a repository name
/// (`acme` of `acme/tool`).
pub fn check_namespace(text: &str) -> Result<&str, NameError> {
    if text.len() <= 255 && valid_component(text) { Ok(text) } else { Err(NameError::Repository(text.to_owned())) }
}

impl FromStr for Repository {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > 255 || !s.split('/').all(valid_component) {
            return Err(NameError::Repository(s.to_owned()));
        }
        Ok(Repository(s.to_owned()))
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated tag such as `1.2.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag as text (also a safe file name).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the tag names a version (`1.2.0`, `v2`: a digit first, or
    /// `v` and a digit). A published version is immutable; other tags
    /// (`latest`, `dev`) may move.
    pub fn is_version(&self) -> bool {
        let b = self.0.as_bytes();
        let digits = if b.first() == Some(&b'v') { &b[1..] } else { b };
        digits.first().is_some_and(u8::is_ascii_digit)
    }
}

/// How [`version_order`] ranks a version: its release parts, whether it
/// is a release (not a pre-release), its pre-release parts.
pub type VersionKey = (Vec<(u64, String)>, bool, Vec<(u64, String)>);

/// A key that orders version texts as semantic versions do: dotted numeric
/// parts numerically (`1.10.0` after `1.9.0`), other parts as text after
/// numbers, a pre-release before its release (`1.0.0-rc.1` before `1.0.0`),
/// build metadata (`+…`) and a leading `v` ignored.
pub fn version_order(version: &str) -> VersionKey {
    let version = version.split('+').next().unwrap_or(version);
    let version = version.strip_prefix('v').filter(|v| v.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(version);
    let (release, pre) = match version.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (version, None),
    };
    let parts = |text: &str| text.split('.').map(|p| (p.parse().unwrap_or(u64::MAX), p.to_owned())).collect();
    (parts(release), pre.is_none(), pre.map(parts).unwrap_or_default())
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let first_ok = b.first().is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok || b.len() > 128 {
            return Err(NameError::Tag(s.to_owned()));
        }
        Ok(Tag(s.to_owned()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest request names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

impl FromStr for ManifestRef {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(ManifestRef::Digest).map_err(|_| NameError::Reference(s.to_owned()))
        } else {
            s.parse().map(ManifestRef::Tag)
        }
    }
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestRef::Tag(t) => t.fmt(f),
            ManifestRef::Digest(d) => d.fmt(f),
        }
    }
}

/// A full reference: `namespace/name:tag`, `namespace/name@sha256:…`, or
/// `namespace/name:tag@sha256:…` (the digest pins the tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The repository.
    pub repository: Repository,
    /// The tag, if given.
    pub tag: Option<Tag>,
    /// The digest, if given; it wins over the tag when fetching.
    pub digest: Option<Digest>,
}

impl Reference {
    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> ManifestRef {
        match (&self.digest, &self.tag) {
            (Some(d), _) => ManifestRef::Digest(*d),
            (None, Some(t)) => ManifestRef::Tag(t.clone()),
            (None, None) => ManifestRef::Tag(Tag("latest".into())),
        }
    }
}

impl FromStr for Reference {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>().map_err(|_| NameError::Reference(s.to_owned()))?)),
            None => (s, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag.parse::<Tag>()?)),
            _ => (rest, None),
        };
        Ok(Reference { repository: name.parse()?, tag, digest })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.repository.as_str())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in ["toolmesh/text", "a", "a0/b-c/d__e/f.g", "x--y", "0"] {
            assert!(ok.parse::<Repository>().is_ok(), "{ok}");
        }
        for bad in ["", "A", "a/", "/a", "a//b", "../etc", "a/../b", "a/./b", "a..b", "-a", "a_", "a___b", "a b"] {
            assert!(bad.parse::<Repository>().is_err(), "{bad}");
        }
        assert!("a".repeat(256).parse::<Repository>().is_err());
    }

    #[test]
    fn tags() {
        for ok in ["latest", "1.2.3", "_x", "V1-rc.2"] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "-x", ".hidden", "a/b", "a:b", &"x".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        let d = Digest::of(b"x");
        let r: Reference = format!("ns/name:1.0@{d}").parse().unwrap();
        assert_eq!(r.repository.as_str(), "ns/name");
        assert_eq!(r.tag.as_ref().map(Tag::as_str), Some("1.0"));
        assert_eq!(r.manifest_ref(), ManifestRef::Digest(d));
        assert_eq!(r.to_string(), format!("ns/name:1.0@{d}"));
        let r: Reference = "ns/name".parse().unwrap();
        assert_eq!(r.manifest_ref().to_string(), "latest");
        assert!("ns/name@sha256:nope".parse::<Reference>().is_err());
        assert!("NS/name:1".parse::<Reference>().is_err());
    }

    #[test]
    fn versions_order_as_semantic_versions() {
        let mut versions =
            ["1.10.0", "1.0.0", "1.0.0-rc.1", "1.9.0", "v2", "1.0.0-alpha", "0.9.0+build.5", "1.0.0-rc.10"];
        versions.sort_by_key(|v| version_order(v));
        assert_eq!(
            versions,
            ["0.9.0+build.5", "1.0.0-alpha", "1.0.0-rc.1", "1.0.0-rc.10", "1.0.0", "1.9.0", "1.10.0", "v2"]
        );
    }
}
