//! What a bridged server lists: its tools, resources, resource templates
//! and prompts, each list bounded however the server pages it.

use crate::sandbox::Offer;
use rmcp::model::PaginatedRequestParams;
use rmcp::service::{Peer, RoleClient};
use serde_json::Value;
use std::time::Duration;

/// Items of one list kept; the rest are left out.
const MAX_ITEMS: usize = 256;

/// Bytes of one tool's description (name, schemas and all) kept; a larger
/// one is left out.
const MAX_TOOL_BYTES: usize = 64 << 10;

/// Pages of one list read.
const MAX_PAGES: usize = 16;

/// The pause before a server's lists are read again.
const RELIST_PAUSE: Duration = Duration::from_secs(1);

/// The server's lists again after it said one changed: a burst of
/// notifications is read as one (the next is heard after the pause).
pub(super) async fn relist(peer: &Peer<RoleClient>) -> Result<(Vec<Value>, Offer), rmcp::ServiceError> {
    tokio::time::sleep(RELIST_PAUSE).await;
    list_all(peer).await
}

/// The server's tools (as MCP `Tool` objects, each at most
/// [`MAX_TOOL_BYTES`] written), and the resources, templates and prompts
/// it says it has.
pub(super) async fn list_all(peer: &Peer<RoleClient>) -> Result<(Vec<Value>, Offer), rmcp::ServiceError> {
    let tools = pages(|cursor| async move {
        let page = peer.list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
        let kept = page.tools.iter().filter_map(|tool| {
            let value = serde_json::to_value(tool).ok()?;
            if value.to_string().len() > MAX_TOOL_BYTES {
                tracing::warn!(tool = %tool.name, "bridged tool left out: its description is over 64 KiB");
                return None;
            }
            Some(value)
        });
        Ok((kept.collect(), page.next_cursor))
    })
    .await?;
    let capabilities = peer.peer_info().map(|info| info.capabilities.clone()).unwrap_or_default();
    let mut offer = Offer::default();
    if capabilities.resources.is_some() {
        offer.resources = pages(|cursor| async move {
            let page = peer.list_resources(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
            Ok((page.resources.iter().filter_map(typed).collect(), page.next_cursor))
        })
        .await?;
        offer.templates = pages(|cursor| async move {
            let page =
                peer.list_resource_templates(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
            Ok((page.resource_templates.iter().filter_map(typed).collect(), page.next_cursor))
        })
        .await?;
    }
    if capabilities.prompts.is_some() {
        offer.prompts = pages(|cursor| async move {
            let page = peer.list_prompts(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
            Ok((page.prompts.iter().filter_map(typed).collect(), page.next_cursor))
        })
        .await?;
    }
    Ok((tools, offer))
}

/// `item` (an MCP object) as the catalog's type of it, if it reads as one.
fn typed<T: serde::de::DeserializeOwned>(item: &impl serde::Serialize) -> Option<T> {
    serde_json::to_value(item).ok().and_then(|v| serde_json::from_value(v).ok())
}

/// The items of a paged list: at most [`MAX_PAGES`] pages and
/// [`MAX_ITEMS`] items.
async fn pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, rmcp::ServiceError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), rmcp::ServiceError>>,
{
    let (mut items, mut cursor) = (Vec::new(), None);
    for _ in 0..MAX_PAGES {
        let (more, next) = page(cursor).await?;
        items.extend(more);
        cursor = next;
        if cursor.is_none() || items.len() >= MAX_ITEMS {
            break;
        }
    }
    if items.len() > MAX_ITEMS {
        tracing::warn!(listed = items.len(), "bridged server's list cut to {MAX_ITEMS} items");
        items.truncate(MAX_ITEMS);
    }
    Ok(items)
}
