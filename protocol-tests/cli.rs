//! `smsflow` as a user types it: every subcommand's `--help` with its examples, the value
//! enums with their defaults, completions, colour only on a terminal, and `run
//! --check-config` (issue 19).

use std::path::Path;

use tokio::process::Command;

use crate::run::service_setup;
use crate::util::TempDir;

async fn smsflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .await
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn cli_help_of_every_subcommand_has_an_example() {
    for command in [
        &["demo"][..],
        &["run"],
        &["smsc"],
        &["check"],
        &["report"],
        &["report", "csi"],
        &["report", "incidents"],
        &["store"],
        &["store", "verify"],
        &["store", "backup"],
        &["store", "restore"],
        &["completions"],
    ] {
        let out = smsflow(&[command, &["--help"]].concat()).await;
        assert!(out.status.success(), "{command:?}: {}", stderr(&out));
        let help = stdout(&out);
        let example = format!("  smsflow {}", command.join(" "));
        assert!(
            help.contains("Examples:\n") && help.contains(&example),
            "{command:?}:\n{help}"
        );
        // Not a terminal: no colour codes.
        assert!(!help.contains('\u{1b}'), "{command:?}:\n{help}");
    }
}

#[tokio::test]
async fn cli_report_help_lists_the_groupings_with_their_default() {
    let out = smsflow(&["report", "csi", "--help"]).await;
    let help = stdout(&out);
    for needle in [
        "--by <BY>",
        "[default: operator]",
        "channel",
        "-f, --format <FORMAT>",
        "[default: table]",
        "-o, --out <FILE>",
        "-c, --config <FILE>",
    ] {
        assert!(help.contains(needle), "{needle}:\n{help}");
    }
    let out = smsflow(&["report", "incidents", "--help"]).await;
    let help = stdout(&out);
    assert!(help.contains("[default: location]"), "{help}");
    assert!(help.contains("button"), "{help}");
}

#[tokio::test]
async fn cli_color_always_colours_even_off_a_terminal() {
    let out = smsflow(&["--color", "always", "report", "--help"]).await;
    assert!(stdout(&out).contains('\u{1b}'), "{}", stdout(&out));
    let out = smsflow(&["--color", "sometimes", "demo"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("auto"), "{}", stderr(&out));
}

#[tokio::test]
async fn cli_completions_for_each_shell() {
    for (shell, needle) in [
        ("bash", "_smsflow()"),
        ("zsh", "#compdef smsflow"),
        ("fish", "complete -c smsflow"),
        ("elvish", "smsflow"),
        ("powershell", "smsflow"),
    ] {
        let out = smsflow(&["completions", shell]).await;
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(needle), "{shell}:\n{script}");
        assert!(script.contains("check-config"), "{shell}");
    }
    let out = smsflow(&["completions", "cmd"]).await;
    assert_eq!(out.status.code(), Some(2));
}

async fn check_config(path: &Path) -> std::process::Output {
    smsflow(&["run", "--check-config", "-c", path.to_str().unwrap()]).await
}

#[tokio::test]
async fn cli_run_check_config_exits_0_for_a_good_config_and_starts_nothing() {
    let dir = TempDir::new("check-config-ok");
    let setup = service_setup(dir.path(), 2775, &["t0ken"]);
    let out = check_config(&setup.config).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("smsflow.toml: ok"), "{text}");
    assert!(text.contains("smsc sim: 127.0.0.1:2775"), "{text}");
    assert!(text.contains("flow file(s)"), "{text}");
    // Nothing opened: no store was created.
    assert!(!setup.data.exists());
}

