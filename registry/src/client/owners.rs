//! Acting as a publisher: the statements that go with pushes, yanks and
//! owner changes, and a namespace's owners.

use super::{Client, ClientError};
use crate::name::check_namespace;
use crate::signing::{PublicKey, SecretKey};
use crate::statement::{Action, Change, STATEMENT_HEADER, Statement};
use reqwest::{Method, RequestBuilder};
use std::sync::Arc;

impl Client {
    /// This client, acting for the publisher who holds `key`: every push,
    /// yank and owner change it makes carries `key`'s signed statement, so
    /// a toolmesh registry lets it into namespaces `key` owns (and its first
    /// push into an unowned namespace claims it). Other registries ignore it.
    pub fn signed_by(mut self, key: Arc<SecretKey>) -> Self {
        self.signer = Some(key);
        self
    }

    /// `builder` with the signer's statement of `change`, if there is a signer.
    pub(super) fn with_statement(&self, builder: RequestBuilder, change: Change) -> RequestBuilder {
        match &self.signer {
            Some(key) => builder.header(STATEMENT_HEADER, Statement::sign(key, change).to_header()),
            None => builder,
        }
    }

    /// The keys that own `namespace` (empty while nobody does).
    pub async fn owners(&self, namespace: &str) -> Result<Vec<PublicKey>, ClientError> {
        let builder = self.request(Method::GET, &format!("/toolmesh/v1/owners/{namespace}"));
        let response = self.send(&format!("the owners of {namespace}"), builder).await?;
        let body: serde_json::Value = response.json().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        body["owners"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                PublicKey::from_text(o["publicKey"].as_str().unwrap_or_default())
                    .map_err(|e| ClientError::Protocol(format!("owner key: {e}")))
            })
            .collect()
    }

    /// Adds `key` to the owners of `namespace`; the signer must be one.
    pub async fn add_owner(&self, namespace: &str, key: &PublicKey) -> Result<(), ClientError> {
        check_namespace(namespace).map_err(|e| ClientError::Protocol(format!("namespace `{namespace}`: {e}")))?;
        let change = Change {
            action: Action::AddOwner,
            repository: namespace.to_owned(),
            reference: String::new(),
            subject: key.to_text(),
        };
        let builder = self.request(Method::PUT, &format!("/toolmesh/v1/owners/{namespace}")).body(key.to_text());
        self.send(&format!("the owners of {namespace}"), self.with_statement(builder, change)).await?;
        Ok(())
    }
}
