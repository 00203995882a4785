//! Calls that run as tasks (the `io.modelcontextprotocol/tasks` extension,
//! SEP-2663): the client gets a task id at once and polls `tasks/get`.
//!
//! A tool says it may run as a task with `x-toolmesh-task` in its input
//! schema (`"optional"` or `"required"`). With a client that declared the
//! extension, an optional tool's call becomes a task at once, and the
//! questions it asks park the task (`input_required`) until `tasks/update`
//! brings the answers; a required tool's first questions are asked before
//! the task exists (an `input_required` result, as for any call), and its
//! call becomes a task once it runs without asking. A client without the
//! extension gets an optional tool's result directly, and `-32021` from a
//! required one.
//!
//! A task's record (status, questions, answers, result) is kept in a
//! [`Store`]: this gateway's memory alone, or on a mesh the JetStream
//! bucket `toolmesh_tasks`, so any gateway answers `tasks/get` for any task
//! and records outlive the gateway that ran them, for the task's TTL. The
//! run itself belongs to the gateway that started it; a task cancelled
//! elsewhere is marked cancelled, its run stops at the next renewal of its
//! hold (within a second), and its result, should it come first, is not
//! recorded over it.

use super::Gateway;
use super::call::{CallRefusal, CallRequest};
use super::inner::Nesting;
use crate::auth::Caller;
use crate::capability::ask::{Asking, ClientAbilities, Question};
use crate::usage::store::{FileStore, LocalStore, NatsStore, Store, StoreError, modify};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The JetStream bucket where a mesh's gateways keep task records.
pub const TASKS_BUCKET: &str = "toolmesh_tasks";

/// How long a task's record is kept after its last change.
pub const TASK_TTL: Duration = Duration::from_secs(3600);

/// How long a gateway holds a running task without renewing its hold: a
/// task whose holder has not renewed it for this long (its gateway died)
/// is taken over by the next gateway asked about it.
pub const LEASE: Duration = Duration::from_secs(10);

/// How often a client is asked to poll.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The input-schema keyword by which a tool says it may run as a task.
pub const TASK_KEYWORD: &str = "x-toolmesh-task";

/// Whether a tool runs as a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSupport {
    /// It may: with a client that can poll, it does.
    Optional,
    /// It must: a client that cannot poll cannot call it.
    Required,
}

impl TaskSupport {
    /// What the input schema `schema` says.
    pub fn of(schema: &Value) -> Option<Self> {
        match schema[TASK_KEYWORD].as_str() {
            Some("optional") => Some(TaskSupport::Optional),
            Some("required") => Some(TaskSupport::Required),
            _ => None,
        }
    }

    /// Its name in a tool's `execution.taskSupport`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskSupport::Optional => "optional",
            TaskSupport::Required => "required",
        }
    }
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Running.
    Working,
    /// Waiting for answers from the client.
    InputRequired,
    /// Done: the call's result (which may be a tool error).
    Completed,
    /// The call failed outside the tool (a protocol-level error).
    Failed,
    /// Cancelled by the client.
    Cancelled,
}

