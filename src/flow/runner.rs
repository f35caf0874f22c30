//! Compiling flow scripts and calling one hook with limits.
//!
//! A hook call gets the conversation's state as `this`, runs under operation, call-depth and
//! size limits ([`super::limits`]), and returns the
//! [`Effects`] it asked for, or a [`FlowError`] naming the script, the hook, the line and
//! column and the limit. It touches nothing else: committing is the engine's job.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Scope};

use super::api::{self, ContextHandle, Effects, HookContext, Lookup, Millis, Scale};
use super::budget::{self, Budget, LogRate};
use super::limits::{MAX_CALL_LEVELS, MAX_HOOK_CPU, MAX_ITEMS, MAX_OPERATIONS, MAX_STRING_BYTES};
use super::sandbox;
use super::schema::EventSchema;

/// Rhai's bounds on one hook call, so a runaway script is stopped with an error, not a hang;
/// the defaults are [`super::limits`]'.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rhai operations per hook call ([`MAX_OPERATIONS`]).
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: MAX_OPERATIONS,
            max_call_levels: MAX_CALL_LEVELS,
            max_string_size: MAX_STRING_BYTES,
            max_array_size: MAX_ITEMS,
            max_map_size: MAX_ITEMS,
        }
    }
}

/// The hooks of SPEC.md and their parameter counts; `on_update` hears the events that join an
/// open conversation (`fn join_key(event)`, or its own event id again with another body).
pub const HOOKS: [(&str, usize); 5] = [
    ("on_event", 1),
    ("on_reply", 1),
    ("on_timer", 1),
    ("on_delivery", 1),
    ("on_update", 1),
];

/// A hook invocation with its argument.
#[derive(Debug, Clone)]
pub enum Hook {
    Event(Dynamic),
    Reply(Dynamic),
    Timer(String),
    Delivery(Dynamic),
    Update(Dynamic),
}

impl Hook {
    pub fn name(&self) -> &'static str {
        match self {
            Hook::Event(_) => "on_event",
            Hook::Reply(_) => "on_reply",
            Hook::Timer(_) => "on_timer",
            Hook::Delivery(_) => "on_delivery",
            Hook::Update(_) => "on_update",
        }
    }
}

/// One compiled version of a flow.
#[derive(Debug, Clone)]
pub struct CompiledFlow {
    /// The file stem.
    pub name: String,
    /// Content hash of the source (hex), so the same text is the same version everywhere.
    pub version: String,
    pub source: Arc<str>,
    pub ast: Arc<AST>,
    /// Where it came from, for messages (`scripts/survey.rhai:12: ...`).
    pub origin: String,
    /// Hooks it defines.
    pub hooks: Vec<&'static str>,
    /// Its `test_*` functions (no parameters), for `smsflow check`.
    pub tests: Vec<String>,
    /// The scores its ratings take (`fn scale()`, default CSAT 1–5).
    pub scale: Scale,
    /// It declares `fn scale()`: a survey flow, one the reports can be about.
    pub survey: bool,
    /// The event fields it requires (`fn event_fields()`, default none).
    pub event_schema: EventSchema,
    /// The reply codes its conversations get (`fn reply_codes()`: `#{from, to}`), if any.
    pub reply_codes: Option<(u32, u32)>,
    /// It defines `fn join_key(event)` (and so `on_update`).
    pub joins: bool,
    /// How long after it started an open conversation still takes joins (`fn join_window()`);
    /// `None`: while it is open.
    pub join_window: Option<Millis>,
    /// It defines `fn wants_reply(msg)`: asked when a sender with several open conversations
    /// replies without a code.
    pub claims_replies: bool,
    /// The webhook names written as literals in its `notify("name", ...)` calls, with lines.
    pub webhook_literals: Vec<(String, usize)>,
}

impl CompiledFlow {
    pub fn has(&self, hook: &str) -> bool {
        self.hooks.contains(&hook)
    }

