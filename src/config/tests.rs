use super::*;

const FILE: &str = "smsflow.toml";
const EXAMPLE: &str = include_str!("../../smsflow.example.toml");

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Some(Path::new(FILE)), &no_env)
}

fn error(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e,
    }
}

const MINIMAL: &str = "[[smsc]]\nname = \"a\"\npassword = \"secret\"\n";

#[test]
fn defaults_without_a_file() {
    let config = Config::defaults();
    assert_eq!(config.service.data_dir, Path::new("data"));
    assert_eq!(config.service.scripts_dir, Path::new("scripts"));
    assert_eq!(config.service.timezone.iana_name(), Some("Asia/Tashkent"));
    assert_eq!(config.smsc.len(), 1);
    let smsc = &config.smsc[0];
    assert_eq!((smsc.host.as_str(), smsc.port), ("127.0.0.1", 2775));
    assert_eq!(
        (smsc.system_id.as_str(), smsc.password()),
        ("smsflow", "smsflow")
    );
    assert_eq!(smsc.bind, Bind::Transceiver);
    assert_eq!((smsc.sessions, smsc.window, smsc.tps), (1, 64, 0));
    assert_eq!(smsc.enquire_link_interval, Duration::from_secs(30));
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(config.source, None);
    // The defaults must pass the same checks as a file.
    let mut checked = config.clone();
    assert_eq!(checked.check(&no_env, &|_| None), Ok(()));
    assert_eq!(checked.smsc[0].password(), "smsflow");
}

#[test]
fn minimal_file_takes_the_documented_defaults() {
    let config = parse(MINIMAL).unwrap();
    let smsc = &config.smsc[0];
    assert_eq!(smsc.password(), "secret");
    assert_eq!(smsc.reconnect_max, Duration::from_secs(60));
    assert_eq!(
        (smsc.address_range.as_str(), smsc.source_addr_ton),
        ("5700", 3)
    );
    assert!(smsc.registered_delivery);
    assert_eq!(config.http.tokens, vec![Secret("change-me".to_owned())]);
    assert_eq!(config.source.as_deref(), Some(Path::new(FILE)));
}

#[test]
fn example_file_parses_with_all_values() {
    let config = Config::from_toml(EXAMPLE, Some(Path::new("smsflow.example.toml")), &no_env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.service.data_dir, Path::new("data"));
    assert_eq!(config.service.scripts_dir, Path::new("scripts"));
    assert_eq!(config.service.timezone.iana_name(), Some("Asia/Tashkent"));
    let smsc = &config.smsc[0];
    assert_eq!(smsc.name, "playmobile");
    assert_eq!((smsc.host.as_str(), smsc.port), ("127.0.0.1", 2775));
    assert_eq!(
        (smsc.system_id.as_str(), smsc.password()),
        ("smsflow", "smsflow")
    );
    assert_eq!(smsc.system_type, "");
    assert_eq!(smsc.bind, Bind::Transceiver);
    assert_eq!((smsc.sessions, smsc.window, smsc.tps), (1, 64, 0));
    assert_eq!(smsc.enquire_link_interval, Duration::from_secs(30));
    assert_eq!(smsc.response_timeout, Duration::from_secs(10));
    assert_eq!(smsc.reconnect_min, Duration::from_secs(1));
    assert_eq!(smsc.reconnect_max, Duration::from_secs(60));
    assert!(!smsc.tls);
    assert_eq!(
        (smsc.address_range.as_str(), smsc.source_addr.as_str()),
        ("5700", "5700")
    );
    assert_eq!((smsc.source_addr_ton, smsc.source_addr_npi), (3, 0));
    assert!(smsc.registered_delivery);
    assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.http.tokens, vec![Secret("change-me".to_owned())]);
    assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9100");
}

