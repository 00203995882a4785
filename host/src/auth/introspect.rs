//! Opaque access tokens, which only their issuer can read: checked by
//! asking it (RFC 7662 token introspection) at the `introspection_endpoint`
//! its metadata names, as a client of its own (`--oauth-introspection-client`).
//!
//! The issuer must say the token is active, for this server (`aud`), and
//! an access token; answers are kept for a minute at most (never past the
//! token's `exp`), so a revoked token stops working within a minute, and
//! at most a few questions are asked at once.

use super::AuthError;
use super::issuer::Issuer;
use super::token::{LEEWAY_SECONDS, Verified, claims_of, subject_of};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use toolmesh_registry::digest::Digest;

/// The client this server introspects tokens as.
#[derive(Debug, Clone)]
pub struct IntrospectionClient {
    /// Its client id at the issuer.
    pub id: String,
    /// Its secret (sent with HTTP Basic authentication).
    pub secret: String,
}

/// How long an answer is kept.
const KEEP: Duration = Duration::from_secs(60);

/// Answers kept at most; past this, the oldest half is dropped.
const MAX_KEPT: usize = 10_000;

/// Questions asked of the issuer at once.
const AT_ONCE: usize = 8;

/// How long one question may take.
const WAIT: Duration = Duration::from_secs(5);

/// An answer about a token (by its hash), and until when it holds.
type Kept = (Result<Verified, String>, Instant);

/// Checks opaque tokens with one issuer.
pub struct Introspector {
    client: IntrospectionClient,
    http: reqwest::Client,
    endpoint: tokio::sync::OnceCell<String>,
    /// Tokens found good, and tokens found bad, apart: a flood of made-up
    /// tokens fills only the second.
    good: Mutex<HashMap<String, Kept>>,
    bad: Mutex<HashMap<String, Kept>>,
    asking: tokio::sync::Semaphore,
}

impl Introspector {
    /// Introspects as `client` over `http`.
    pub fn new(client: IntrospectionClient, http: reqwest::Client) -> Self {
        Introspector {
            client,
            http,
            endpoint: tokio::sync::OnceCell::new(),
            good: Mutex::default(),
            bad: Mutex::default(),
            asking: tokio::sync::Semaphore::new(AT_ONCE),
        }
    }

    /// Verifies opaque `token` with `issuer`, accepting `audiences`.
    pub async fn verify(&self, token: &str, issuer: &Issuer, audiences: &[String]) -> Result<Verified, AuthError> {
        let key = Digest::of(token.as_bytes()).hex();
        for kept in [&self.good, &self.bad] {
            if let Some((answer, until)) = kept.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
                && *until > Instant::now()
            {
                return answer.clone().map_err(AuthError::InvalidToken);
            }
        }
        // The wait for a turn counts against the same bound as the question.
        let doc = tokio::time::timeout(WAIT, async {
            let _turn = self.asking.acquire().await.map_err(|_| AuthError::Unavailable("shutting down".into()))?;
            self.ask(token, issuer).await
        })
        .await
        .map_err(|_| AuthError::Unavailable(format!("{} did not answer an introspection in time", issuer.id)))??;
        let (answer, keep) = judge(&doc, &issuer.id, audiences);
        let mut kept = if answer.is_ok() { &self.good } else { &self.bad }.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_KEPT {
            let now = Instant::now();
            kept.retain(|_, (_, until)| *until > now);
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
        }
        kept.insert(key, (answer.clone(), Instant::now() + keep));
        answer.map_err(AuthError::InvalidToken)
    }