    /// Why it cannot run with the `[[webhook]]`s `known`: a `notify("x", ...)` with a name
    /// the config lacks, found at load rather than when the call is made.
    pub fn check_webhooks(&self, known: &[String]) -> Result<(), FlowError> {
        match (self.webhook_literals.iter()).find(|(name, _)| !known.contains(name)) {
            None => Ok(()),
            Some((name, line)) => Err(FlowError::Hook {
                origin: self.origin.clone(),
                hook: "notify".to_owned(),
                line: *line,
                column: 0,
                message: format!(
                    "no [[webhook]] named {name:?} in the config ({})",
                    if known.is_empty() {
                        "it has none".to_owned()
                    } else {
                        format!("it has {}", known.join(", "))
                    }
                ),
            }),
        }
    }
}

/// Why a script could not be used, or a hook call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    #[error("{origin}:{line}:{column}: {message}")]
    Compile {
        origin: String,
        line: usize,
        column: usize,
        message: String,
        /// The source line the parser stopped at (for `check` to show under the error).
        source_line: String,
    },
    #[error("{origin}: {message}")]
    BadHook { origin: String, message: String },
    #[error("{origin}:{}: {hook}: {message}", at(*line, *column))]
    Hook {
        origin: String,
        hook: String,
        line: usize,
        /// 0 when only the line is known.
        column: usize,
        message: String,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// It compiled, but one of its own `test_*` functions failed: not loaded.
    #[error("{origin}: reload refused: {test} failed: {message}")]
    TestFailed {
        origin: String,
        test: String,
        message: String,
    },
}

/// `12:9`, or `12` without a column.
fn at(line: usize, column: usize) -> String {
    match column {
        0 => line.to_string(),
        column => format!("{line}:{column}"),
    }
}

impl FlowError {
    /// The file (or directory) the error is about.
    pub fn origin(&self) -> String {
        match self {
            FlowError::Compile { origin, .. }
            | FlowError::TestFailed { origin, .. }
            | FlowError::BadHook { origin, .. }
            | FlowError::Hook { origin, .. } => origin.clone(),
            FlowError::Read { path, .. } => path.display().to_string(),
        }
    }
}

/// The engine every flow runs on: the host API, limits, and no way out of the sandbox.
pub fn engine(limits: Limits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_expr_depths(64, 32)
        // `import` must not read files.
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    // print/debug go to the log rather than stdout, or to the test that runs them; in a hook
    // they spend its log lines, as log() does.
    engine.on_print(|text| {
        if !captured(|| format!("print: {text}")) {
            match hook_line(text) {
                Printed::Outside => tracing::info!(target: "smsflow::flow", "{text}"),
                Printed::Hook { flow, line } => {
                    tracing::info!(target: "smsflow::flow", %flow, "{line}")
                }
                Printed::Dropped => {}
            }
        }
    });
    engine.on_debug(|text, source, pos| {
        let line = pos.line().unwrap_or(0);
        if !captured(|| format!("debug: line {line}: {text}")) {
            let source = source.unwrap_or("script");
            match hook_line(text) {
                Printed::Outside => {
                    tracing::debug!(target: "smsflow::flow", "{source}:{line}: {text}")
                }
                Printed::Hook { flow, line: text } => {
                    tracing::debug!(target: "smsflow::flow", %flow, "{source}:{line}: {text}")
                }
                Printed::Dropped => {}
            }
        }
    });
    sandbox::install(&mut engine);
    api::register(&mut engine);
    engine
}