#[tokio::test]
async fn cli_run_check_config_exits_2_for_a_bad_one() {
    let dir = TempDir::new("check-config-bad");
    let setup = service_setup(dir.path(), 2775, &[]);
    let good = std::fs::read_to_string(&setup.config).unwrap();
    let cases = [
        (
            "typo.toml",
            good.replace("password =", "pasword ="),
            "pasword",
        ),
        (
            "no-smsc.toml",
            good[..good.find("[[smsc]]").unwrap()].to_owned(),
            "no [[smsc]]",
        ),
        (
            "no-scripts.toml",
            good.replace(
                &format!(
                    "{}",
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("scripts")
                        .display()
                ),
                "/nonexistent/scripts",
            ),
            "/nonexistent/scripts",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = check_config(&path).await;
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(name), "{name}: {}", stderr(&out));
    }
    let out = check_config(&dir.path().join("missing.toml")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

/// A value out of range is quoted as the file writes it (`"400d"`, not `"1year 1month 4days
/// 7h 26m 24s"`), with the range in the units people write; a size too large for any
/// range is out of range, not "not a size" (issue 27 item 9). Through `run --check-config`
/// and through `run`, which must refuse the same files with the same words.
#[tokio::test]
async fn cli_config_messages_quote_values_as_written_with_the_range() {
    let dir = TempDir::new("config-as-written");
    let setup = service_setup(dir.path(), 2775, &[]);
    let good = std::fs::read_to_string(&setup.config).unwrap();
    let webhook = "[[webhook]]\nname = \"sd\"\nurl = \"http://127.0.0.1:9/calls\"\n";
    let cases = [
        (
            good.replace("[http]\n", "[http]\nmax_body = \"1TiB\"\n"),
            r#"http.max_body: "1TiB" is out of range (allowed "1KiB" to "16MiB")"#,
        ),
        (
            good.replace("[http]\n", "[http]\nmax_body = 1099511627776\n"),
            r#"http.max_body: 1099511627776 is out of range (allowed "1KiB" to "16MiB")"#,
        ),
        (
            good.replace("[http]\n", "[http]\nmax_body = \"99999999TiB\"\n"),
            r#"http.max_body: "99999999TiB" is out of range (allowed "1KiB" to "16MiB")"#,
        ),
        (
            good.replace("[http]\n", "[http]\nmax_body = -1\n"),
            r#"http.max_body: -1 is not a size (write a number of bytes or e.g. "64KiB", "#,
        ),
        (
            good.replace("[service]\n", "[service]\nshutdown_timeout = \"400d\"\n"),
            r#"service.shutdown_timeout: "400d" is out of range (allowed "100ms" to "10m")"#,
        ),
        (
            good.replace("[service]\n", "[service]\nredelivery_window = \"25h\"\n"),
            r#"service.redelivery_window: "25h" is out of range (allowed "1s" to "24h")"#,
        ),
        (
            good.replace("[http]\n", "[http]\nrequest_timeout = \"1h30m\"\n"),
            r#"http.request_timeout: "1h30m" is out of range (allowed "100ms" to "10m")"#,
        ),
        (
            good.replace("reconnect_min = \"50ms\"", "reconnect_min = \"90s\"")
                .replace("reconnect_max = \"500ms\"", "reconnect_max = \"60s\""),
            r#"smsc[0].reconnect_min: "90s" is longer than reconnect_max "60s""#,
        ),
        (
            format!("{good}\n{webhook}timeout = \"150s\"\n"),
            r#"webhook[0].timeout: "150s" is out of range (allowed "100ms" to "2m")"#,
        ),
        (
            format!("{good}\n[export]\nmax_age = \"59m\"\n"),
            r#"export.max_age: "59m" is under an hour"#,
        ),
    ];
    for (i, (text, needle)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let checked = check_config(&path).await;
        let run = smsflow(&["run", "-c", path.to_str().unwrap()]).await;
        for out in [checked, run] {
            assert_eq!(out.status.code(), Some(2), "{needle}: {}", stderr(&out));
            assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
        }
    }
}

#[tokio::test]
async fn cli_run_without_an_smsc_exits_2_before_opening_the_store() {
    let dir = TempDir::new("run-no-smsc");
    let data = dir.path().join("data");
    let path = dir.path().join("smsflow.toml");
    std::fs::write(
        &path,
        format!("[service]\ndata_dir = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    let out = smsflow(&["run", "-c", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no [[smsc]]"), "{}", stderr(&out));
    assert!(!data.exists());
}