    /// The issuer's introspection answer for `token`.
    async fn ask(&self, token: &str, issuer: &Issuer) -> Result<Value, AuthError> {
        let endpoint = self
            .endpoint
            .get_or_try_init(|| async {
                let (url, doc) = issuer.metadata().await.map_err(AuthError::Unavailable)?;
                doc["introspection_endpoint"]
                    .as_str()
                    .filter(|u| super::issuer::check_id(u).is_ok())
                    .map(str::to_owned)
                    .ok_or_else(|| AuthError::Unavailable(format!("{url} names no usable introspection_endpoint")))
            })
            .await?;
        let response = self
            .http
            .post(endpoint)
            .basic_auth(&self.client.id, Some(&self.client.secret))
            .header("accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| AuthError::Unavailable(format!("cannot reach {endpoint}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(AuthError::Unavailable(format!("{endpoint} answered {status} to an introspection")));
        }
        response.json().await.map_err(|e| AuthError::Unavailable(format!("{endpoint} sent no JSON: {e}")))
    }
}

/// What an introspection answer `doc` from issuer `issuer` means, and how
/// long to keep it.
fn judge(doc: &Value, issuer: &str, audiences: &[String]) -> (Result<Verified, String>, Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let refuse = |why: &str| (Err(why.to_owned()), KEEP);
    if doc["active"] != Value::Bool(true) {
        return refuse("the token is not active (revoked, expired or unknown to its issuer)");
    }
    if doc["token_type"].as_str().is_some_and(|t| !t.eq_ignore_ascii_case("bearer") && t != "access_token") {
        return refuse("the token is not a bearer access token");
    }
    if doc["iss"].as_str().is_some_and(|i| i != issuer) {
        return refuse("the token's issuer does not match");
    }
    let aud: Vec<&str> = match &doc["aud"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !aud.iter().any(|a| audiences.iter().any(|ours| ours == a)) {
        return refuse("the token is for another audience (aud)");
    }
    let exp = doc["exp"].as_u64();
    if exp.is_some_and(|exp| exp + LEEWAY_SECONDS < now) {
        return refuse("the token has expired");
    }
    let Some(subject) = subject_of(doc) else {
        return refuse("the token names no subject (sub)");
    };
    let keep = exp.map_or(KEEP, |exp| KEEP.min(Duration::from_secs(exp.saturating_sub(now))));
    let verified = Verified { issuer: issuer.to_owned(), subject, claims: claims_of(doc) };
    (Ok(verified), keep)
}

/// Whether `token` looks like a JWT (three dot-separated parts) rather
/// than an opaque token.
pub fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_must_be_active_access_tokens_for_this_server() {
        let ours = ["https://tools.example/mcp".to_owned()];
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let good = json!({"active": true, "sub": "ada", "aud": ["https://tools.example/mcp"], "iss": "https://id.example",
                          "exp": now + 600, "scope": "tools:hello", "token_type": "Bearer"});
        let (answer, keep) = judge(&good, "https://id.example", &ours);
        let verified = answer.unwrap();
        assert_eq!((verified.subject.as_str(), keep), ("ada", KEEP));
        assert!(verified.claims.scopes.contains("tools:hello"));
        // Kept no longer than the token lives.
        let short = json!({"active": true, "sub": "ada", "aud": "https://tools.example/mcp", "exp": now + 10});
        assert!(judge(&short, "https://id.example", &ours).1 <= Duration::from_secs(10));
        for (bad, why) in [
            (json!({"active": false}), "not active"),
            (json!({"active": "true", "sub": "a", "aud": ours[0]}), "not active"),
            (json!({"active": true, "sub": "a", "aud": "https://other.example/mcp"}), "audience"),
            (json!({"active": true, "sub": "a"}), "audience"),
            (json!({"active": true, "sub": "a", "aud": ours[0], "iss": "https://evil.example"}), "issuer"),
            (json!({"active": true, "sub": "a", "aud": ours[0], "exp": now - 3600}), "expired"),
            (json!({"active": true, "sub": "a", "aud": ours[0], "token_type": "refresh_token"}), "bearer"),
            (json!({"active": true, "aud": ours[0]}), "subject"),
        ] {
            let error = judge(&bad, "https://id.example", &ours).0.unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(is_jwt("a.b.c") && !is_jwt("opaque-token") && !is_jwt("a.b"));
    }
}
