//! The reference in `docs/` kept in step with the code (issue 19): every config key of the
//! example file, every metric name in the source, every flow function registered, every
//! command and flag of the CLI and every route of the router is documented; every route
//! documented answers on a test server; and the README and docs stand on their own in a
//! clone (no `../shared`, no broken relative links).

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::http::{Server, TOKEN};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of `doc` under the `## ` heading that contains `title`, up to the next one.
fn section<'d>(doc: &'d str, title: &str) -> &'d str {
    let start = doc
        .find(&format!("\n## {title}"))
        .unwrap_or_else(|| panic!("no section \"## {title}\""));
    let body = &doc[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// Every `"<prefix>..."` string literal in `text`: the quoted names that start with `prefix`.
fn quoted_names<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    let needle = format!("\"{prefix}");
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let name = &rest[at + 1..];
        let end = name
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(name.len());
        if name[end..].starts_with('"') {
            names.push(&name[..end]);
        }
        rest = &name[end..];
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn docs_config_has_every_key_of_the_example_file() {
    let doc = read("docs/config.md");
    let example = read("smsflow.example.toml");
    // Keys set in the example, and those shown commented out (`# key = ...`), per table.
    let mut table = String::new();
    let mut checked = 0;
    for line in example.lines() {
        let line = line.trim();
        // A table shown commented out (`# [[webhook]]`) is a table too.
        let uncommented = line.strip_prefix("# ").unwrap_or(line);
        if uncommented.starts_with('[') {
            table = uncommented.split('#').next().unwrap().trim().to_owned();
            continue;
        }
        let line = uncommented;
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if table.is_empty() || key.contains(' ') {
            continue;
        }
        let part = section(&doc, &format!("`{table}`"));
        assert!(
            part.contains(&format!("| `{key}` |")),
            "docs/config.md: {table} {key} is not documented"
        );
        checked += 1;
    }
    assert!(checked > 40, "only {checked} keys found in the example");
}

#[test]
fn docs_metrics_name_every_metric_of_the_source_and_no_other() {
    let doc = read("docs/metrics.md");
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        names.extend(
            quoted_names(&text, "smsflow_")
                .into_iter()
                .map(str::to_owned),
        );
    }
    assert!(names.len() >= 20, "{names:?}");
    for name in &names {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/metrics.md: {name} is not documented"
        );
    }
    // And the page promises nothing the code does not have.
    for row in doc.lines().filter(|l| l.starts_with("| `smsflow_")) {
        let name = row[3..].split('`').next().unwrap();
        assert!(
            names.contains(name),
            "docs/metrics.md: {name} is not in src/"
        );
    }
}

#[test]
fn docs_flows_name_every_hook_and_host_function() {
    let doc = read("docs/flows.md");
    for (hook, _) in smsflow::flow::runner::HOOKS {
        assert!(
            doc.contains(&format!("| `{hook}(")),
            "docs/flows.md: hook {hook}"
        );
    }
    for file in ["src/flow/api.rs", "src/flow/check.rs"] {
        let source = read(file);
        let mut registered = 0;
        for (at, _) in source.match_indices("register_fn(") {
            let after = source[at + "register_fn(".len()..].trim_start();
            let name = after
                .strip_prefix('"')
                .and_then(|a| a.split('"').next())
                .unwrap_or_else(|| panic!("{file}: register_fn without a literal name"));
            assert!(
                doc.contains(&format!("`{name}(")),
                "docs/flows.md: {name} ({file}) is not documented"
            );
            registered += 1;
        }
        assert!(registered >= 10, "{file}: {registered}");
    }
}

async fn help(command: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(command)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{command:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The part of `doc` that documents `path`: its `## ` section when a heading names it
/// (`` `smsflow report csi` ``), with the page's introduction (the flags every command takes);
/// else the whole page.
fn command_section<'d>(doc: &'d str, path: &str) -> (&'d str, &'d str) {
    let intro = doc.split("\n## ").next().unwrap_or(doc);
    let named = format!("`{path}`");
    let section = doc.split("\n## ").skip(1).find(|s| {
        s.lines()
            .next()
            .is_some_and(|heading| heading.contains(&named))
    });
    (intro, section.unwrap_or(doc))
}

/// See: issue 25, item 16 (`--flow` of `report csi` was documented only for `report
/// responses`, and a flag anywhere on the page counted).
#[tokio::test]
async fn docs_cli_names_every_command_and_flag() {
    let doc = read("docs/cli.md");
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(command) = todo.pop() {
        let text = help(&command).await;
        let path = format!("smsflow {}", command.join(" "));
        assert!(
            doc.contains(&format!("`{}", path.trim_end())),
            "docs/cli.md: no `{path}`"
        );
        for flag in text
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .flat_map(|l| l.split([' ', ',']))
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            if ["--help", "--version"].contains(&flag) {
                continue;
            }
            let (intro, section) = command_section(&doc, path.trim_end());
            assert!(
                section.contains(&format!("`{flag}")) || intro.contains(&format!("`{flag}")),
                "docs/cli.md: {path} {flag} (in the section of the command)"
            );
        }
        if let Some((_, commands)) = text.split_once("Commands:\n") {
            for line in commands.lines().take_while(|l| !l.trim().is_empty()) {
                let name = line.split_whitespace().next().unwrap();
                if name != "help" {
                    todo.push([&command[..], &[name.to_owned()]].concat());
                }
            }
        }
        seen += 1;
    }
    assert!(seen >= 12, "{seen} commands");
}