impl Status {
    /// Whether nothing changes it any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// A task's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Its id.
    pub id: String,
    /// Who started it; no one else sees it.
    pub caller: String,
    /// The tool's MCP name.
    pub tool: String,
    /// The call's arguments.
    pub arguments: Map<String, Value>,
    /// What the client can answer.
    pub abilities: ClientAbilities,
    /// Where it stands.
    pub status: Status,
    /// The latest progress message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was made (RFC 3339).
    pub created: String,
    /// When it last changed (RFC 3339).
    pub updated: String,
    /// The answers so far, by question key.
    #[serde(default)]
    pub answers: BTreeMap<String, Value>,
    /// The questions waiting for answers.
    #[serde(default)]
    pub questions: BTreeMap<String, Question>,
    /// The gateway running it, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Until when (Unix seconds) the runner holds it without renewing.
    #[serde(default)]
    pub lease: u64,
    /// The call's result (`completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The JSON-RPC error (`failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// The task records, and the runs this gateway holds.
pub struct Tasks {
    store: Arc<dyn Store>,
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

fn key(id: &str) -> String {
    format!("task.{id}")
}

fn now() -> String {
    crate::web::pages::rfc3339(SystemTime::now())
}

/// A hold on a task from now.
fn lease_from_now() -> u64 {
    (SystemTime::now() + LEASE).duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a hold that ran until `lease` has lapsed.
fn lapsed(lease: u64) -> bool {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) > lease
}

/// The latest progress message of a run, written into its record when
/// the hold is renewed.
pub(crate) type Latest = Arc<Mutex<Option<String>>>;

/// A progress sink that keeps the latest message (or `done of total`).
pub(crate) fn latest_progress() -> (Latest, crate::sandbox::ProgressSink) {
    let latest: Latest = Arc::default();
    let keep = latest.clone();
    let sink = Arc::new(move |p: crate::sandbox::Progress| {
        let text = match (p.message, p.total) {
            (Some(message), _) => message,
            (None, Some(total)) => format!("{} of {total}", p.done),
            (None, None) => format!("{}", p.done),
        };
        *keep.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }) as crate::sandbox::ProgressSink;
    (latest, sink)
}

/// How often a running task's hold is renewed (and its progress recorded).
const RENEW: Duration = Duration::from_secs(1);

/// Runs `run` for task `id`, renewing `me`'s hold on it meanwhile and
/// recording its latest progress.
async fn held(
    tasks: Arc<Tasks>,
    (id, me): (&str, &str),
    latest: Latest,
    run: impl std::future::Future<Output = Ran>,
) -> Ran {
    tokio::pin!(run);
    let mut renew = tokio::time::interval(RENEW);
    renew.tick().await;
    loop {
        tokio::select! {
            ran = &mut run => return ran,
            _ = renew.tick() => {
                let message = latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let renewed = tasks.update(id, |r| {
                    r.runner = Some(me.to_owned());
                    r.lease = lease_from_now();
                    if message.is_some() {
                        r.message.clone_from(&message);
                    }
                });
                match renewed.await {
                    Ok(Some(_)) => {}
                    // Ended elsewhere (cancelled through another gateway) or
                    // gone: the run stops, and what it was is not recorded.
                    Ok(None) => {
                        tracing::info!(task = %id, "task ended elsewhere: its run stops");
                        tasks.abort_run(id);
                        return Ran::Failed(rpc_error(-32603, "the task ended elsewhere"));
                    }
                    Err(e) => tracing::warn!(task = %id, error = %e, "cannot renew the hold on a task"),
                }
            }
        }
    }
}

impl Tasks {
    /// Records kept by this gateway alone.
    pub fn local() -> Self {
        Tasks { store: Arc::new(LocalStore::new(Some(TASK_TTL))), running: Mutex::default() }
    }

    /// Records kept in files under `dir`, so they outlive the process (for
    /// `tool serve`); in memory if the directory cannot be used.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        match FileStore::open(dir, TASK_TTL) {
            Ok(store) => Tasks { store: Arc::new(store), running: Mutex::default() },
            Err(e) => {
                tracing::warn!(error = %e, "tasks are kept in memory only");
                Self::local()
            }
        }
    }

    /// Records kept in `client`'s JetStream, shared by the mesh's gateways;
    /// this gateway's alone if the bucket cannot be used.
    pub async fn shared(client: &async_nats::Client) -> Self {
        match NatsStore::open(client, TASKS_BUCKET, TASK_TTL).await {
            Ok(store) => Tasks { store: Arc::new(store), running: Mutex::default() },
            Err(e) => {
                tracing::warn!(error = %e, "tasks are kept by this gateway alone: {TASKS_BUCKET} cannot be used");
                Self::local()
            }
        }
    }

    /// The record of task `id`, if `caller` started it.
    pub async fn get(&self, caller: &str, id: &str) -> Result<Option<Record>, StoreError> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let found = self.store.get(&key(id)).await?;
        Ok(found.and_then(|(value, _)| serde_json::from_value::<Record>(value).ok()).filter(|r| r.caller == caller))
    }

    /// Writes the new task `record`, durably: `tasks/get` finds it from now.
    async fn create(&self, record: &Record) -> Result<(), StoreError> {
        let value = serde_json::to_value(record).map_err(|e| StoreError(e.to_string()))?;
        match self.store.swap(&key(&record.id), value, None).await? {
            true => Ok(()),
            false => Err(StoreError(format!("task `{}` exists already", record.id))),
        }
    }

    /// Changes task `id` with `change`, unless it has ended.
    async fn update(&self, id: &str, change: impl Fn(&mut Record)) -> Result<Option<Record>, StoreError> {
        modify(self.store.as_ref(), &key(id), |current| {
            let Some(mut record) = current.and_then(|v| serde_json::from_value::<Record>(v.clone()).ok()) else {
                return Err(());
            };
            if record.status.is_terminal() {
                return Err(());
            }
            change(&mut record);
            record.updated = now();
            Ok((serde_json::to_value(&record).unwrap_or_default(), record))
        })
        .await
        .map(Result::ok)
    }

    fn forget_run(&self, id: &str) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    fn abort_run(&self, id: &str) {
        if let Some(run) = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(id) {
            run.abort();
        }
    }
}

