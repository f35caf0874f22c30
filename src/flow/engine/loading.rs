//! Loading flows: the scripts directory compiled and reloaded when files change, each file
//! let in only through the gate (its own tests pass), the versions conversations run on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::runner::{self, CompiledFlow, FlowError};
use super::{EngineError, FlowEngine, Gate, Registry};

impl FlowEngine {
    /// Compiles every script in the directory that is new or changed since the last call. A
    /// script that fails keeps its last good version running; its error is returned (and
    /// logged) so the operator sees why the edit did not take.
    pub fn reload(&self) -> Vec<FlowError> {
        let Some(dir) = self.config.scripts_dir.clone() else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        let paths = match script_paths(&dir) {
            Ok(paths) => paths,
            Err(e) => {
                return vec![FlowError::Read {
                    path: dir,
                    message: e.to_string(),
                }];
            }
        };
        // Compile every changed file first: each is tested beside the others' new versions
        // (flows start each other, and at start none runs yet).
        let mut changed = Vec::new();
        for path in paths {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let unchanged = {
                let registry = self.read_registry();
                modified.is_some() && registry.modified.get(&path) == modified.as_ref()
            };
            if unchanged {
                continue;
            }
            let name =
                (path.file_stem()).map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            let compiled = runner::compile_file(&self.engine, &path).map(Arc::new);
            if let Some(modified) = modified {
                self.write_registry().modified.insert(path, modified);
            }
            changed.push((name, compiled));
        }
        let mut beside: HashMap<String, Arc<CompiledFlow>> = (self.flows().into_iter())
            .map(|f| (f.name.clone(), f))
            .collect();
        for (name, compiled) in &changed {
            if let Ok(flow) = compiled {
                beside.insert(name.clone(), flow.clone());
            }
        }
        let beside: Vec<Arc<CompiledFlow>> = beside.into_values().collect();
        for (name, compiled) in changed {
            // A hand-off to a webhook the config lacks would fail every hook that makes it:
            // refused like a file that does not compile.
            let loaded = compiled
                .and_then(|flow| self.known_webhooks(&flow).map(|()| flow))
                .map_err(|e| (e, "compile_error"))
                .and_then(|flow| self.admit(flow, &beside).map_err(|e| (e, "test_failed")));
            let result = match loaded {
                Ok(()) => "ok",
                Err((e, result)) => {
                    tracing::error!("{e}; {}", self.running_now(&name));
                    errors.push(e);
                    result
                }
            };
            crate::metrics::flow_loaded(&name, result);
        }
        errors
    }

    /// Lets a compiled file go live: with the gate on, only when its tests pass beside the
    /// flows running now. At start (nothing of it runs yet) a refused file falls back on the
    /// version that last passed, from the store.
    fn admit(
        &self,
        flow: Arc<CompiledFlow>,
        beside: &[Arc<CompiledFlow>],
    ) -> Result<(), FlowError> {
        let previous = self.flow(&flow.name);
        // The tests' own log lines (a test store opening, a script's log()) are not the
        // service's: they stay out of its log. Nor do their ratings, conversations and
        // escalations count in its metrics.
        let passes = |gate: Gate| {
            let silent = tracing::subscriber::NoSubscriber::default();
            tracing::subscriber::with_default(silent, || {
                metrics::with_local_recorder(&metrics::NoopRecorder, || {
                    gate(&flow, beside, &self.config.timezone)
                })
            })
        };
        if let Some(gate) = self.config.gate
            && let Err((test, message)) = passes(gate)
        {
            if previous.is_none() {
                self.fall_back(&flow.name);
            }
            return Err(FlowError::TestFailed {
                origin: flow.origin.clone(),
                test,
                message,
            });
        }
        match &previous {
            Some(old) if old.version == flow.version => {}
            Some(old) => {
                tracing::info!(flow = %flow.name, from = %old.version, to = %flow.version, "flow reloaded")
            }
            None => tracing::info!(flow = %flow.name, version = %flow.version, "flow loaded"),
        }
        if let Err(e) = (self.store).set_live_script(&flow.name, &flow.version, &flow.source) {
            tracing::warn!(flow = %flow.name, "cannot keep the live version in the store: {e}");
        }
        self.install_tested(flow);
        Ok(())
    }

