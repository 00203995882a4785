//! Who may call which tools: rules that map a token's scopes and groups to
//! tool-name patterns, read from TOML (`--access FILE`).
//!
//! ```toml
//! # Anyone whose token carries the `tools:examples` scope may call the
//! # examples; members of the `admins` group may call everything.
//! [[allow]]
//! scopes = ["tools:examples"]
//! tools = ["examples.*"]
//!
//! [[allow]]
//! groups = ["admins"]
//! tools = ["*"]
//! ```
//!
//! A rule applies to a caller holding any of its scopes or belonging to any
//! of its groups; a tool may be called when some applying rule has a
//! pattern that matches its catalog name (`*` matches any run of
//! characters, dots included). Without a policy every signed-in caller may
//! call every tool.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;

/// A policy that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct AccessError {
    path: String,
    message: String,
}

/// The rules of an access policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// The rules, any of which may allow a call.
    #[serde(default)]
    pub allow: Vec<Rule>,
}

/// One rule: callers with one of `scopes` or in one of `groups` may call
/// the tools `tools` matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// OAuth scopes (the token's `scope` or `scp` claim), any of which applies the rule.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Groups (the token's `groups` claim), any of which applies the rule.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Patterns over catalog tool names (`examples.*`, `*.search`, `*`).
    pub tools: Vec<String>,
}

/// What a signed-in caller holds, as far as the policy cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Its scopes.
    pub scopes: BTreeSet<String>,
    /// Its groups.
    pub groups: BTreeSet<String>,
}

impl AccessPolicy {
    /// Reads the policy at `path`; a rule that names no scope or group, or
    /// no tool, is refused (it could never apply, or never allow).
    pub fn load(path: &Path) -> Result<Self, AccessError> {
        let fail = |message: String| AccessError { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        Self::parse(&text).map_err(fail)
    }

    /// Reads a policy from TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let policy: AccessPolicy = toml::from_str(text).map_err(|e| e.to_string())?;
        for (index, rule) in policy.allow.iter().enumerate() {
            let which = index + 1;
            if rule.scopes.is_empty() && rule.groups.is_empty() {
                return Err(format!("rule {which} names no scope and no group, so it applies to nobody"));
            }
            if rule.tools.is_empty() {
                return Err(format!("rule {which} names no tool"));
            }
            let words = rule.scopes.iter().chain(&rule.groups).chain(&rule.tools);
            if let Some(bad) = words.clone().find(|w| w.is_empty() || w.chars().any(|c| c.is_whitespace() || c == '"'))
            {
                return Err(format!("rule {which}: `{bad}` is empty or holds a space or quote"));
            }
        }
        Ok(policy)
    }

    /// Every scope the rules name, for clients to ask for.
    pub fn scopes(&self) -> BTreeSet<String> {
        self.allow.iter().flat_map(|r| r.scopes.iter().cloned()).collect()
    }

    /// Whether a caller holding `claims` may call `tool`.
    pub fn allows(&self, claims: &Claims, tool: &str) -> bool {
        self.allow.iter().any(|rule| rule.applies_to(claims) && rule.covers(tool))
    }

    /// The scopes any of which would let a caller call `tool` (empty when
    /// only groups can).
    pub fn scopes_for(&self, tool: &str) -> BTreeSet<String> {
        self.allow.iter().filter(|r| r.covers(tool)).flat_map(|r| r.scopes.iter().cloned()).collect()
    }

    /// The one scope a client should ask for to call `tool`: the first
    /// scope of the first rule (in the file's order) that covers it.
    pub fn scope_to_ask(&self, tool: &str) -> Option<&str> {
        self.allow.iter().filter(|r| r.covers(tool)).find_map(|r| r.scopes.first()).map(String::as_str)
    }
}

impl Rule {
    fn applies_to(&self, claims: &Claims) -> bool {
        self.scopes.iter().any(|s| claims.scopes.contains(s)) || self.groups.iter().any(|g| claims.groups.contains(g))
    }

    fn covers(&self, tool: &str) -> bool {
        self.tools.iter().any(|pattern| matches(pattern, tool))
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    // No `*`: the whole name.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scopes: &[&str], groups: &[&str]) -> Claims {
        Claims {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn patterns_match_whole_names() {
        for (pattern, name, expected) in [
            ("*", "examples.hello.greet", true),
            ("examples.*", "examples.hello.greet", true),
            ("examples.*", "examplesx.hello.greet", false),
            ("examples.hello.greet", "examples.hello.greet", true),
            ("examples.hello.greet", "examples.hello.greeting", false),
            ("*.greet", "examples.hello.greet", true),
            ("*.greet", "examples.hello.greeter", false),
            ("examples.*.greet", "examples.hello.greet", true),
            ("examples.*.greet", "other.hello.greet", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*hello*", "examples.hello.greet", true),
        ] {
            assert_eq!(matches(pattern, name), expected, "{pattern} ~ {name}");
        }
    }

    #[test]
    fn rules_allow_by_scope_or_group() {
        let policy = AccessPolicy::parse(
            "[[allow]]\nscopes = [\"tools:examples\"]\ntools = [\"examples.*\"]\n\
             [[allow]]\ngroups = [\"admins\"]\nscopes = [\"tools:all\"]\ntools = [\"*\"]\n",
        )
        .unwrap();
        assert!(policy.allows(&claims(&["tools:examples"], &[]), "examples.hello.greet"));
        assert!(!policy.allows(&claims(&["tools:examples"], &[]), "acme.db.query"));
        assert!(policy.allows(&claims(&[], &["admins"]), "acme.db.query"));
        assert!(policy.allows(&claims(&["tools:all"], &[]), "acme.db.query"));
        assert!(!policy.allows(&claims(&["openid"], &["staff"]), "examples.hello.greet"));
        assert_eq!(policy.scopes_for("acme.db.query"), ["tools:all".to_string()].into());
        assert_eq!(policy.scopes_for("examples.x.y").len(), 2);
        assert_eq!(policy.scope_to_ask("examples.x.y"), Some("tools:examples"), "the first rule's");
        assert_eq!(policy.scope_to_ask("acme.db.query"), Some("tools:all"));
        assert_eq!(policy.scopes(), ["tools:all".to_string(), "tools:examples".to_string()].into());
    }

    #[test]
    fn rules_that_could_never_apply_are_refused() {
        for (text, says) in [
            ("[[allow]]\ntools = [\"*\"]\n", "applies to nobody"),
            ("[[allow]]\nscopes = [\"a\"]\ntools = []\n", "names no tool"),
            ("[[allow]]\nscopes = [\"a b\"]\ntools = [\"*\"]\n", "space"),
            ("[[allow]]\nscope = \"a\"\ntools = [\"*\"]\n", "unknown field"),
        ] {
            let err = AccessPolicy::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