/// Whether `id` could be a task id this gateway made.
fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What one run of a task's call came to.
#[derive(Clone)]
pub(crate) enum Ran {
    /// The call's MCP result.
    Done(Value),
    /// It asks these questions first.
    Asks(BTreeMap<String, Question>),
    /// It failed outside the tool: the JSON-RPC error.
    Failed(Value),
}

/// Whether `result` is a failure the sandbox made, not one the tool reported.
fn crashed(result: &rmcp::model::CallToolResult) -> bool {
    let kind = result.meta.as_ref().and_then(|m| m.get(super::call::FAILURE_META)).and_then(Value::as_str);
    result.is_error == Some(true) && kind.is_some_and(|k| !matches!(k, "tool_failed" | "not_granted"))
}

/// A JSON-RPC error object.
fn rpc_error(code: i32, message: &str) -> Value {
    serde_json::json!({"code": code, "message": message})
}

impl Gateway {
    /// Makes task records for this gateway: shared on a mesh.
    pub fn set_tasks(&self, tasks: Tasks) {
        *self.inner.tasks.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tasks);
    }

    /// The task records.
    pub fn tasks(&self) -> Arc<Tasks> {
        self.inner.tasks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `tool` for `caller` once with `answers`.
    pub(crate) async fn run_once(
        &self,
        caller: &Caller,
        (tool, arguments): (&str, &Map<String, Value>),
        abilities: ClientAbilities,
        answers: BTreeMap<String, Value>,
        progress: Option<crate::sandbox::ProgressSink>,
    ) -> Ran {
        let asking = match Asking::new(abilities, answers) {
            Ok(asking) => Arc::new(asking),
            Err(e) => return Ran::Failed(rpc_error(-32602, &e.0)),
        };
        let call = CallRequest {
            caller: caller.clone(),
            name: tool.to_owned(),
            arguments: arguments.clone(),
            admitted: None,
            progress,
            cancelled: Box::pin(std::future::pending()),
            nesting: Nesting::default(),
            ask: Some(asking),
        };
        match self.run_call(call).await {
            // Stopped by the sandbox (a trap, a limit), not reported by the
            // tool: the task failed.
            Ok(result) if crashed(&result) => {
                let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default();
                Ran::Failed(rpc_error(-32603, &text))
            }
            Ok(result) => Ran::Done(serde_json::to_value(result).unwrap_or_default()),
            Err(CallRefusal::InputRequired(asked)) => Ran::Asks(asked),
            Err(refusal) => {
                let error = super::mcp::call_error(refusal);
                Ran::Failed(serde_json::to_value(&error).unwrap_or_default())
            }
        }
    }

    /// Makes task `record` durable, then runs it in the background (or
    /// records what `ran` already came to). Returns the record as made.
    pub(crate) async fn start_task(
        &self,
        caller: &Caller,
        mut record: Record,
        ran: Option<Ran>,
    ) -> Result<Record, StoreError> {
        let tasks = self.tasks();
        if let Some(ran) = ran {
            settle(&mut record, ran);
        }
        tasks.create(&record).await?;
        if record.status == Status::Working {
            self.resume_task(caller, &record);
        }
        Ok(record)
    }

    /// Makes task `record` durable for a run already going (`run`), and
    /// records what it comes to when it ends.
    pub(crate) async fn start_task_running(
        &self,
        record: Record,
        (run, latest): (tokio::task::JoinHandle<Ran>, Latest),
    ) -> Result<Record, StoreError> {
        let tasks = self.tasks();
        if let Err(e) = tasks.create(&record).await {
            run.abort();
            return Err(e);
        }
        tasks.running.lock().unwrap_or_else(|e| e.into_inner()).insert(record.id.clone(), run.abort_handle());
        let (gateway, id) = (self.clone(), record.id.clone());
        tokio::spawn(async move {
            let tasks = gateway.tasks();
            let lost = |e: tokio::task::JoinError| Ran::Failed(rpc_error(-32603, &format!("the run stopped: {e}")));
            let ran = held(tasks.clone(), (&id, gateway.id()), latest, async { run.await.unwrap_or_else(lost) }).await;
            if let Err(e) = tasks.update(&id, |r| settle(r, ran.clone())).await {
                tracing::warn!(task = %id, error = %e, "cannot record the task's outcome");
            }
            tasks.forget_run(&id);
        });
        Ok(record)
    }

    /// Runs task `record` (again) in the background, with its answers.
    fn resume_task(&self, caller: &Caller, record: &Record) {
        let (gateway, caller, record) = (self.clone(), caller.clone(), record.clone());
        let tasks = self.tasks();
        let id = record.id.clone();
        let run = tokio::spawn(async move {
            let (latest, sink) = latest_progress();
            let answers = record.answers.clone();
            let run =
                gateway.run_once(&caller, (&record.tool, &record.arguments), record.abilities, answers, Some(sink));
            let ran = held(gateway.tasks(), (&record.id, gateway.id()), latest, run).await;
            let tasks = gateway.tasks();
            let updated = tasks.update(&record.id, |r| settle(r, ran.clone())).await;
            if let Err(e) = updated {
                tracing::warn!(task = %record.id, error = %e, "cannot record the task's outcome");
            }
            tasks.forget_run(&record.id);
        });
        tasks.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, run.abort_handle());
    }

    /// Takes the client's answers to task `id`'s questions; once none is
    /// left waiting, runs the task again.
    pub(crate) async fn answer_task(
        &self,
        caller: &Caller,
        id: &str,
        responses: BTreeMap<String, Value>,
    ) -> Result<bool, StoreError> {
        let tasks = self.tasks();
        if tasks.get(&caller.name, id).await?.is_none() {
            return Ok(false);
        }
        let updated = tasks
            .update(id, |record| {
                for (key, answer) in &responses {
                    if record.questions.remove(key).is_some() {
                        record.answers.insert(key.clone(), answer.clone());
                    }
                }
                if record.status == Status::InputRequired && record.questions.is_empty() {
                    record.status = Status::Working;
                }
            })
            .await?;
        if let Some(record) = updated.filter(|r| r.status == Status::Working && !tasks.running_here(&r.id)) {
            self.resume_task(caller, &record);
        }
        Ok(true)
    }

    /// Takes over task `record` if the gateway running it stopped renewing
    /// its hold (it died): runs it again here when running the tool twice
    /// is harmless, else records that it failed. The record as it is now.
    pub(crate) async fn take_over_lapsed(&self, caller: &Caller, record: Record) -> Result<Record, StoreError> {
        if record.status != Status::Working || !lapsed(record.lease) {
            return Ok(record);
        }
        let retry_safe = self.catalog().get(&record.tool).is_some_and(|tool| tool.retry_safe());
        let me = self.id().to_owned();
        let tasks = self.tasks();
        let taken = modify(tasks.store.as_ref(), &key(&record.id), |current| {
            let Some(mut current) = current.and_then(|v| serde_json::from_value::<Record>(v.clone()).ok()) else {
                return Err(());
            };
            if current.status != Status::Working || !lapsed(current.lease) {
                return Err(());
            }
            if retry_safe {
                current.runner = Some(me.clone());
                current.lease = lease_from_now();
            } else {
                let why = "the gateway running the task stopped, and the tool is not safe to run twice";
                settle(&mut current, Ran::Failed(rpc_error(-32603, why)));
            }
            current.updated = now();
            Ok((serde_json::to_value(&current).unwrap_or_default(), current))
        })
        .await?;
        match taken {
            Ok(current) => {
                tracing::info!(task = %current.id, rerun = retry_safe, "took over a task whose gateway stopped");
                if current.status == Status::Working {
                    self.resume_task(caller, &current);
                }
                Ok(current)
            }
            // Renewed or ended meanwhile: as it is now.
            Err(()) => Ok(tasks.get(&caller.name, &record.id).await?.unwrap_or(record)),
        }
    }

    /// Cancels task `id`: its run here stops, and its record says so.
    pub(crate) async fn cancel_task(&self, caller: &Caller, id: &str) -> Result<bool, StoreError> {
        let tasks = self.tasks();
        if tasks.get(&caller.name, id).await?.is_none() {
            return Ok(false);
        }
        tasks.update(id, |record| record.status = Status::Cancelled).await?;
        tasks.abort_run(id);
        Ok(true)
    }
}