#[test]
fn example_file_sets_every_key_of_the_schema() {
    // Every key the example sets explicitly, so the example cannot drift from the schema:
    // a key missing from the structs fails `example_file_parses_with_all_values`, a key
    // missing from the example fails here.
    let document = DeTable::parse(EXAMPLE).unwrap();
    let spans = Spans::new(EXAMPLE, document.get_ref());
    let smsc_keys = [
        "name",
        "host",
        "port",
        "system_id",
        "password",
        "system_type",
        "bind",
        "sessions",
        "window",
        "tps",
        "enquire_link_interval",
        "response_timeout",
        "reconnect_min",
        "reconnect_max",
        "tls",
        "tls_ca",
        "tls_server_name",
        "tls_pin_sha256",
        "tls_cert",
        "tls_key",
        "address_range",
        "source_addr",
        "source_addr_ton",
        "source_addr_npi",
        "registered_delivery",
    ];
    let mut expected: Vec<String> = [
        "service.data_dir",
        "service.scripts_dir",
        "service.timezone",
        "http.listen",
        "http.tokens",
        "metrics.listen",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    expected.extend(smsc_keys.iter().map(|k| format!("smsc[0].{k}")));
    for key in expected {
        assert!(
            spans.entries.iter().any(|(path, _, _)| *path == key),
            "{key} missing"
        );
    }
    // password_env is there, commented out; so are the keys that need files to exist.
    assert!(EXAMPLE.contains("# password_env = \"SMSC_PASSWORD\""));
    for commented in [
        "# tls_key_env = \"SMSC_TLS_KEY\"",
        "# tls_cert = \"/etc/smsflow/api.pem\"",
        "# tls_key = \"/etc/smsflow/api.key\"",
        "# tls_cert = \"/etc/smsflow/metrics.pem\"",
        "# tls_key = \"/etc/smsflow/metrics.key\"",
        "# [[webhook]]",
        "# name = \"servicedesk\"",
        "# url = \"http://127.0.0.1:9000/incidents\"",
        "# secret_env = \"SD_SECRET\"",
        "# timeout = \"10s\"",
        "# tls_ca = \"\"",
    ] {
        assert!(EXAMPLE.contains(commented), "{commented} missing");
    }
}

#[test]
fn unknown_key_nested_names_file_line_key_and_suggestion() {
    let e = error("[[smsc]]\nname = \"a\"\npassword = \"x\"\nwindw = 10\n");
    assert_eq!(e.line, Some(4));
    assert_eq!(e.key.as_deref(), Some("smsc[0].windw"));
    assert_eq!(
        e.to_string(),
        "smsflow.toml:4: smsc[0].windw: unknown key (did you mean `window`?)"
    );
}

#[test]
fn unknown_key_at_top_level() {
    let e = error(&format!(
        "{MINIMAL}\n[metrix]\nlisten = \"127.0.0.1:9100\"\n"
    ));
    assert_eq!(
        e.to_string(),
        "smsflow.toml:5: metrix: unknown key (did you mean `metrics`?)"
    );
    let e = error(&format!("colour = 1\n{MINIMAL}"));
    assert_eq!(e.line, Some(1));
    assert_eq!(e.key.as_deref(), Some("colour"));
    assert!(
        e.message.contains("expected one of `service`, `smsc`"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_a_table() {
    let e = error(&format!("[service]\ntimezon = \"UTC\"\n{MINIMAL}"));
    assert_eq!(
        e.to_string(),
        "smsflow.toml:2: service.timezon: unknown key (did you mean `timezone`?)"
    );
}

#[test]
fn bad_duration_names_the_key() {
    let e = error(&format!("{MINIMAL}response_timeout = \"10 parsecs\"\n"));
    assert_eq!(e.line, Some(4));
    assert_eq!(e.key.as_deref(), Some("smsc[0].response_timeout"));
    assert!(
        e.message.starts_with("invalid duration \"10 parsecs\""),
        "{e}"
    );
    let e = error(&format!("{MINIMAL}reconnect_min = 5\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].reconnect_min"));
    assert!(e.message.contains("a duration string like"), "{e}");
}

#[test]
fn bad_bind_value() {
    let e = error(&format!("{MINIMAL}bind = \"trx\"\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].bind"));
    assert_eq!(e.line, Some(4));
    assert_eq!(
        e.to_string(),
        "smsflow.toml:4: smsc[0].bind: unknown value \"trx\" (use `transceiver` or `pair`)"
    );
    let config = parse(&format!("{MINIMAL}bind = \"pair\"\n")).unwrap();
    assert_eq!(config.smsc[0].bind, Bind::Pair);
}

#[test]
fn missing_password_and_password_env() {
    let e = error("[[smsc]]\nname = \"a\"\n");
    assert_eq!(e.key.as_deref(), Some("smsc[0].password"));
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("password_env"), "{e}");
}

#[test]
fn both_password_and_password_env() {
    let e = error(&format!("{MINIMAL}password_env = \"P\"\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].password_env"));
    assert_eq!(e.line, Some(4));
}

#[test]
fn password_env_set_and_unset() {
    let text = "[[smsc]]\nname = \"a\"\npassword_env = \"SMSC_PASSWORD\"\n";
    let env = |name: &str| (name == "SMSC_PASSWORD").then(|| "s3cret".to_owned());
    let config = Config::from_toml(text, Some(Path::new(FILE)), &env).unwrap();
    assert_eq!(config.smsc[0].password(), "s3cret");
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "Debug leaks the password"
    );

    let e = error(text);
    assert_eq!(
        e.to_string(),
        "smsflow.toml:3: smsc[0].password_env: environment variable \"SMSC_PASSWORD\" is \
         not set (export it, or set password instead)"
    );
    let long = |_: &str| Some("123456789".to_owned());
    let e = Config::from_toml(text, Some(Path::new(FILE)), &long).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("smsc[0].password_env"));
    assert!(
        !e.message.contains("123456789"),
        "the message leaks the password"
    );
}

#[test]
fn duplicate_smsc_names() {
    let e = error(&format!("{MINIMAL}\n{MINIMAL}"));
    assert_eq!(e.line, Some(6));
    assert_eq!(e.key.as_deref(), Some("smsc[1].name"));
    assert!(e.message.contains("duplicate smsc name \"a\""), "{e}");
}

#[test]
fn no_smsc_is_a_valid_file_that_run_refuses() {
    // `report` and `store` read such a file; `run` has nothing to bind to.
    let config = parse("[service]\ndata_dir = \"d\"\n").unwrap();
    assert!(config.smsc.is_empty());
    let e = config.require_smsc().unwrap_err();
    assert_eq!(e.key.as_deref(), Some("smsc"));
    assert_eq!(e.path.as_deref(), Some(Path::new(FILE)));
    assert!(
        e.to_string().starts_with("smsflow.toml: smsc: no [[smsc]]"),
        "{e}"
    );
    assert!(Config::defaults().require_smsc().is_ok());
    assert!(parse(MINIMAL).unwrap().require_smsc().is_ok());
}

#[test]
fn bad_timezone() {
    let e = error(&format!(
        "[service]\ntimezone = \"Asia/Tashkient\"\n{MINIMAL}"
    ));
    assert_eq!(
        e.to_string(),
        "smsflow.toml:2: service.timezone: unknown time zone \"Asia/Tashkient\" (use an \
         IANA name such as \"Asia/Tashkent\" or \"UTC\")"
    );
}

#[test]
fn reconnect_min_above_reconnect_max() {
    let e = error(&format!(
        "{MINIMAL}reconnect_min = \"2m\"\nreconnect_max = \"1m\"\n"
    ));
    assert_eq!(e.line, Some(4));
    assert_eq!(e.key.as_deref(), Some("smsc[0].reconnect_min"));
    assert!(
        e.message
            .contains("\"2m\" is longer than reconnect_max \"1m\""),
        "{e}"
    );
}

#[test]
fn system_id_too_long() {
    let e = error(&format!("{MINIMAL}system_id = \"a-very-long-system\"\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].system_id"));
    assert!(e.message.contains("at most 15"), "{e}");
    let e = error("[[smsc]]\nname = \"a\"\npassword = \"123456789\"\n");
    assert_eq!(e.key.as_deref(), Some("smsc[0].password"));
    assert!(
        e.message.contains("at most 8") && !e.message.contains("123456789"),
        "{e}"
    );
}

#[test]
fn ranges_and_addresses() {
    let e = error(&format!("{MINIMAL}port = 70000\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].port"));
    assert!(e.message.contains("port 70000 is out of range"), "{e}");
    let e = error(&format!("{MINIMAL}port = 0\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].port"));
    let e = error(&format!("{MINIMAL}window = 0\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].window"));
    let e = error(&format!("{MINIMAL}sessions = 0\n"));
    assert_eq!(e.key.as_deref(), Some("smsc[0].sessions"));
    let e = error(&format!("{MINIMAL}[http]\nlisten = \"localhost:80\"\n"));
    assert_eq!(e.key.as_deref(), Some("http.listen"));
    assert!(e.message.contains("\"localhost:80\""), "{e}");
    let e = error(&format!("{MINIMAL}[metrics]\nlisten = \"9100\"\n"));
    assert_eq!(e.key.as_deref(), Some("metrics.listen"));
    let e = error(&format!("{MINIMAL}[http]\ntokens = [\"ok\", \"\"]\n"));
    assert_eq!(e.key.as_deref(), Some("http.tokens[1]"));
    assert_eq!(e.line, Some(5));
    let config = parse(&format!("{MINIMAL}[http]\ntokens = []\n")).unwrap();
    assert!(config.http.tokens.is_empty());
}

#[test]
fn syntax_error_has_a_line() {
    let e = error("[[smsc]]\nname = \"a\npassword = \"x\"\n");
    assert_eq!(e.path.as_deref(), Some(Path::new(FILE)));
    assert_eq!(e.line, Some(2));
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("smsflow-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn discover_explicit_missing_file_is_an_error_naming_it() {
    let dir = TempDir::new("explicit-missing");
    let e = discover_in(&dir.0, Some(Path::new("prod.toml")), &no_env).unwrap_err();
    assert_eq!(e.path, Some(dir.0.join("prod.toml")));
    assert!(
        e.to_string()
            .ends_with("prod.toml: config file not found (check the --config path)"),
        "{e}"
    );
    // Even when ./smsflow.toml exists: a given file never falls back to another one.
    std::fs::write(dir.0.join(DEFAULT_FILE), MINIMAL).unwrap();
    assert!(discover_in(&dir.0, Some(Path::new("prod.toml")), &no_env).is_err());
}

#[test]
fn discover_without_a_file_uses_defaults() {
    let dir = TempDir::new("defaults");
    let config = discover_in(&dir.0, None, &no_env).unwrap();
    assert_eq!(config.source, None);
    assert_eq!(config.smsc[0].name, "default");
    assert_eq!(config.smsc[0].password(), "smsflow");
}

#[test]
fn discover_prefers_local_smsflow_toml_then_explicit() {
    let dir = TempDir::new("local");
    std::fs::write(dir.0.join(DEFAULT_FILE), MINIMAL).unwrap();
    let config = discover_in(&dir.0, None, &no_env).unwrap();
    assert_eq!(config.source, Some(dir.0.join(DEFAULT_FILE)));
    assert_eq!(config.smsc[0].name, "a");

    std::fs::write(dir.0.join("other.toml"), MINIMAL.replace("\"a\"", "\"b\"")).unwrap();
    let config = discover_in(&dir.0, Some(Path::new("other.toml")), &no_env).unwrap();
    assert_eq!(config.smsc[0].name, "b");

    // A broken local file is reported, not replaced by the defaults.
    std::fs::write(dir.0.join(DEFAULT_FILE), "[[smsc]]\nname = \"a\"\n").unwrap();
    let e = discover_in(&dir.0, None, &no_env).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("smsc[0].password"));
}

#[test]
fn values_that_cannot_work_are_refused_naming_the_key_and_range() {
    for (line, key, range) in [
        (
            "enquire_link_interval = \"0s\"",
            "smsc[0].enquire_link_interval",
            "\"1s\" to \"1h\"",
        ),
        (
            "response_timeout = \"0s\"",
            "smsc[0].response_timeout",
            "\"100ms\" to \"5m\"",
        ),
        ("sessions = 100000", "smsc[0].sessions", "1 to 64"),
        ("window = 1000000000", "smsc[0].window", "1 to 10000"),
        ("window = 0", "smsc[0].window", "1 to 10000"),
    ] {
        let e = error(&format!("{MINIMAL}{line}\n"));
        assert_eq!(e.key.as_deref(), Some(key), "{line}");
        assert!(
            e.message.contains(&format!("allowed {range}")),
            "{line}: {e}"
        );
    }
    for (line, key) in [
        (
            "[service]\nredelivery_window = \"0s\"",
            "service.redelivery_window",
        ),
        (
            "[http]\nheader_read_timeout = \"1h\"",
            "http.header_read_timeout",
        ),
        ("[http]\nmax_connections = 0", "http.max_connections"),
        ("[http]\nmax_body = \"1GiB\"", "http.max_body"),
        ("[http]\nmax_body = \"64MiB\"", "http.max_body"),
    ] {
        let e = error(&format!("{MINIMAL}{line}\n"));
        assert_eq!(e.key.as_deref(), Some(key), "{line}: {e}");
    }
    let config = parse(&format!("{MINIMAL}[http]\nmax_body = \"1MiB\"\n")).unwrap();
    assert_eq!(config.http.max_body, 1024 * 1024);
    let config = parse(&format!("{MINIMAL}[http]\nmax_body = 4096\n")).unwrap();
    assert_eq!(config.http.max_body, 4096);
}

#[test]
fn export_and_node_are_checked_naming_the_key_and_line() {
    let config = parse(&format!(
        "[service]\nnode = \"tash-1\"\n{MINIMAL}[export]\n\
         nats_url = \"nats://n1:4222, nats://n2:4222\"\nreplicas = 3\n"
    ))
    .unwrap();
    let export = config.export.expect("[export] is there");
    assert_eq!(export.servers(), ["nats://n1:4222", "nats://n2:4222"]);
    assert_eq!((export.stream.as_str(), export.replicas), ("SMSFLOW", 3));
    assert_eq!(config.service.node, "tash-1");
    assert!(
        parse(MINIMAL).unwrap().export.is_none(),
        "no export by default"
    );

    let e = error(&format!("{MINIMAL}[export]\nstream = \"SMS.FLOW\"\n"));
    assert_eq!(
        (e.key.as_deref(), e.line),
        (Some("export.stream"), Some(5)),
        "{e}"
    );
    let e = error(&format!("{MINIMAL}[export]\nnats = \"nats://x:4222\"\n"));
    assert!(e.to_string().contains("export.nats: unknown key"), "{e}");
    let e = error("[service]\nnode = \"tash 1\"\n");
    assert_eq!(e.key.as_deref(), Some("service.node"), "{e}");
}

#[test]
fn webhooks_are_checked_naming_the_key_and_line() {
    let text = format!(
        "{MINIMAL}[[webhook]]\nname = \"servicedesk\"\nurl = \"http://127.0.0.1:9000/in\"\n\
         secret_env = \"SD_SECRET\"\ntimeout = \"3s\"\n"
    );
    let env = |name: &str| (name == "SD_SECRET").then(|| "s3cret".to_owned());
    let config = Config::from_toml(&text, Some(Path::new(FILE)), &env).unwrap();
    let w = &config.webhook[0];
    assert_eq!(
        (w.name.as_str(), w.timeout),
        ("servicedesk", Duration::from_secs(3))
    );
    let r = w.resolved().unwrap();
    assert_eq!(
        (r.port, r.secret.as_ref().map(Secret::expose)),
        (9000, Some("s3cret"))
    );
    let e = error(&text);
    assert_eq!(e.key.as_deref(), Some("webhook[0].secret_env"));
    assert_eq!(e.line, Some(7), "{e}");
    let e = error(&format!(
        "{MINIMAL}[[webhook]]\nname = \"x\"\nurl = \"x\"\n"
    ));
    assert_eq!(e.key.as_deref(), Some("webhook[0].url"), "{e}");
    let e = error(&format!(
        "{MINIMAL}[[webhook]]\nname = \"x\"\nurl = \"http://x/\"\ntimeout = \"10m\"\n"
    ));
    assert!(
        e.to_string()
            .contains("webhook[0].timeout: \"10m\" is out of range"),
        "{e}"
    );
}

#[test]
fn button_routes_are_checked_naming_the_key_and_line() {
    let c = parse("[buttons]\n104 = { call = \"escalation\", cancel = \"complaint\" }\n").unwrap();
    let routes = c.button_routes();
    assert_eq!(routes.flow(104, buttons::Action::Cancel), Ok("complaint"));
    assert_eq!(routes.flow(101, buttons::Action::Call), Ok("complaint"));
    let e = error("[buttons]\n101 = \"complaint\"\n\"x1\" = \"alert\"\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert_eq!(e.key.as_deref(), Some("buttons.x1"), "{e}");
    let e = error("[buttons]\n101 = { cal = \"complaint\" }\n");
    assert!(e.to_string().contains("unknown action `cal`"), "{e}");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn tokens_from_the_environment() {
    let env = |var: &str| (var == "API_TOKENS").then(|| " one, two ,".to_owned());
    let text = format!("{MINIMAL}[http]\ntokens_env = \"API_TOKENS\"\n");
    let config = Config::from_toml(&text, None, &env).unwrap();
    let tokens: Vec<&str> = config.http.tokens.iter().map(Secret::expose).collect();
    assert_eq!(tokens, ["one", "two"]);
    assert!(!config.http.has_sample_token());
    let e = error(&format!("{MINIMAL}[http]\ntokens_env = \"NOPE\"\n"));
    assert_eq!(e.key.as_deref(), Some("http.tokens_env"));
    let both = format!("{MINIMAL}[http]\ntokens = [\"x\"]\ntokens_env = \"API_TOKENS\"\n");
    let e = Config::from_toml(&both, None, &env).unwrap_err();
    assert!(e.message.contains("both tokens and tokens_env"), "{e}");
}