    /// Runs the version of `flow` that last passed its tests (kept in the store), if any.
    fn fall_back(&self, flow: &str) {
        match self.store.live_script(flow) {
            Ok(Some((version, source))) => {
                let origin = format!("{flow}.rhai@{version}");
                let compiled = runner::compile(&self.engine, flow, &origin, &source)
                    .and_then(|c| self.known_webhooks(&c).map(|()| c));
                match compiled {
                    Ok(compiled) => {
                        tracing::warn!(%flow, %version, "the file fails its tests: running the version that last passed");
                        self.install_tested(Arc::new(compiled));
                    }
                    Err(e) => {
                        tracing::error!(%flow, "the last good version does not compile either: {e}")
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(%flow, "cannot read the last good version: {e}"),
        }
    }

    /// With `check_webhooks`, whether every `notify("name", ...)` of `flow` names a configured
    /// webhook.
    fn known_webhooks(&self, flow: &CompiledFlow) -> Result<(), FlowError> {
        match self.config.check_webhooks {
            true => flow.check_webhooks(&self.webhooks()),
            false => Ok(()),
        }
    }

    /// What runs of `flow` now, for a refusal's log line.
    fn running_now(&self, flow: &str) -> String {
        match self.flow(flow) {
            Some(f) => format!("version {} keeps running", short(&f.version)),
            None => format!("no version of {flow} runs"),
        }
    }

    /// Loads a flow from text (tests, and flows that do not live in files), ungated.
    pub fn load_source(&self, name: &str, source: &str) -> Result<Arc<CompiledFlow>, FlowError> {
        let flow = Arc::new(runner::compile(
            &self.engine,
            name,
            &format!("{name}.rhai"),
            source,
        )?);
        self.install_tested(flow.clone());
        Ok(flow)
    }

    /// Makes `flow` the version new conversations start on.
    pub(crate) fn install_tested(&self, flow: Arc<CompiledFlow>) {
        if let Some(old) = self.flow(&flow.name) {
            metrics::gauge!(crate::metrics::FLOW_INFO, "flow" => old.name.clone(), "version" => old.version.clone()).set(0.0);
        }
        metrics::gauge!(crate::metrics::FLOW_INFO, "flow" => flow.name.clone(), "version" => flow.version.clone()).set(1.0);
        if flow.survey {
            crate::metrics::register_survey(&flow.name, flow.scale.min..=flow.scale.max);
        }
        let mut registry = self.write_registry();
        registry
            .versions
            .insert((flow.name.clone(), flow.version.clone()), flow.clone());
        registry.current.insert(flow.name.clone(), flow);
    }

    /// The flows new conversations can start, by name.
    pub fn flows(&self) -> Vec<Arc<CompiledFlow>> {
        let mut flows: Vec<_> = self.read_registry().current.values().cloned().collect();
        flows.sort_by(|a, b| a.name.cmp(&b.name));
        flows
    }

    pub fn flow(&self, name: &str) -> Option<Arc<CompiledFlow>> {
        self.read_registry().current.get(name).cloned()
    }

    /// Whether `flow`'s running version declares `fn scale()`: a survey flow, whose
    /// conversations the survey funnel counts.
    pub fn is_survey(&self, flow: &str) -> bool {
        self.flow(flow).is_some_and(|f| f.survey)
    }

    pub(super) fn read_registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write_registry(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The version a conversation runs on: in memory, else from the store (after a restart).
    pub(super) fn version(
        &self,
        flow: &str,
        version: &str,
    ) -> Result<Arc<CompiledFlow>, EngineError> {
        if let Some(found) = self
            .read_registry()
            .versions
            .get(&(flow.to_owned(), version.to_owned()))
        {
            return Ok(found.clone());
        }
        let source = self
            .store
            .script(flow, version)?
            .ok_or_else(|| EngineError::VersionGone {
                flow: flow.to_owned(),
                version: version.to_owned(),
            })?;
        let compiled = Arc::new(runner::compile(
            &self.engine,
            flow,
            &format!("{flow}.rhai@{version}"),
            &source,
        )?);
        self.write_registry()
            .versions
            .insert((flow.to_owned(), version.to_owned()), compiled.clone());
        Ok(compiled)
    }
}

/// The scripts directory's `*.rhai` paths (for `smsflow check`).
pub fn script_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// A version as logs show it: the first 12 hex digits.
fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}