impl Tasks {
    fn running_here(&self, id: &str) -> bool {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }
}

/// Writes what a run came to into `record`.
fn settle(record: &mut Record, ran: Ran) {
    record.runner = None;
    match ran {
        Ran::Done(result) => {
            record.status = Status::Completed;
            record.result = Some(result);
        }
        Ran::Asks(questions) => {
            record.status = Status::InputRequired;
            record.questions = questions;
        }
        Ran::Failed(error) => {
            record.status = Status::Failed;
            record.error = Some(error);
        }
    }
}

/// The MCP task of `record` (its base fields).
pub(crate) fn mcp_task(record: &Record) -> rmcp::model::Task {
    let status = match record.status {
        Status::Working => rmcp::model::TaskStatus::Working,
        Status::InputRequired => rmcp::model::TaskStatus::InputRequired,
        Status::Completed => rmcp::model::TaskStatus::Completed,
        Status::Failed => rmcp::model::TaskStatus::Failed,
        Status::Cancelled => rmcp::model::TaskStatus::Cancelled,
    };
    let task = rmcp::model::Task::new(&record.id, status, &record.created, &record.updated)
        .with_ttl_ms(TASK_TTL.as_millis() as u64)
        .with_poll_interval_ms(POLL_INTERVAL.as_millis() as u64);
    match &record.message {
        Some(message) => task.with_status_message(message),
        None => task,
    }
}