/// The routes of `src/http/mod.rs`'s router.
fn router_paths() -> Vec<String> {
    let source = read("src/http/mod.rs");
    let mut paths = Vec::new();
    for (at, _) in source.match_indices(".route(") {
        let after = source[at + ".route(".len()..].trim_start();
        if let Some(path) = after.strip_prefix('"').and_then(|a| a.split('"').next()) {
            paths.push(path.to_owned());
        }
    }
    paths
}

#[tokio::test]
async fn docs_http_routes_are_the_routers_and_each_answers() {
    let doc = read("docs/http.md");
    let documented: Vec<(String, String)> = section(&doc, "The API listener")
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .map(|l| {
            let (method, path) = l.trim_end_matches('`').split_once(' ').unwrap();
            (method.to_owned(), path.to_owned())
        })
        .collect();
    let routes = router_paths();
    assert!(routes.len() >= 10, "{routes:?}");
    for route in &routes {
        assert!(
            documented.iter().any(|(_, p)| p == route),
            "docs/http.md: {route} is not documented"
        );
    }
    let server = Server::start(&[TOKEN]).await;
    for (method, path) in &documented {
        assert!(routes.contains(path), "docs/http.md: {path} is no route");
        let concrete = path.replace("{flow}", "survey").replace("{id}", "1");
        let body = (method == "POST").then_some("{}");
        let resp = server.call(method, &concrete, Some(TOKEN), body).await;
        let no_route = resp.status == 404 && resp.json["error"] == "not found";
        assert!(
            !no_route && resp.status != 405,
            "{method} {path}: {} {}",
            resp.status,
            resp.body
        );
    }
    // The metrics listener's one route is served by `smsflow run`.
    assert!(section(&doc, "The metrics listener").contains("### `GET /metrics`"));
    assert!(read("src/service/run.rs").contains("\"/metrics\""));
}

#[test]
fn docs_and_readme_stand_alone_in_a_clone() {
    let mut pages = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        pages.push(Path::new("docs").join(entry.unwrap().file_name()));
    }
    assert!(pages.len() >= 7, "{pages:?}");
    for page in pages {
        let text = read(page.to_str().unwrap());
        for outside in ["../shared", "SPEC.md", "STORAGE.md"] {
            assert!(
                !text.contains(outside),
                "{}: mentions {outside}",
                page.display()
            );
        }
        // Relative links point at files of the repository.
        for (at, _) in text.match_indices("](") {
            let target = text[at + 2..].split(')').next().unwrap();
            let target = target.split('#').next().unwrap();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            let resolved = root().join(page.parent().unwrap()).join(target);
            assert!(
                resolved.exists(),
                "{}: broken link {target}",
                page.display()
            );
        }
    }
}

/// The "~N s" in `line`.
fn seconds_in(line: &str) -> &str {
    let after = line
        .split_once('~')
        .unwrap_or_else(|| panic!("no ~N s in {line:?}"))
        .1;
    after
        .split_once(" s")
        .unwrap_or_else(|| panic!("no ~N s in {line:?}"))
        .0
}

/// See: issue 25, item 16. The demo's time is the same wherever it is given (it was ~15 s
/// in `--help`, ~20 s in the README, 21.7 s measured).
#[tokio::test]
async fn the_demos_time_is_the_same_in_the_readme_the_help_and_the_cli_page() {
    let readme = read("README.md");
    let first = (readme.lines())
        .find(|l| l.starts_with("cargo run --release -- demo"))
        .expect("the README's first command");
    let help = help(&[]).await;
    let example = (help.lines())
        .find(|l| l.trim_start().starts_with("smsflow demo "))
        .expect("smsflow --help has a demo example");
    let cli = read("docs/cli.md");
    let page = (cli.lines())
        .find(|l| l.contains("it takes ~"))
        .expect("docs/cli.md says how long the demo takes");
    let readme_s = seconds_in(first);
    assert_eq!(
        readme_s,
        seconds_in(example),
        "README: {first}\n--help: {example}"
    );
    assert_eq!(
        readme_s,
        seconds_in(page),
        "README: {first}\ndocs/cli.md: {page}"
    );
}

/// See: issue 27. docs/flows.md's Limits lists every limit of `flow::limits` with its value
/// and its error text, and `flow::limits::DOCUMENTED` names every constant of the module.
#[test]
fn docs_flows_list_every_script_limit_with_its_error() {
    let doc = read("docs/flows.md");
    let limits = section(&doc, "Limits");
    for limit in smsflow::flow::limits::DOCUMENTED {
        assert!(
            limits.contains(limit.value),
            "docs/flows.md: {} is not given as {}",
            limit.constant,
            limit.value
        );
        assert!(
            limits.contains(limit.error),
            "docs/flows.md: {}'s error {:?} is not quoted",
            limit.constant,
            limit.error
        );
    }
    let source = read("src/flow/limits.rs");
    for line in source.lines() {
        let Some(rest) = line.strip_prefix("pub const ") else {
            continue;
        };
        let name = rest.split(':').next().unwrap();
        if name == "DOCUMENTED" {
            continue;
        }
        assert!(
            (smsflow::flow::limits::DOCUMENTED.iter()).any(|d| d.constant == name),
            "src/flow/limits.rs: {name} is not in DOCUMENTED"
        );
    }
}