std::thread_local! {
    /// The `print()` and `debug()` lines of the script test running on this thread.
    static PRINTED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

std::thread_local! {
    /// The hook call running on this thread, whose log lines `print()` and `debug()` spend.
    static HOOK: RefCell<Option<ContextHandle>> = const { RefCell::new(None) };
}

/// Where a `print()` or `debug()` line goes.
enum Printed {
    /// Not in a hook call: as it is.
    Outside,
    /// In a hook call of `flow`, within its log limits: `line`, cut to length.
    Hook { flow: String, line: String },
    /// In a hook call whose log limits are spent (counted).
    Dropped,
}

fn hook_line(text: &str) -> Printed {
    let Some(handle) = HOOK.with_borrow(Clone::clone) else {
        return Printed::Outside;
    };
    let mut context = handle.lock();
    match context.log_line(text) {
        Some(line) => Printed::Hook {
            flow: context.flow.clone(),
            line,
        },
        None => Printed::Dropped,
    }
}

/// Runs `f` as the hook call of `handle` on this thread: its position kept, its
/// `print()`s spending its log lines. Hook calls nest under `smsflow check`'s tests.
fn running<T>(handle: &ContextHandle, f: impl FnOnce() -> T) -> T {
    let outer_deadline = sandbox::enter();
    let outer = HOOK.replace(Some(handle.clone()));
    let result = f();
    HOOK.set(outer);
    sandbox::leave(outer_deadline);
    result
}

/// Lines a test may print before the rest are counted, not kept.
const MAX_PRINTED: usize = 1000;

/// Keeps the line for the test capturing on this thread, if one is; whether it was kept.
fn captured(line: impl FnOnce() -> String) -> bool {
    PRINTED.with_borrow_mut(|printed| match printed {
        Some(lines) => {
            if lines.len() < MAX_PRINTED {
                lines.push(line());
            } else if lines.len() == MAX_PRINTED {
                lines.push(format!("(more lines after {MAX_PRINTED} not kept)"));
            }
            true
        }
        None => false,
    })
}

/// Runs `f` (a script test: it calls hooks on this thread) with the scripts' `print()` and
/// `debug()` lines collected instead of logged; `check` shows them when the test fails.
pub fn capturing_prints<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = PRINTED.replace(Some(Vec::new()));
    let result = f();
    let lines = PRINTED.replace(outer).unwrap_or_default();
    (result, lines)
}

