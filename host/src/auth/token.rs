//! Checking a JWT access token: its issuer is one this server trusts, its
//! signature verifies with that issuer's key under an allowed asymmetric
//! algorithm, its audience is this server, and it is within its lifetime.

use super::AuthError;
use super::access::Claims;
use super::issuer::Issuer;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

/// The signature algorithms accepted: asymmetric ones only, so a key this
/// server can read can never sign a token (`none` and HS* are refused).
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Longest token read; longer ones are refused before any decoding.
const MAX_TOKEN: usize = 16 << 10;

/// What a verified token says of its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The issuer that signed it.
    pub issuer: String,
    /// Its subject (`sub`; the client's id for tokens without one).
    pub subject: String,
    /// Its scopes and groups.
    pub claims: Claims,
}

/// Verifies `token` against `issuers`, accepting the audiences `audiences`.
pub async fn verify(token: &str, issuers: &[Issuer], audiences: &[String]) -> Result<Verified, AuthError> {
    let invalid = |why: &str| AuthError::InvalidToken(why.to_owned());
    if token.len() > MAX_TOKEN {
        return Err(invalid("the token is too long"));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a signed JWT"))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(AuthError::InvalidToken(format!("tokens signed with {:?} are not accepted", header.alg)));
    }
    // RFC 9068 access tokens say `at+jwt`; most providers still say `JWT`.
    let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
    if typ.as_deref().is_some_and(|t| !["jwt", "at+jwt", "application/at+jwt"].contains(&t)) {
        return Err(invalid("the token's type (typ) is not an access token's"));
    }
    // Which issuer's keys to check with: the one the token names, if trusted.
    let named = unverified_issuer(token).ok_or_else(|| invalid("the token names no issuer (iss)"))?;
    let issuer = issuers
        .iter()
        .find(|i| i.id == named)
        .ok_or_else(|| AuthError::InvalidToken(format!("the issuer `{named}` is not trusted here")))?;
    let key = issuer.key(header.kid.as_deref(), header.alg).await?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_issuer(&[&issuer.id]);
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        AuthError::InvalidToken(
            match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidAudience => "the token is for another audience (aud)",
                ErrorKind::InvalidIssuer => "the token's issuer does not match",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks exp, iss or aud",
                ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit its key",
                _ => "the token is malformed",
            }
            .to_owned(),
        )
    })?;
    let claims = data.claims;
    // An OpenID ID token proves a sign-in to a client; it grants nothing here.
    if claims.get("nonce").is_some() || claims["typ"] == "ID" {
        return Err(invalid("an ID token is not an access token"));
    }
    let subject = subject_of(&claims).ok_or_else(|| invalid("the token names no subject (sub)"))?;
    Ok(Verified { issuer: issuer.id.clone(), subject, claims: claims_of(&claims) })
}

/// Who a token's claims name, as the caller's name: its `sub`, or for a
/// token a client got for itself, `client:` and the client's id
/// (`client_id`, or `azp`). A `sub` that reads like a name this server
/// gives others (`key:…` for API keys, `client:…`, `local`, `stdio`) gets
/// `sub:` in front (as does one starting with `sub:`), so no token can
/// share another caller's name, quotas or usage.
pub fn subject_of(claims: &Value) -> Option<String> {
    let text = |name: &str| claims[name].as_str().filter(|s| !s.is_empty());
    match text("sub") {
        Some(sub) => {
            let taken = ["key:", "client:", "sub:"].iter().any(|p| sub.starts_with(p))
                || ["local", "stdio", "unidentified"].contains(&sub);
            Some(if taken { format!("sub:{sub}") } else { sub.to_owned() })
        }
        None => ["client_id", "azp"].iter().find_map(|name| text(name)).map(|id| format!("client:{id}")),
    }
}

/// The `iss` of a token's payload, read before its signature is checked
/// (only to pick the keys that check it).
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value["iss"].as_str().map(str::to_owned)
}

/// The scopes (`scope`, space-separated as RFC 9068 has it, or `scp`, a
/// string or a list as Entra ID and Okta send it) and groups (`groups`) of
/// a token's claims.
pub fn claims_of(claims: &Value) -> Claims {
    let words = |value: &Value| -> Vec<String> {
        match value {
            Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
            Value::Array(items) => items.iter().filter_map(|i| i.as_str()).map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    Claims {
        scopes: words(&claims["scope"]).into_iter().chain(words(&claims["scp"])).collect(),
        groups: match &claims["groups"] {
            Value::Array(items) => items.iter().filter_map(|i| i.as_str()).map(str::to_owned).collect(),
            _ => Default::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_token_is_named_like_another_caller() {
        let name = |claims: Value| subject_of(&claims).unwrap();
        assert_eq!(name(json!({"sub": "ada"})), "ada");
        assert_eq!(name(json!({"client_id": "bot"})), "client:bot");
        assert_eq!(name(json!({"azp": "bot"})), "client:bot");
        assert_eq!(name(json!({"sub": "client:bot"})), "sub:client:bot");
        assert_eq!(name(json!({"sub": "key:72ee9d4355cc"})), "sub:key:72ee9d4355cc");
        assert_eq!(name(json!({"sub": "sub:key:x"})), "sub:sub:key:x");
        assert_eq!(name(json!({"sub": "local"})), "sub:local");
        assert_eq!(subject_of(&json!({"sub": ""})), None);
    }

    #[test]
    fn scopes_come_from_scope_or_scp_and_groups_from_groups() {
        let claims = claims_of(&json!({"scope": "openid tools:read", "scp": ["tools:write"], "groups": ["a", 3]}));
        assert_eq!(claims.scopes.iter().collect::<Vec<_>>(), ["openid", "tools:read", "tools:write"]);
        assert_eq!(claims.groups.iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(claims_of(&json!({"scp": "a b"})).scopes.len(), 2);
        assert!(claims_of(&json!({"scope": 7})).scopes.is_empty());
    }

    #[tokio::test]
    async fn garbage_and_unsigned_tokens_are_refused_before_any_fetch() {
        // No issuer is reachable: refusals that need no keys come first.
        let issuers =
            [Issuer::new("https://id.invalid", toolmesh_registry::client::http_builder().build().unwrap()).unwrap()];
        let audiences = ["https://tools.example.com/mcp".to_owned()];
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://id.invalid","sub":"x","exp":9999999999}"#)
        );
        let hmac = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://id.invalid","sub":"x","exp":9999999999}"#)
        );
        let stranger = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"https://evil.example.com","sub":"x"}"#)
        );
        for (token, says) in [
            ("garbage", "not a signed JWT"),
            (unsigned.as_str(), "not a signed JWT"),
            (hmac.as_str(), "HS256"),
            (stranger.as_str(), "not trusted"),
            (&"a".repeat(MAX_TOKEN + 1), "too long"),
        ] {
            match verify(token, &issuers, &audiences).await {
                Err(AuthError::InvalidToken(why)) => assert!(why.contains(says), "{token}: {why}"),
                other => panic!("{token}: {other:?}"),
            }
        }
    }
}