/// The MCP `DetailedTask` of `record`: its status with the result, the
/// error or the questions inlined.
pub(crate) fn detailed(record: &Record) -> Result<rmcp::model::DetailedTask, String> {
    use rmcp::model::TaskPayload;
    let object = |value: &Option<Value>| value.as_ref().and_then(Value::as_object).cloned().unwrap_or_default();
    let payload = match record.status {
        Status::Working => TaskPayload::Working,
        Status::InputRequired => {
            TaskPayload::InputRequired { input_requests: super::questions::input_requests(&record.questions)? }
        }
        Status::Completed => TaskPayload::Completed { result: object(&record.result) },
        Status::Failed => TaskPayload::Failed { error: object(&record.error) },
        Status::Cancelled => TaskPayload::Cancelled,
    };
    Ok(rmcp::model::DetailedTask::new(mcp_task(record), payload))
}

/// A fresh task id: 128 random bits, in hex.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => {
            format!("{:x}", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos())
        }
    }
}

/// A new task's record, working.
pub(crate) fn new_record(
    caller: &Caller,
    tool: &str,
    arguments: Map<String, Value>,
    abilities: ClientAbilities,
    answers: BTreeMap<String, Value>,
) -> Record {
    let id = new_id();
    let at = now();
    Record {
        id,
        caller: caller.name.clone(),
        tool: tool.to_owned(),
        arguments,
        abilities,
        status: Status::Working,
        message: None,
        created: at.clone(),
        updated: at,
        answers,
        questions: BTreeMap::new(),
        runner: None,
        lease: lease_from_now(),
        result: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_say_whether_they_run_as_tasks() {
        assert_eq!(TaskSupport::of(&json!({"x-toolmesh-task": "optional"})), Some(TaskSupport::Optional));
        assert_eq!(TaskSupport::of(&json!({"x-toolmesh-task": "required"})), Some(TaskSupport::Required));
        assert_eq!(TaskSupport::of(&json!({"x-toolmesh-task": "always"})), None);
        assert_eq!(TaskSupport::of(&json!({"type": "object"})), None);
    }

    #[tokio::test]
    async fn records_are_the_callers_and_end_once() {
        let tasks = Tasks::local();
        let caller = Caller::unrestricted("ada");
        let record = new_record(&caller, "t", Map::new(), ClientAbilities::default(), BTreeMap::new());
        assert!(is_valid_id(&record.id));
        tasks.create(&record).await.unwrap();
        assert!(tasks.get("ada", &record.id).await.unwrap().is_some());
        assert!(tasks.get("eve", &record.id).await.unwrap().is_none());
        assert!(tasks.get("ada", "../x").await.unwrap().is_none());
        let done = tasks.update(&record.id, |r| settle(r, Ran::Done(json!({"content": []})))).await.unwrap();
        assert_eq!(done.unwrap().status, Status::Completed);
        // Ended: a late cancel or answer changes nothing.
        assert!(tasks.update(&record.id, |r| r.status = Status::Cancelled).await.unwrap().is_none());
        assert_eq!(tasks.get("ada", &record.id).await.unwrap().unwrap().status, Status::Completed);
    }
}