/// A short content hash (FNV-1a 64): versions only need to be stable and distinct.
pub fn version_of(source: &str) -> String {
    let hash = source.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Compiles `source` as flow `name`, checking its hooks' parameter counts.
pub fn compile(
    engine: &Engine,
    name: &str,
    origin: &str,
    source: &str,
) -> Result<CompiledFlow, FlowError> {
    let ast = engine.compile(source).map_err(|e| {
        let line = e.1.line().unwrap_or(0);
        FlowError::Compile {
            origin: origin.to_owned(),
            line,
            column: e.1.position().unwrap_or(0),
            message: e.0.to_string(),
            source_line: (line.checked_sub(1))
                .and_then(|i| source.lines().nth(i))
                .unwrap_or_default()
                .to_owned(),
        }
    })?;
    let mut hooks = Vec::new();
    let mut tests = Vec::new();
    for f in ast.iter_functions() {
        if let Some(&(hook, arity)) = HOOKS.iter().find(|(h, _)| *h == f.name) {
            if f.params.len() != arity {
                return Err(FlowError::BadHook {
                    origin: origin.to_owned(),
                    message: format!(
                        "hook {hook} takes {arity} parameter, found {} ({})",
                        f.params.len(),
                        f.params.join(", ")
                    ),
                });
            }
            hooks.push(hook);
        } else if f.name.starts_with("on_") {
            let known: Vec<_> = HOOKS.iter().map(|(h, _)| *h).collect();
            return Err(FlowError::BadHook {
                origin: origin.to_owned(),
                message: format!("unknown hook {:?} (hooks are {})", f.name, known.join(", ")),
            });
        } else if f.name.starts_with("test_") && f.params.is_empty() {
            tests.push(f.name.to_owned());
        }
    }
    if hooks.is_empty() {
        return Err(FlowError::BadHook {
            origin: origin.to_owned(),
            message: "defines no hook (on_event, on_reply, on_timer, on_delivery or on_update)"
                .into(),
        });
    }
    let bad = |message: String| FlowError::BadHook {
        origin: origin.to_owned(),
        message,
    };
    let defines = |name: &str, params: usize| {
        ast.iter_functions()
            .any(|f| f.name == name && f.params.len() == params)
    };
    let joins = defines("join_key", 1);
    if joins && !hooks.contains(&"on_update") {
        return Err(bad(
            "fn join_key(event) needs an on_update(event) hook for the events that join".into(),
        ));
    }
    let reply_codes = declared(engine, &ast, "reply_codes", codes_from, None)
        .map_err(|m| bad(format!("fn reply_codes(): {m}")))?;
    let join_window = if defines("join_window", 0) {
        let value: Dynamic = (engine.call_fn(&mut Scope::new(), &ast, "join_window", ()))
            .map_err(|e| bad(format!("fn join_window(): {e}")))?;
        let window = api::duration_of(&value).map_err(|e| bad(format!("fn join_window(): {e}")))?;
        Some(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
    } else {
        None
    };
    let claims_replies = defines("wants_reply", 1);
    let webhook_literals = webhook_literals(&ast);
    // Definition order, so `check` lists them the same way every run.
    tests.sort_by_key(|t| definition_line(source, t));
    // A flow that records ratings says what they are: the reports compute by it.
    let declares_scale = ast
        .iter_functions()
        .any(|f| f.name == "scale" && f.params.is_empty());
    if !declares_scale && source.contains("record_rating") {
        return Err(FlowError::BadHook {
            origin: origin.to_owned(),
            message: "records ratings (record_rating) but declares no fn scale(); add e.g. \
                      fn scale() { #{ kind: \"csat\", min: 1, max: 5 } }"
                .into(),
        });
    }
    let scale =
        declared(engine, &ast, "scale", Scale::from_map, Scale::default()).map_err(|message| {
            FlowError::BadHook {
                origin: origin.to_owned(),
                message: format!("fn scale(): {message}"),
            }
        })?;
    let event_schema = declared(
        engine,
        &ast,
        "event_fields",
        EventSchema::from_map,
        EventSchema::default(),
    )
    .map_err(|message| FlowError::BadHook {
        origin: origin.to_owned(),
        message: format!("fn event_fields(): {message}"),
    })?;
    Ok(CompiledFlow {
        name: name.to_owned(),
        version: version_of(source),
        source: source.into(),
        ast: Arc::new(ast),
        origin: origin.to_owned(),
        hooks,
        tests,
        scale,
        survey: declares_scale,
        event_schema,
        reply_codes,
        joins,
        join_window,
        claims_replies,
        webhook_literals,
    })
}

/// `#{from: 100, to: 999}`: the reply codes a flow's conversations take.
fn codes_from(map: &rhai::Map) -> Result<Option<(u32, u32)>, String> {
    let bound = |key: &str| {
        (map.get(key).and_then(|v| v.as_int().ok()))
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| (1..=999_999).contains(v))
            .ok_or_else(|| format!("{key} must be an integer 1..=999999"))
    };
    let (from, to) = (bound("from")?, bound("to")?);
    if to < from + 9 {
        return Err(format!(
            "from {from} to {to} leaves fewer than 10 codes for the calls open at once"
        ));
    }
    Ok(Some((from, to)))
}

/// The names `notify` is called with as string literals, and their lines.
fn webhook_literals(ast: &AST) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        // A call is a statement on its own line, an expression inside another.
        let call = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(call, pos)))
            | Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(call, pos))) => Some((call, pos)),
            _ => None,
        };
        if let Some((call, pos)) = call
            && call.name == "notify"
            && call.args.len() == 2
            && let rhai::Expr::StringConstant(name, _) = &call.args[0]
        {
            found.push((name.to_string(), pos.line().unwrap_or(0)));
        }
        true
    });
    found
}

