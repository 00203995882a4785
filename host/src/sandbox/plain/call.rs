//! A call of a plain component: its JSON arguments become component
//! values, the exported function runs in the sandbox like any call, and
//! its result becomes content.

use super::PlainExports;
use crate::config::Limits;
use crate::sandbox::{CallOptions, CallOutput, Sandbox, SandboxError, ToolComponent};
use std::sync::Arc;
use wasmtime::component::Val;

impl Sandbox {
    /// Runs exported function `tool` of a plain component: the JSON
    /// arguments become component values (refused, naming the field, when
    /// they do not fit), the result becomes content.
    pub(in crate::sandbox) async fn call_plain(
        &self,
        component: &ToolComponent,
        exports: &Arc<PlainExports>,
        tool: &str,
        arguments: &str,
        options: CallOptions,
        limits: Limits,
    ) -> Result<CallOutput, SandboxError> {
        let function = exports.function(tool)?;
        // The values the host builds may take as much memory as the call.
        let params = function.arguments(arguments, limits.memory)?;
        let (tool, index, count) = (tool.to_owned(), *function.index(), function.result_count());
        let (results, reservation, refusals) = self
            .run(component, &limits, options, move |instance, store| {
                Box::pin(async move {
                    let func = instance
                        .get_func(&mut *store, index)
                        .ok_or_else(|| wasmtime::format_err!("the export of `{tool}` is missing"))?;
                    let mut results = vec![Val::Bool(false); count];
                    func.call_async(&mut *store, &params, &mut results).await?;
                    Ok(results)
                })
            })
            .await?;
        match function.content(&results, limits.output) {
            Err(SandboxError::ToolFailed(m)) if !refusals.is_empty() => {
                Err(SandboxError::ToolFailed(format!("{m} (the host refused: {refusals})")))
            }
            Err(e) => Err(e),
            Ok(content) => Ok(CallOutput { content, reservation: Some(reservation) }),
        }
    }
}