/// What a flow's parameterless `fn name()` declares (a map, read by `parse`), or `default`
/// when it has none.
fn declared<T>(
    engine: &Engine,
    ast: &AST,
    name: &str,
    parse: impl FnOnce(&rhai::Map) -> Result<T, String>,
    default: T,
) -> Result<T, String> {
    if !ast
        .iter_functions()
        .any(|f| f.name == name && f.params.is_empty())
    {
        return Ok(default);
    }
    let returned: Dynamic =
        (engine.call_fn(&mut Scope::new(), ast, name, ())).map_err(|e| e.to_string())?;
    let map = returned
        .try_cast::<rhai::Map>()
        .ok_or("must return a map")?;
    parse(&map)
}

/// The scale a flow's source declares (`fn scale()`), read without loading the flow: what the
/// reports use for a flow stored in the store. `None` when the source does not compile or
/// its `scale()` is not one; the default (CSAT 1–5) when it declares none.
pub fn declared_scale(source: &str) -> Option<Scale> {
    // Bounded like any script: a stored `fn scale() { loop {} }` must not hang a report.
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS);
    let ast = engine.compile(source).ok()?;
    declared(&engine, &ast, "scale", Scale::from_map, Scale::default()).ok()
}

/// Reads and compiles `path`; the flow's name is the file stem.
pub fn compile_file(engine: &Engine, path: &Path) -> Result<CompiledFlow, FlowError> {
    let source = std::fs::read_to_string(path).map_err(|e| FlowError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    compile(engine, &name, &path.display().to_string(), &source)
}

/// What a hook call needs from outside.
pub struct CallInput {
    pub now: Millis,
    pub timezone: jiff::tz::TimeZone,
    pub lookup: Arc<dyn Lookup>,
    pub reply_code: Option<u32>,
    pub webhooks: Arc<[String]>,
    /// The flow's log rate, shared by its conversations.
    pub log_rate: Arc<Mutex<LogRate>>,
}

impl CallInput {
    fn context(self, flow: &CompiledFlow) -> ContextHandle {
        ContextHandle::new(HookContext {
            now: self.now,
            flow: flow.name.clone(),
            scale: flow.scale.clone(),
            timezone: self.timezone,
            lookup: self.lookup,
            reply_code: self.reply_code,
            webhooks: self.webhooks,
            effects: Effects::default(),
            budget: Budget::default(),
            log_rate: self.log_rate,
        })
    }
}

/// Calls `hook` of `flow` with `state` as `this`. On success `state` holds the new state,
/// within [`super::limits::MAX_STATE_BYTES`] and, with what the hook asked for, [`super::limits::MAX_STEP_BYTES`];
/// on error it must be discarded (it may be half-changed).
pub fn call_hook(
    engine: &Engine,
    flow: &CompiledFlow,
    hook: &Hook,
    state: &mut Dynamic,
    input: CallInput,
) -> Result<Effects, FlowError> {
    let handle = input.context(flow);
    let mut scope = Scope::new();
    let options = CallFnOptions::new()
        .bind_this_ptr(state)
        .with_tag(Dynamic::from(handle.clone()))
        .eval_ast(false);
    let arg = match hook {
        Hook::Event(arg) | Hook::Reply(arg) | Hook::Delivery(arg) | Hook::Update(arg) => {
            arg.clone()
        }
        Hook::Timer(name) => Dynamic::from(name.clone()),
    };
    let result: Result<Dynamic, Box<EvalAltResult>> = running(&handle, || {
        engine.call_fn_with_options(options, &mut scope, &flow.ast, hook.name(), (arg,))
    });
    let _returned = result.map_err(|e| hook_error(flow, hook.name(), &e))?;
    let mut context = handle.lock();
    // The limits on what the step keeps: measured before anything is encoded, so a state of
    // 295 MB in JSON is refused before it takes that memory.
    let state_bytes = budget::check_state(state)
        .and_then(|bytes| budget::check_step(&context.budget, bytes))
        .map_err(|message| FlowError::Hook {
            origin: flow.origin.clone(),
            hook: hook.name().to_owned(),
            line: definition_line(&flow.source, hook.name()),
            column: 0,
            message,
        });
    state_bytes?;
    Ok(std::mem::take(&mut context.effects))
}

/// Calls `function(arg)` of `flow` to ask it something (`join_key`, `wants_reply`), with
/// `state` as `this` when given. What it asks for is discarded: a question has no effects.
pub fn ask(
    engine: &Engine,
    flow: &CompiledFlow,
    function: &str,
    state: Option<&mut Dynamic>,
    arg: Dynamic,
    input: CallInput,
) -> Result<Dynamic, FlowError> {
    let handle = input.context(flow);
    let mut scope = Scope::new();
    let mut options = CallFnOptions::new()
        .with_tag(Dynamic::from(handle.clone()))
        .eval_ast(false);
    if let Some(state) = state {
        options = options.bind_this_ptr(state);
    }
    running(&handle, || {
        engine.call_fn_with_options(options, &mut scope, &flow.ast, function, (arg,))
    })
    .map_err(|e| hook_error(flow, function, &e))
}

/// Calls a parameterless function (the `test_*` functions of `smsflow check`) with `tag`.
pub fn call_plain(
    engine: &Engine,
    flow: &CompiledFlow,
    function: &str,
    tag: Dynamic,
) -> Result<Dynamic, FlowError> {
    let mut scope = Scope::new();
    let options = CallFnOptions::new().with_tag(tag).eval_ast(false);
    engine
        .call_fn_with_options(options, &mut scope, &flow.ast, function, ())
        .map_err(|e| hook_error(flow, function, &e))
}

/// The 1-based line where `fn name(` is defined, or 0.
fn definition_line(source: &str, name: &str) -> usize {
    let needle = format!("fn {name}(");
    source
        .lines()
        .position(|l| l.trim_start().starts_with(&needle))
        .map_or(0, |i| i + 1)
}

fn hook_error(flow: &CompiledFlow, hook: &str, e: &EvalAltResult) -> FlowError {
    // The innermost position is where the script failed.
    let mut at = e.position();
    let mut inner = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, cause, pos) = inner {
        let cause_at = match cause.position() {
            p if p.is_none() => *pos,
            p => p,
        };
        if !cause_at.is_none() {
            at = cause_at;
        }
        inner = cause;
    }
    if inner.is_system_exception() || at.is_none() {
        // Rhai's own limits come without a position (each function frame overwrites it): the
        // sandbox kept the statement being run.
        at = Some(sandbox::position())
            .filter(|p| !p.is_none())
            .unwrap_or(at);
    }
    let (line, column) = match (at.line(), at.position()) {
        (Some(line), column) => (line, column.unwrap_or(0)),
        // No position at all: the hook's definition, so the message still names a line.
        (None, _) => (definition_line(&flow.source, hook), 0),
    };
    FlowError::Hook {
        origin: flow.origin.clone(),
        hook: hook.to_owned(),
        line,
        column,
        message: limit_message(inner),
    }
}

/// What an error says, Rhai's limits by the limit (the numbers as docs/flows.md has them).
fn limit_message(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) => format!(
            "stopped: more than {MAX_OPERATIONS} operations in one hook call (the operation \
             limit; an endless loop?)"
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) if what.contains("string") => format!(
            "a string, or the strings of one array or map together, over {MAX_STRING_BYTES} \
             bytes (the string size limit)"
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) if what.contains("array") => {
            format!("an array over {MAX_ITEMS} items (the array size limit)")
        }
        EvalAltResult::ErrorDataTooLarge(what, _) if what.contains("map") => {
            format!("a map over {MAX_ITEMS} items (the map size limit)")
        }
        EvalAltResult::ErrorTerminated(token, _)
            if token.clone().into_string().ok().as_deref() == Some(sandbox::CPU_LIMIT_TOKEN) =>
        {
            format!(
                "stopped: more than {} ms of CPU in one hook call (the time limit; too much \
                 work for one step?)",
                MAX_HOOK_CPU.as_millis()
            )
        }
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "calls nested more than {MAX_CALL_LEVELS} deep (the call depth limit; endless \
             recursion?)"
        ),
        other => other.to_string(),
    }
}
